"""authcore against the floor: the same work done by hand, side by side in one run.

Every target of issue 9 is a ratio authcore / floor, measured in the same
process and the same run, the two sides alternating (ABAB in odd rounds, BABA
in even ones) so that load from other work hits both alike. Each figure is the
median of ``--rounds`` rounds; each ratio is the median of the per-round
ratios.

Sections (``--only`` picks some, default all but ``postgres``):

``tokens``     ``hash_token(generate_token(uid))`` vs an f-string +
               ``secrets.token_hex(32)`` + SHA-256.
``jwt``        ``JWTManager`` issue+verify vs python-jose encode+decode
               (the same claims as ``bench_jwt.py``).
``passwords``  ``PasswordHasher(scheme="bcrypt").verify`` with 8 in flight vs
               CPU count x single-thread ``bcrypt.checkpw``; the event loop's
               longest stall meanwhile.
``sessions``   ``validate`` vs a raw Core select by the same indexed digest and
               ``create_session`` vs a raw Core insert of the same row, on one
               SQLite file and engine (WAL, pool of 8), at each ``--sizes``
               stored sessions, sequentially and with ``--concurrency`` tasks.
``purge``      ``purge_expired`` of ``--purge-rows`` expired sessions, in a
               child process: time and peak resident memory.
``postgres``   ``sessions`` on a throwaway PostgreSQL server (tests/pgserver.py),
               plus the cost of ``pool_pre_ping`` and of an experimental
               local closed-connection check that could replace it.

    python benchmarks/bench_floor.py                      # everything but PostgreSQL
    python benchmarks/bench_floor.py --only sessions --sizes 1000 --rounds 3
    python benchmarks/bench_floor.py --only postgres --sizes 1000,100000
    python benchmarks/bench_floor.py --json results.json  # the raw samples too
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import bcrypt
from sqlalchemy import delete, event, func, select
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import PasswordHasher, SessionStore, create_engine, create_schema, dispose_engine
from authcore.cli._floor import mint_and_digest, raw_insert, raw_select, seed_sessions, token_recipe
from authcore.cli._measure import Measurement, timed
from authcore.sessions._table import sessions_table

HERE = Path(__file__).resolve().parent
SECTIONS = ["tokens", "jwt", "passwords", "sessions", "purge", "postgres"]
POOL = {"pool_size": 8, "max_overflow": 0}
# Seeded sessions are fresh, so with this interval a validate in the bench never
# touches: it measures the read path (the touch is one small write at most once
# per interval per session, 60 s by default).
TOUCH = timedelta(hours=1)


# -- bookkeeping --------------------------------------------------------------------------


class Results:
    """Samples per (section, label, side) and the printed table."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.lines: list[str] = []
        self.extra: dict[str, Any] = {}

    def add(self, key: str, field: str, value: float) -> None:
        self.samples.setdefault(key, {}).setdefault(field, []).append(value)

    def median(self, key: str, field: str) -> float:
        return statistics.median(self.samples[key][field])

    def row(self, key: str, ours: str, floor: str, target: float, *, higher: bool = True) -> None:
        """One printed line: medians of both sides, median per-round ratio, target."""
        a, b = self.median(key, ours), self.median(key, floor)
        ratio = self.median(key, "ratio")
        ok = ratio >= target if higher else ratio <= target
        spread = self.samples[key]["ratio"]
        self.lines.append(
            f"{key:<40}{a:>12,.1f}{b:>12,.1f}{ratio:>8.2f}  "
            f"[{min(spread):.2f}-{max(spread):.2f}]  "
            f"{'>=' if higher else '<='} {target:<5}{'PASS' if ok else 'FAIL'}"
        )

    def note(self, text: str) -> None:
        self.lines.append(text)


def install_closed_check(engine: AsyncEngine) -> None:
    """Experimental, off by default: a local alternative to ``pool_pre_ping``.

    On each checkout, asks the driver whether it already knows the connection
    is closed (asyncpg's ``is_closed()``: the server ended it, or the socket
    saw EOF) and, if so, raises ``DisconnectionError`` so the pool replaces it.
    That costs no round trip, but it cannot see a connection that died
    silently (no FIN reached us); ``pool_pre_ping`` can. Measured here
    only; authcore's ``create_engine`` keeps ``pool_pre_ping``.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        is_closed = getattr(driver, "is_closed", None)
        if callable(is_closed) and is_closed():
            raise DisconnectionError("the server closed this connection")


def _orders(rounds: int) -> Iterator[tuple[int, bool]]:
    for number in range(rounds):
        yield number, number % 2 == 1  # odd rounds run the floor first


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- tokens and JWT (CPU only) ------------------------------------------------------------


def _rate(call: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        call()
    return count / (time.perf_counter() - start)


def bench_tokens(results: Results, args: argparse.Namespace) -> None:
    key = "token minting (ops/s)"
    _rate(mint_and_digest, 2000), _rate(token_recipe, 2000)  # warm up
    for _, floor_first in _orders(args.cpu_rounds):
        pair = [("floor", token_recipe), ("authcore", mint_and_digest)]
        for side, call in reversed(pair) if not floor_first else pair:
            results.add(key, side, _rate(call, args.token_ops))
        results.add(
            key, "ratio", results.samples[key]["authcore"][-1] / results.samples[key]["floor"][-1]
        )
    results.row(key, "authcore", "floor", 0.9)


def bench_jwt(results: Results, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import bench_jwt

    ours = bench_jwt.authcore_operations()["issue+verify"]
    theirs = bench_jwt.jose_operations()["issue+verify"]
    key = "JWT issue+verify (ops/s)"
    _rate(ours, 300), _rate(theirs, 300)
    for _, floor_first in _orders(args.cpu_rounds):
        pair = [("floor", theirs), ("authcore", ours)]
        for side, call in pair if floor_first else reversed(pair):
            results.add(key, side, _rate(call, args.jwt_ops))
        results.add(
            key, "ratio", results.samples[key]["authcore"][-1] / results.samples[key]["floor"][-1]
        )
    results.row(key, "authcore", "floor", 0.8)


# -- passwords ----------------------------------------------------------------------------


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


async def _stall_monitor(stop: asyncio.Event, interval: float = 0.001) -> float:
    """The longest the loop was late waking a 1 ms sleep, in seconds."""
    worst = 0.0
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(interval)
        worst = max(worst, time.perf_counter() - start - interval)
    return worst


async def _verify_in_flight(
    hasher: PasswordHasher, password: str, hashed: str, total: int, in_flight: int
) -> tuple[float, float]:
    """(verifications per second, longest loop stall in seconds) with *in_flight* at once."""
    stop = asyncio.Event()
    monitor = asyncio.create_task(_stall_monitor(stop))
    await asyncio.sleep(0.01)
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            assert await hasher.verify(password, hashed)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    rate = total / (time.perf_counter() - start)
    stop.set()
    return rate, await monitor


async def bench_passwords(results: Results, args: argparse.Namespace) -> None:
    cpus = _cpus()
    password = "correct horse battery staple"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(args.bcrypt_rounds)).decode()
    hasher = PasswordHasher(rounds=args.bcrypt_rounds, scheme="bcrypt")
    assert await hasher.verify(password, hashed)  # warm up: the backend, the pool
    key = f"password verify, 8 in flight, cost {args.bcrypt_rounds} (ops/s)"

    def single_thread() -> float:
        return _rate(lambda: bcrypt.checkpw(password.encode(), hashed.encode()), args.checkpw_ops)

    for _, floor_first in _orders(args.rounds):
        if floor_first:
            results.add(key, "floor", cpus * single_thread())
        rate, stall = await _verify_in_flight(hasher, password, hashed, args.verify_ops, 8)
        results.add(key, "authcore", rate)
        results.add("loop stall during verify (ms)", "max", stall * 1000)
        if not floor_first:
            results.add(key, "floor", cpus * single_thread())
        results.add(
            key, "ratio", results.samples[key]["authcore"][-1] / results.samples[key]["floor"][-1]
        )
    results.row(key, "authcore", "floor", 0.9)
    stalls = results.samples["loop stall during verify (ms)"]["max"]
    worst = max(stalls)
    results.note(
        f"{'longest event-loop stall while verifying (ms)':<40}{statistics.median(stalls):>12.2f}"
        f"{'':>12}{'':>8}  max {worst:.2f}        < 15 ms {'PASS' if worst < 15 else 'FAIL'}"
    )
    results.extra["cpus"] = cpus


# -- sessions on a database ---------------------------------------------------------------


class StatementCounter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def _run(
    calls: list[Callable[[], Awaitable[object]]], concurrency: int, name: str
) -> Measurement:
    measurement, _ = await timed(name, calls, concurrency)
    return measurement


async def _pair(
    results: Results,
    key: str,
    ours: list[Callable[[], Awaitable[object]]],
    floor: list[Callable[[], Awaitable[object]]],
    concurrency: int,
    floor_first: bool,
) -> None:
    sides = [("floor", floor), ("authcore", ours)]
    for side, calls in sides if floor_first else reversed(sides):
        m = await _run(calls, concurrency, side)
        results.add(key, side, m.ops_per_second)
        results.add(key, f"{side} p50", m.p50_ms)
        results.add(key, f"{side} p99", m.p99_ms)
    results.add(
        key, "ratio", results.samples[key]["authcore"][-1] / results.samples[key]["floor"][-1]
    )


async def _delete_users(engine: AsyncEngine, *user_ids: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(sessions_table).where(sessions_table.c.user_id.in_(user_ids)))


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(sessions_table)) or 0)


async def bench_sessions(
    results: Results, args: argparse.Namespace, engine: AsyncEngine, backend: str
) -> None:
    await create_schema(engine)
    store = SessionStore(engine, touch_interval=TOUCH)
    counter = StatementCounter(engine)
    seeded = 0
    sample_users = [f"sample-{n}" for n in range(100)]
    for size in args.sizes:
        _log(f"{backend}: seeding up to {size:,} sessions")
        start = time.perf_counter()
        await _delete_users(engine, *sample_users)  # the previous size's sample
        missing = size - args.ops - seeded
        if missing > 0:
            await seed_sessions(engine, missing, user_prefix="seed")
            seeded += missing
        # Seeded rows keep no tokens (only digests are stored): the tokens to
        # validate are *ops* more sessions, spread over 100 users.
        sample = await seed_sessions(
            engine, args.ops, user_prefix="sample", users=100, keep=args.ops
        )
        results.extra[f"{backend} stored sessions at {size}"] = await _count(engine)
        results.extra[f"{backend} seed {size} (s)"] = round(time.perf_counter() - start, 1)
        # One round trip per validate, no write: count the statements.
        before = counter.count
        for token in sample[:100]:
            await store.validate(token)
        results.extra[f"{backend} statements per validate at {size}"] = (
            counter.count - before
        ) / 100
        for number, floor_first in _orders(args.rounds):
            for mode, concurrency in (
                ("sequential", 1),
                (f"{args.concurrency} tasks", args.concurrency),
            ):
                order = sample[:]
                random.Random(number).shuffle(order)
                key = f"{backend} validate, {size:,} stored, {mode}"
                await _pair(
                    results,
                    key,
                    [lambda t=t: store.validate(t) for t in order],
                    [lambda t=t: raw_select(engine, t) for t in order],
                    concurrency,
                    floor_first,
                )
                key = f"{backend} create, {size:,} stored, {mode}"
                ops = args.create_ops
                await _pair(
                    results,
                    key,
                    [
                        lambda: store.create_session(
                            "bench-create-a", ip="192.0.2.1", user_agent="authcore bench"
                        )
                        for _ in range(ops)
                    ],
                    [lambda: raw_insert(engine, "bench-create-r") for _ in range(ops)],
                    concurrency,
                    floor_first,
                )
                await _delete_users(engine, "bench-create-a", "bench-create-r")
            _log(f"{backend} {size:,}: round {number + 1}/{args.rounds} done")
        for mode in ("sequential", f"{args.concurrency} tasks"):
            results.row(f"{backend} validate, {size:,} stored, {mode}", "authcore", "floor", 0.9)
            results.row(f"{backend} create, {size:,} stored, {mode}", "authcore", "floor", 0.8)
    if len(args.sizes) > 1:
        small, large = args.sizes[0], args.sizes[-1]
        for mode in ("sequential", f"{args.concurrency} tasks"):
            p_small = results.median(
                f"{backend} validate, {small:,} stored, {mode}", "authcore p99"
            )
            p_large = results.median(
                f"{backend} validate, {large:,} stored, {mode}", "authcore p99"
            )
            ratio = p_large / p_small
            verdict = "PASS" if ratio <= 1.5 else "FAIL"
            results.note(
                f"{backend + ' validate p99 ms, ' + mode:<40}{p_large:>12.3f}{p_small:>12.3f}"
                f"{ratio:>8.2f}  ({large:,} vs {small:,})   <= 1.5  {verdict}"
            )


# -- purge --------------------------------------------------------------------------------


def _memory_kb() -> dict[str, int]:
    """Current and peak resident memory of this process, in KiB (Linux /proc)."""
    figures = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0])
    return figures


async def purge_child(path: str) -> None:
    """Run in a child process: purge *path* and print time and memory as JSON."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}", **POOL)
    store = SessionStore(engine)
    before_rows = await _count(engine)
    before = _memory_kb()
    start = time.perf_counter()
    deleted = await store.purge_expired()
    seconds = time.perf_counter() - start
    after = _memory_kb()
    left = await _count(engine)
    await dispose_engine(engine)
    print(
        json.dumps(
            {
                "rows": before_rows,
                "deleted": deleted,
                "left": left,
                "seconds": seconds,
                "rss_before_kib": before["VmRSS"],
                "peak_rss_kib": after["VmHWM"],
            }
        )
    )


async def bench_purge(results: Results, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="authcore-bench-") as folder:
        path = Path(folder) / "purge.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}", **POOL)
        try:
            await create_schema(engine)
            _log(f"purge: seeding {args.purge_rows:,} expired sessions")
            start = time.perf_counter()
            await seed_sessions(engine, args.purge_rows, expired=True, batch=20_000)
            results.extra["purge seed (s)"] = round(time.perf_counter() - start, 1)
        finally:
            await dispose_engine(engine)
        _log("purge: purging in a child process")
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--purge-child", str(path), stdout=subprocess.PIPE
        )
        out, _ = await child.communicate()
        figures = json.loads(out)
    results.extra["purge"] = figures
    peak_mb = figures["peak_rss_kib"] / 1024
    results.note(
        f"purge_expired: {figures['deleted']:,} of {figures['rows']:,} rows in "
        f"{figures['seconds']:.1f} s ({figures['deleted'] / figures['seconds']:,.0f} rows/s), "
        f"{figures['left']} left; peak RSS of the whole process {peak_mb:.1f} MB "
        f"(before purging {figures['rss_before_kib'] / 1024:.1f} MB)   < 100 MB "
        f"{'PASS' if peak_mb < 100 else 'FAIL'}"
    )


# -- PostgreSQL ---------------------------------------------------------------------------


async def bench_postgres(results: Results, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE.parent))
    from tests.pgserver import PostgresServer

    server = PostgresServer()
    server.start()
    engines: dict[str, AsyncEngine] = {}
    try:
        url = server.create_database("bench")
        engines["pre-ping (default)"] = create_engine(url, **POOL)
        await bench_sessions(results, args, engines["pre-ping (default)"], "PostgreSQL")
        engines["no pre-ping"] = create_engine(url, pool_pre_ping=False, **POOL)
        engines["closed check"] = create_engine(url, pool_pre_ping=False, **POOL)
        install_closed_check(engines["closed check"])
        stores = {name: SessionStore(e, touch_interval=TOUCH) for name, e in engines.items()}
        sample = await seed_sessions(
            engines["no pre-ping"], args.ops, user_prefix="ping", users=10, keep=args.ops
        )
        for store in stores.values():  # warm up: fill each pool
            await timed("warm", [lambda s=store, t=t: s.validate(t) for t in sample[:200]], 8)
        names = list(stores)
        for number in range(args.rounds):
            for name in names[number % 3 :] + names[: number % 3]:  # rotate the order
                store = stores[name]
                m = await _run([functools.partial(store.validate, t) for t in sample], 1, "v")
                results.add("PostgreSQL pre-ping variants", f"{name} validate", m.ops_per_second)
                m = await _run(
                    [functools.partial(store.create_session, "ping-create")] * args.create_ops,
                    1,
                    "c",
                )
                results.add("PostgreSQL pre-ping variants", f"{name} create", m.ops_per_second)
            await _delete_users(engines["no pre-ping"], "ping-create")
        results.note("PostgreSQL, sequential ops/s by checkout check (medians):")
        for name in names:
            v = results.median("PostgreSQL pre-ping variants", f"{name} validate")
            c = results.median("PostgreSQL pre-ping variants", f"{name} create")
            results.note(f"  {name:<22} validate {v:>8,.0f}   create {c:>8,.0f}")
        results.extra["postgres"] = server.url("bench") if hasattr(server, "url") else url
    finally:
        for engine in engines.values():
            await dispose_engine(engine)
        server.stop()


# -- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> Results:
    results = Results()
    if "tokens" in args.only:
        _log("tokens")
        bench_tokens(results, args)
    if "jwt" in args.only:
        _log("jwt")
        bench_jwt(results, args)
    if "passwords" in args.only:
        _log("passwords")
        await bench_passwords(results, args)
    if "sessions" in args.only:
        with tempfile.TemporaryDirectory(prefix="authcore-bench-") as folder:
            engine = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}", **POOL)
            try:
                await bench_sessions(results, args, engine, "SQLite")
            finally:
                await dispose_engine(engine)
    if "purge" in args.only:
        await bench_purge(results, args)
    if "postgres" in args.only:
        await bench_postgres(results, args)
    return results


def _sizes(text: str) -> list[int]:
    return sorted(int(part) for part in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="tokens,jwt,passwords,sessions,purge",
        help=f"comma-separated sections of {','.join(SECTIONS)}",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement (median)")
    parser.add_argument("--sizes", type=_sizes, default=[1000, 100_000], help="stored sessions")
    parser.add_argument("--ops", type=int, default=1000, help="validates per side and round")
    parser.add_argument("--create-ops", type=int, default=500, help="creates per side and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--cpu-rounds", type=int, default=25, help="rounds for tokens and jwt (short, CPU only)"
    )
    parser.add_argument("--token-ops", type=int, default=10_000)
    parser.add_argument("--jwt-ops", type=int, default=1000)
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="bcrypt cost")
    parser.add_argument("--verify-ops", type=int, default=16, help="verifications per round")
    parser.add_argument("--checkpw-ops", type=int, default=4, help="single-thread checkpw calls")
    parser.add_argument("--purge-rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument("--purge-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.purge_child:
        asyncio.run(purge_child(args.purge_child))
        return
    args.only = [name.strip() for name in args.only.split(",")]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    results = asyncio.run(run(args))
    print(
        f"authcore vs the floor: Python {platform.python_version()}, "
        f"SQLAlchemy {version('sqlalchemy')}, aiosqlite {version('aiosqlite')}, "
        f"asyncpg {version('asyncpg')}, bcrypt {version('bcrypt')}, "
        f"python-jose {version('python-jose')}, {_cpus()} CPUs; "
        f"median of {args.rounds} rounds ({args.cpu_rounds} for tokens and JWT), sides "
        "alternating; ratio = authcore / floor "
        f"(median of per-round ratios, [min-max])"
    )
    print(f"{'measurement':<40}{'authcore':>12}{'floor':>12}{'ratio':>8}")
    for line in results.lines:
        print(line)
    for name, value in results.extra.items():
        print(f"  {name}: {value}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"samples": results.samples, "extra": results.extra, "args": vars(args)},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
