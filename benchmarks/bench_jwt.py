"""Benchmark authcore's JWTManager against plain python-jose, in one run.

Both sides sign the same claims (sub, iat, exp, jti, sid, scope, iss, aud and
one application claim) with the same HS256 key and a ``kid`` header, and verify
with issuer and audience checks. Each round times ``--iterations`` calls per
operation; the table shows the median of ``--rounds`` rounds, in operations per
second, and the ratio authcore / python-jose (above 1 means authcore is faster).

    python benchmarks/bench_jwt.py [--iterations 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import secrets
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from jose import jwt as jose_jwt

from authcore.jwt import JWTManager

KEY = secrets.token_bytes(32)
ISSUER = "https://auth.example"
AUDIENCE = "api"
TTL_SECONDS = 900


def authcore_operations() -> dict[str, Callable[[], object]]:
    manager = JWTManager(KEY, issuer=ISSUER, audience=AUDIENCE)

    def issue() -> str:
        return manager.issue(
            "user-1", session_id="sess-1", scopes=["read", "write"], claims={"role": "admin"}
        )

    token = issue()
    return {
        "issue": issue,
        "verify": lambda: manager.verify(token),
        "issue+verify": lambda: manager.verify(issue()),
    }


def jose_operations() -> dict[str, Callable[[], object]]:
    kid = JWTManager(KEY).kid

    def issue() -> str:
        now = int(time.time())
        claims = {
            "sub": "user-1",
            "iat": now,
            "exp": now + TTL_SECONDS,
            "jti": secrets.token_urlsafe(16),
            "sid": "sess-1",
            "scope": "read write",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "role": "admin",
        }
        token: str = jose_jwt.encode(claims, KEY, algorithm="HS256", headers={"kid": kid})
        return token

    def verify(token: str) -> dict[str, Any]:
        claims: dict[str, Any] = jose_jwt.decode(
            token, KEY, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER
        )
        return claims

    token = issue()
    return {
        "issue": issue,
        "verify": lambda: verify(token),
        "issue+verify": lambda: verify(issue()),
    }


def ops_per_second(operation: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        operation()
    return iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    sides = {"authcore": authcore_operations(), "python-jose": jose_operations()}
    names = list(sides["authcore"])
    samples: dict[tuple[str, str], list[float]] = {(s, n): [] for s in sides for n in names}
    for side in sides.values():  # warm up
        for operation in side.values():
            ops_per_second(operation, 200)
    for _ in range(args.rounds):  # interleaved, so drift hits both sides alike
        for name in names:
            for side_name, side in sides.items():
                samples[side_name, name].append(ops_per_second(side[name], args.iterations))

    print(
        f"HS256, Python {platform.python_version()}, python-jose {version('python-jose')}, "
        f"median of {args.rounds} rounds x {args.iterations} calls"
    )
    print(f"{'operation':<14}{'authcore ops/s':>16}{'python-jose ops/s':>19}{'ratio':>8}")
    for name in names:
        ours = statistics.median(samples["authcore", name])
        theirs = statistics.median(samples["python-jose", name])
        print(f"{name:<14}{ours:>16,.0f}{theirs:>19,.0f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()
