"""A login flood against one uvicorn worker: does a real user still get an answer?

    python benchmarks/bench_login_flood.py [--junk 200] [--rounds 12] [--no-shedding]

Serves ``tests/account_app.py`` (authcore's routes and an unauthenticated
``/ping``) with one uvicorn worker on 127.0.0.1, a SQLite file, bcrypt at
*rounds* (12: the production cost) and the login throttle off (the flood
comes from one address; this measures load shedding, not throttling). Then:

1. **held flood**: *junk* wrong logins at once, each client waiting for its
   answer; 0.3 s in, a real user logs in. Reported: the real login's status
   and latency, the junk answers by status, and ``/ping`` latencies (p50,
   p99, max) sampled every 20 ms while the flood lasts.
2. **abandoned flood**: 100 wrong logins whose clients give up after 10 ms;
   then a real login: its status and latency (their hashes must not be
   computed after they left).

The targets of issue 17: the real login answered (200 or 503) within 2 s,
and ``/ping`` p99 under 50 ms. ``--no-shedding`` turns the hashing queue's
bound off, for comparison (expect minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-that-is-long-enough-0123"
ACCOUNT = {"username": "alice", "password": "correct horse battery staple"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(folder: Path, rounds: int, shedding: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHCORE_", "ACCOUNT_"))}
    env.update(
        ACCOUNT_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'flood.db'}",
        ACCOUNT_SECRET_KEY=SECRET,
        ACCOUNT_OUTBOX=str(folder / "outbox.txt"),
        ACCOUNT_ROUNDS=str(rounds),
        ACCOUNT_THROTTLE="off",
    )
    if not shedding:
        env["ACCOUNT_QUEUE_WAIT"] = "off"
    command = [sys.executable, "-m", "uvicorn", "account_app:app"]
    command += ["--app-dir", str(ROOT / "tests"), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("uvicorn did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


PINGER = """
import sys, time, httpx2 as httpx
with httpx.Client(base_url=sys.argv[1], timeout=60) as client:
    client.get("/ping")
    print("ready", flush=True)
    import threading
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    while not stop.wait(0.02):
        started = time.perf_counter()
        client.get("/ping")
        print(time.perf_counter() - started, flush=True)
"""


def start_pinger(base: str) -> subprocess.Popen[str]:
    """``GET /ping`` every 20 ms from another process (its own CPU time, its own GIL)."""
    process = subprocess.Popen(
        [sys.executable, "-c", PINGER, base],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def stop_pinger(process: subprocess.Popen[str]) -> list[float]:
    """Stop the pinger; the latencies it measured, in seconds."""
    out, _ = process.communicate("stop\n", timeout=60)
    return [float(line) for line in out.split()]


async def timed_login(client: httpx.AsyncClient) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.post("/auth/login", json=ACCOUNT)
    return response.status_code, time.perf_counter() - started


async def held_flood(base: str, junk: int) -> None:
    limits = httpx.Limits(max_connections=junk + 20, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=600) as client:
        outcomes: collections.Counter[str] = collections.Counter()

        async def one(i: int) -> None:
            body = {"username": f"junk-{i}", "password": f"wrong password {i}"}
            outcomes[str((await client.post("/auth/login", json=body)).status_code)] += 1

        pinger = start_pinger(base)
        flooding = asyncio.gather(*(one(i) for i in range(junk)))
        await asyncio.sleep(0.3)
        status, took = await timed_login(client)
        flood_started = time.perf_counter()
        await flooding
        pings = stop_pinger(pinger)
        print(f"held flood of {junk}: real login -> {status} in {took * 1000:.0f} ms")
        print(f"  junk answers: {dict(sorted(outcomes.items()))}")
        print(f"  flood drained {time.perf_counter() - flood_started:.1f} s after the real login")
        if pings:
            print(
                f"  /ping over {len(pings)} samples: p50 {statistics.median(pings) * 1000:.1f} ms, "
                f"p99 {percentile(pings, 0.99) * 1000:.1f} ms, max {max(pings) * 1000:.1f} ms"
            )


async def abandoned_flood(base: str, count: int = 100) -> None:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:

        async def one(i: int) -> None:
            body = {"username": f"gone-{i}", "password": f"wrong password {i}"}
            with contextlib.suppress(httpx.TimeoutException):
                await client.post("/auth/login", json=body, timeout=0.01)

        await asyncio.gather(*(one(i) for i in range(count)))
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        status, took = await timed_login(client)
    print(f"abandoned flood of {count}: next real login -> {status} in {took * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--junk", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--no-shedding", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, base = serve(Path(folder), args.rounds, not args.no_shedding)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                client.post("/auth/register", json=ACCOUNT).raise_for_status()
                started = time.perf_counter()
                client.post("/auth/login", json=ACCOUNT).raise_for_status()
                print(
                    f"bcrypt rounds {args.rounds}: a quiet login takes "
                    f"{(time.perf_counter() - started) * 1000:.0f} ms; {os.cpu_count()} CPUs"
                )
            asyncio.run(held_flood(base, args.junk))
            time.sleep(2)  # let the server settle between the scenarios
            asyncio.run(abandoned_flood(base))
        finally:
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
