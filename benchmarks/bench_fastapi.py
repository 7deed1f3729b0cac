"""Requests per second of a protected FastAPI route under uvicorn, measured with wrk.

    python benchmarks/bench_fastapi.py [--seconds 5] [--rounds 3] [--connections 32]
        [--postgres | --postgres-only] [--fu /tmp/fu/bin/python] [--gc-freeze]
        [--trace-stalls FILE]

Serves, each with one uvicorn worker on 127.0.0.1, the example app
(``examples/fastapi_app.py``) with two extra routes, and (with ``--fu``, the
Python of a virtualenv holding fastapi-users 15, see ``fu_app.py``)
fastapi-users with its DatabaseStrategy. Then, round after round, each round
in a rotated order, wrk (``apt install wrk``) drives:

- ``/ping``: no authentication (the framework's ceiling);
- ``/floor``: one raw SQLAlchemy Core select of the session by its token's
  digest, on the same app (a minimal hand-written check);
- ``/notes`` with ``Authorization: Bearer <JWT>``: authcore's ``current_user``;
- ``/notes`` with the session cookie: the same, by cookie;
- fastapi-users' ``/notes`` behind ``current_user(active=True)``.

Reported: the median of each route's requests/s over the rounds, the median
(and range) of its per-round ratio to the same round's ``/ping``, its median
p99 latency, and, measured in the authcore server while wrk drove that route:
the longest single event-loop callback (CPU time of the loop's thread), the
same without the garbage collector's pauses inside it ("own"), the longest
garbage collector pause, the longest inline SQLite read, and how late a 1 ms
sleep woke up; and the server's CPU time per request ("cpu us", every thread
of the process: less sensitive to other load on the machine than requests/s,
but blind to the database server's own CPU). A closing summary gives, per
backend and credential, the ratios to the no-auth route and to fastapi-users
(medians of per-round ratios), the CPU ratio (the no-auth route's CPU per
request over the route's), the p99, the longest own callback and GC pause,
and whether the goal (>= 0.5x, >= 3x, every callback < 15 ms, GC pauses in it included)
is met, or why not. ``--no-pre-ping`` turns authcore's
``pool_pre_ping`` off, to see what it costs (a measurement only);
``--gc-freeze`` has the authcore app call ``gc.freeze()`` once started, as
docs/performance.md advises. ``--trace-stalls FILE`` writes the loop thread's
stack whenever one callback runs past 10 ms (a watchdog thread takes it), to
see what holds the loop. The database is a SQLite file in a temporary
folder, and with ``--postgres`` also a throwaway PostgreSQL started from the
test suite's helper (``--postgres-only``: that one alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request, Response  # module level: FastAPI resolves the annotations

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-that-is-long-enough-0123"
ROUTES = (
    "no auth",
    "floor (1 Core select)",
    "authcore bearer",
    "authcore cookie",
    "fastapi-users db",
)


def make_app() -> Any:
    """The uvicorn factory: the example app, an unauthenticated /ping, the /floor and /stall."""
    sys.path.insert(0, str(ROOT / "examples"))
    from fastapi_app import create_app
    from sqlalchemy import select

    from authcore import db as _fast  # replaced below when the hot path's module is there
    from authcore import hash_token
    from authcore.db import metadata

    with contextlib.suppress(ImportError):
        from authcore.db import _fast

    app = create_app(os.environ["AUTHCORE_DATABASE_URL"], SECRET)
    engine = app.state.auth.engine
    if os.environ.get("BENCH_NO_PRE_PING"):  # what pool_pre_ping costs (measurement only)
        engine.sync_engine.pool._pre_ping = False
    if os.environ.get("BENCH_POOL_SIZE"):  # keep that many idle (measurement only)
        engine.sync_engine.pool._pool.maxsize = int(os.environ["BENCH_POOL_SIZE"])
    inline = {"max": 0.0}  # the longest inline SQLite read: what the hot path holds the loop
    reader = getattr(_fast, "_InlineReader", None)  # absent before authcore 0.3's hot path
    if reader is not None:
        fetch = reader.fetch

        def timed_fetch(self: Any, sql: str, args: tuple[Any, ...]) -> Any:
            start = time.thread_time()  # CPU time: what the loop spent, preemption left out
            try:
                return fetch(self, sql, args)
            finally:
                inline["max"] = max(inline["max"], time.thread_time() - start)

        reader.fetch = timed_fetch
    sessions = metadata.tables["authcore_sessions"]
    floor_query = select(sessions.c.id, sessions.c.user_id)
    stall = {"wall": 0.0, "callback": 0.0, "own": 0.0, "gc": 0.0}
    in_gc = [0.0]  # the garbage collector's time inside the running callback
    run = asyncio.events.Handle._run

    running = [0.0]  # when the running callback started (perf_counter), 0.0 between them

    def timed_run(self: asyncio.Handle) -> None:
        # The longest single callback, in the loop thread's CPU time (preemption by
        # other processes left out): the event loop's longest stall of its own making;
        # "own": the same without the garbage collector's pauses inside it.
        in_gc[0] = 0.0
        start = time.thread_time()
        running[0] = time.perf_counter()
        try:
            run(self)
        finally:
            running[0] = 0.0
            took = time.thread_time() - start
            stall["callback"] = max(stall["callback"], took)
            stall["own"] = max(stall["own"], took - in_gc[0])

    if os.environ.get("BENCH_TRACE_STALLS"):
        trace_stalls(os.environ["BENCH_TRACE_STALLS"], running)

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    gc_started = [0.0]

    def gc_pause(phase: str, _info: dict[str, int]) -> None:  # the garbage collector's pauses
        if phase == "start":
            gc_started[0] = time.thread_time()
        else:
            pause = time.thread_time() - gc_started[0]
            in_gc[0] += pause
            stall["gc"] = max(stall["gc"], pause)

    gc.callbacks.append(gc_pause)
    monitor: list[asyncio.Task[None]] = []

    async def watch() -> None:
        # How late a 1 ms sleep wakes up: every callback ready before it runs
        # first (32 connections' worth), and on a loaded machine the process
        # also waits for a CPU.
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            stall["wall"] = max(stall["wall"], loop.time() - before - 0.001)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        if not monitor:
            monitor.append(asyncio.create_task(watch()))
            if os.environ.get("BENCH_GC_FREEZE"):  # start-up done: what the docs advise
                gc.collect()
                gc.freeze()
        return {"pong": "ok"}

    @app.get("/floor")
    async def floor(request: Request) -> Any:
        token = request.cookies.get("authcore_session", "")
        digest = hash_token(token)
        query = floor_query.where(sessions.c.token_hash == digest)
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return Response(status_code=401)
        return {"session": row.id}

    cpu = [time.process_time()]

    @app.get("/stall")
    async def read_stall() -> dict[str, float]:
        values = {key: value * 1000 for key, value in stall.items()}
        values["inline"] = inline["max"] * 1000
        now = time.process_time()  # the server's CPU (every thread) since the last call
        values["cpu"], cpu[0] = now - cpu[0], now
        stall.update(wall=0.0, callback=0.0, own=0.0, gc=0.0)
        inline["max"] = 0.0
        return values

    return app


def trace_stalls(path: str, running: list[float], after: float = 0.010) -> None:
    """Write the loop thread's stack to *path* whenever one callback runs past *after* s.

    A watchdog thread looks every millisecond; it writes one stack per long callback, taken
    when the callback passes the mark, so the report says where the loop was stuck.
    """
    loop_thread = threading.get_ident()

    def watch() -> None:
        traced = 0.0
        while True:
            time.sleep(0.001)
            started = running[0]
            if started and started != traced and time.perf_counter() - started > after:
                traced = started
                frame = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_stack(frame)) if frame else "?"
                with open(path, "a", encoding="utf-8") as out:
                    out.write(f"--- a callback past {after * 1000:.0f} ms\n{stack}")

    threading.Thread(target=watch, name="stall-tracer", daemon=True).start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, data: bytes, content_type: str) -> Any:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, header: str | None, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests/s, p99 latency in ms and the number of requests."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if header:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw failed responses:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    count = re.search(r"(\d+) requests in", out)
    assert rps, out
    assert p99, out
    assert count, out
    return float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], int(count.group(1))


@contextmanager
def serve(command: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    server = subprocess.Popen(command, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"{command[0]} did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def uvicorn(python: str, target: str, app_dir: Path, port: int, factory: bool) -> list[str]:
    command = [python, "-m", "uvicorn", target, "--app-dir", str(app_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log"]
    return [*command, "--factory"] if factory else command


def bench(urls: tuple[str, str | None], args: argparse.Namespace) -> dict[str, list[Figures]]:
    """Per route, its figures in every round."""
    authcore_url, fu_url = urls
    port, fu_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        env = {"AUTHCORE_DATABASE_URL": authcore_url}
        if args.no_pre_ping:
            env["BENCH_NO_PRE_PING"] = "1"
        if args.gc_freeze:
            env["BENCH_GC_FREEZE"] = "1"
        if args.trace_stalls:
            env["BENCH_TRACE_STALLS"] = str(Path(args.trace_stalls).resolve())
        command = uvicorn(sys.executable, "bench_fastapi:make_app", ROOT / "benchmarks", port, True)
        base = stack.enter_context(serve(command, env, port))
        account = {"username": "bench", "password": "benchmark passphrase"}
        post(f"{base}/auth/register", json.dumps(account).encode(), "application/json")
        pair = post(f"{base}/auth/login", urllib.parse.urlencode(account).encode(),
                    "application/x-www-form-urlencoded")  # fmt: skip
        cookie = f"Cookie: authcore_session={pair['refresh_token']}"
        targets: dict[str, tuple[str, str | None]] = {
            ROUTES[0]: (f"{base}/ping", None),
            ROUTES[1]: (f"{base}/floor", cookie),
            ROUTES[2]: (f"{base}/notes", f"Authorization: Bearer {pair['access_token']}"),
            ROUTES[3]: (f"{base}/notes", cookie),
        }
        if fu_url is not None:
            token = secrets.token_urlsafe(32)
            fu_base = stack.enter_context(
                serve(
                    uvicorn(args.fu, "fu_app:app", ROOT / "benchmarks", fu_port, False),
                    {"FU_DATABASE_URL": fu_url, "FU_TOKEN": token},
                    fu_port,
                )
            )
            targets[ROUTES[4]] = (f"{fu_base}/notes", f"Authorization: Bearer {token}")
        for url, header in targets.values():  # warm-up, and every route answers 2xx
            wrk(url, header, 1, args.connections)
        results: dict[str, list[Figures]] = {name: [] for name in targets}
        names = list(targets)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                url, header = targets[name]
                get_json(f"{base}/stall")  # reset
                rps, p99, count = wrk(url, header, args.seconds, args.connections)
                stall = get_json(f"{base}/stall")
                cpu = stall["cpu"] * 1e6 / count if name != ROUTES[4] else 0.0
                results[name].append(
                    Figures(
                        rps,
                        p99,
                        stall["wall"],
                        stall["callback"],
                        stall["own"],
                        stall["gc"],
                        stall["inline"],
                        cpu,
                    )
                )
        return results


@dataclass(frozen=True)
class Figures:
    """One route's run in one round."""

    rps: float
    p99: float  # ms
    stall_wall: float  # ms: the longest a 1 ms sleep of the authcore server overslept
    stall_callback: float  # ms: the longest one callback ran (CPU time of the loop's thread)
    stall_own: float  # ms: the same, the garbage collector's pauses inside it left out
    gc: float  # ms: the longest pause of the garbage collector
    inline: float  # ms: the longest inline SQLite read
    cpu: float  # µs: the authcore server's CPU time per request (all its threads)


def _ratios(mine: list[Figures], base: list[Figures]) -> list[float]:
    return [a.rps / b.rps for a, b in zip(mine, base, strict=True)]


def report(backend: str, results: dict[str, list[Figures]]) -> list[str]:
    """Print *backend*'s table; return its lines of the closing summary."""
    ping = results[ROUTES[0]]
    print(f"\n{backend}: medians of {len(ping)} rounds; stalls (ms): the longest over the rounds")
    print(f"  {'route':<22} {'req/s':>7} {'/no-auth':>8} {'(range)':>11} {'p99 ms':>7}"
          f" {'loop late':>9} {'callback':>8} {'own':>5} {'gc':>5} {'inline':>6}"
          f" {'cpu us':>6}")  # fmt: skip
    for name, runs in results.items():
        rps = statistics.median(f.rps for f in runs)
        ratios = _ratios(runs, ping)
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        p99 = statistics.median(f.p99 for f in runs)
        stalls = ["-"] * 6
        if name != ROUTES[4]:
            keys = ("stall_wall", "stall_callback", "stall_own", "gc", "inline")
            stalls = [f"{max(getattr(f, key) for f in runs):.1f}" for key in keys]
            stalls.append(f"{statistics.median(f.cpu for f in runs):.0f}")
        print(f"  {name:<22} {rps:>7,.0f} {statistics.median(ratios):>8.2f} {spread:>11}"
              f" {p99:>7.1f} {stalls[0]:>9} {stalls[1]:>8} {stalls[2]:>5} {stalls[3]:>5}"
              f" {stalls[4]:>6} {stalls[5]:>6}")  # fmt: skip
    summary = []
    for name in ROUTES[2:4]:
        runs = results[name]
        ratio = statistics.median(_ratios(runs, ping))
        fu = None
        if ROUTES[4] in results:
            fu = statistics.median(_ratios(runs, results[ROUTES[4]]))
        by_cpu = statistics.median(p.cpu / f.cpu for f, p in zip(runs, ping, strict=True))
        own = max(f.stall_own for f in runs)
        gc_pause = max(f.gc for f in runs)
        longest = max(f.stall_callback for f in runs)
        missed: list[str] = []
        if ratio < 0.5:
            missed.append("< 0.5x no-auth")
        if fu is not None and fu < 3.0:
            missed.append("< 3x fastapi-users")
        if own >= 15:
            missed.append(f"own {own:.0f} ms")
        elif longest >= 15:  # the callback's own work was short: the collector's pause was not
            missed.append(f"GC {gc_pause:.0f} ms (--gc-freeze)")
        fu_text = "-" if fu is None else f"{fu:.2f}x"
        summary.append(
            f"  {backend:<12} {name.removeprefix('authcore '):<7} {ratio:>8.2f} {by_cpu:>7.2f}"
            f" {fu_text:>9}"
            f" {statistics.median(f.p99 for f in runs):>7.1f} {own:>7.1f} {gc_pause:>6.1f}"
            f"  {'NOT met: ' + ', '.join(missed) if missed else 'met'}"
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL")
    parser.add_argument("--postgres-only", action="store_true", help="PostgreSQL, not SQLite")
    parser.add_argument(
        "--no-pre-ping", action="store_true", help="authcore's pool without pool_pre_ping"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() in the authcore app after start-up"
    )
    parser.add_argument(
        "--trace-stalls", metavar="FILE", help="write the stack of every callback over 10 ms"
    )
    parser.add_argument("--fu", help="the Python of a virtualenv with fastapi-users 15")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt install wrk)")
    print(f"load average before: {os.getloadavg()}")
    summary: list[str] = []
    if not args.postgres_only:
        with tempfile.TemporaryDirectory() as folder:
            fu_url = f"sqlite+aiosqlite:///{Path(folder) / 'fu.db'}" if args.fu else None
            urls = (f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}", fu_url)
            summary += report("sqlite-file", bench(urls, args))
    if args.postgres or args.postgres_only:
        sys.path.insert(0, str(ROOT))
        from tests.pgserver import PostgresServer

        with PostgresServer() as pg:
            fu = pg.create_database("fu") if args.fu else None
            summary += report("postgres", bench((pg.create_database("bench"), fu), args))
    print(f"\nuvicorn, 1 worker each; wrk -t1 -c{args.connections} -d{args.seconds}s --latency")
    print(f"load average after: {os.getloadavg()}")
    print("\nThe goal: >= 0.50x the no-auth route, >= 3x fastapi-users, every callback < 15 ms")
    print(f"  {'backend':<12} {'route':<7} {'/no-auth':>8} {'by cpu':>7} {'/fu':>9} {'p99 ms':>7}"
          f" {'own ms':>7} {'gc ms':>6}  goal")  # fmt: skip
    print("\n".join(summary))


if __name__ == "__main__":
    main()
