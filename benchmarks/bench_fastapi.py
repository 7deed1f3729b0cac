"""Requests per second of a protected FastAPI route under uvicorn, measured with wrk.

    python benchmarks/bench_fastapi.py [--seconds 10] [--connections 32] [--postgres]

Serves the example app (``examples/fastapi_app.py``) plus an unprotected
``/ping`` with one uvicorn worker on 127.0.0.1, logs a user in, and drives
three routes with wrk (``apt install wrk``) side by side:

- ``/ping``: no authentication (the framework's floor);
- ``/notes`` with ``Authorization: Bearer <JWT>``: JWT verification, the
  session looked up by its ``sid``, and the user loaded;
- ``/notes`` with the session cookie: the session token validated.

The database is a SQLite file in a temporary folder, or with ``--postgres`` a
throwaway PostgreSQL started from the test suite's helper.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-that-is-long-enough-0123"


def make_app() -> Any:
    """The uvicorn factory: the example app and an unauthenticated /ping."""
    sys.path.insert(0, str(ROOT / "examples"))
    from fastapi_app import create_app

    app = create_app(os.environ["AUTHCORE_DATABASE_URL"], SECRET)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "ok"}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, data: bytes, content_type: str) -> Any:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read())


def wrk(url: str, header: str | None, seconds: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    if header:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw failed responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def bench(database_url: str, seconds: int, connections: int) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "AUTHCORE_DATABASE_URL": database_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_fastapi:make_app", "--factory",
         "--app-dir", str(ROOT / "benchmarks"), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("uvicorn did not start") from None
                time.sleep(0.1)
        account = {"username": "bench", "password": "benchmark passphrase"}
        post(f"{base}/auth/register", json.dumps(account).encode(), "application/json")
        pair = post(f"{base}/auth/login", urllib.parse.urlencode(account).encode(),
                    "application/x-www-form-urlencoded")  # fmt: skip
        wrk(f"{base}/ping", None, 2, connections)  # warm-up
        return {
            "/ping (no auth)": wrk(f"{base}/ping", None, seconds, connections),
            "/notes (bearer JWT)": wrk(
                f"{base}/notes",
                f"Authorization: Bearer {pair['access_token']}",
                seconds,
                connections,
            ),
            "/notes (session cookie)": wrk(
                f"{base}/notes",
                f"Cookie: authcore_session={pair['refresh_token']}",
                seconds,
                connections,
            ),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt install wrk)")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        results["sqlite-file"] = bench(url, args.seconds, args.connections)
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.pgserver import PostgresServer

        with PostgresServer() as pg:
            results["postgres"] = bench(pg.create_database("bench"), args.seconds, args.connections)
    print(f"\nuvicorn, 1 worker; wrk -t1 -c{args.connections} -d{args.seconds}s; requests/s")
    for backend, figures in results.items():
        for route, rps in figures.items():
            print(f"  {backend:<12} {route:<26} {rps:>9,.0f}")


if __name__ == "__main__":
    main()
