"""Benchmark SessionStore.create_session and validate on a SQLite file and on PostgreSQL.

Both backends run in the same process and the same run, interleaved round by
round, so machine load hits both alike. Each round times ``--operations``
calls per measurement, one after another ("sequential") and with
``--concurrency`` tasks in flight ("concurrent"); the table shows the median
of ``--rounds`` rounds in operations per second.

Validates use the default 60 s touch interval, so nearly all of them are a
single indexed read; creates are one INSERT each in its own transaction.

PostgreSQL is a throwaway server started for the run (tests/pgserver.py,
which needs the PostgreSQL server binaries) unless ``--postgres-url`` names
one. The throwaway server runs with ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off; the SQLite file uses authcore's defaults (WAL,
``synchronous=NORMAL``), which do not fsync each commit either.

    python benchmarks/bench_backends.py [--operations 2000] [--rounds 5]
        [--concurrency 32] [--postgres-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import SessionStore, create_engine, create_schema, dispose_engine

MEASUREMENTS = [
    "create sequential",
    "create concurrent",
    "validate sequential",
    "validate concurrent",
]


async def _sequential(call: Callable[[int], Awaitable[object]], count: int) -> float:
    start = time.perf_counter()
    for n in range(count):
        await call(n)
    return count / (time.perf_counter() - start)


async def _concurrent(
    call: Callable[[int], Awaitable[object]], count: int, concurrency: int
) -> float:
    async def worker(first: int) -> None:
        for n in range(first, count, concurrency):
            await call(n)

    start = time.perf_counter()
    await asyncio.gather(*(worker(first) for first in range(concurrency)))
    return count / (time.perf_counter() - start)


async def one_round(store: SessionStore, count: int, concurrency: int) -> dict[str, float]:
    """Ops/s for each measurement; creates first, then validates of the tokens just made."""
    tokens: list[str] = [""] * count

    async def create(n: int) -> None:
        tokens[n] = await store.create_session(f"user{n % 100}")

    async def validate(n: int) -> None:
        await store.validate(tokens[n])

    return {
        "create sequential": await _sequential(create, count),
        "create concurrent": await _concurrent(create, count, concurrency),
        "validate sequential": await _sequential(validate, count),
        "validate concurrent": await _concurrent(validate, count, concurrency),
    }


async def _server_version(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(text("show server_version")))


async def run(urls: dict[str, str], args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    engines = {name: create_engine(url) for name, url in urls.items()}
    if args.without_pre_ping:  # what the check-out ping costs: one round trip per checkout
        engines["PG, no pre-ping"] = create_engine(urls["PostgreSQL"], pool_pre_ping=False)
    samples: dict[str, dict[str, list[float]]] = {
        name: {m: [] for m in MEASUREMENTS} for name in engines
    }
    try:
        stores = {}
        for name, engine in engines.items():
            await create_schema(engine)
            stores[name] = SessionStore(engine)
            await one_round(stores[name], 200, args.concurrency)  # warm up: pool, caches
        if "PostgreSQL" in engines:
            args.pg_version = await _server_version(engines["PostgreSQL"])
        for number in range(1, args.rounds + 1):
            for name, store in stores.items():  # interleaved: drift hits both alike
                for measurement, rate in (
                    await one_round(store, args.operations, args.concurrency)
                ).items():
                    samples[name][measurement].append(rate)
            print(f"round {number}/{args.rounds} done", file=sys.stderr)
    finally:
        for engine in engines.values():
            await dispose_engine(engine)
    return samples


def _throwaway_postgres() -> object:
    """Start tests/pgserver.py's PostgresServer (the repository root must be importable)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pgserver import PostgresServer

    server = PostgresServer()
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres-url", help="an existing database (its data is kept)")
    parser.add_argument(
        "--without-pre-ping",
        action="store_true",
        help="also measure PostgreSQL with pool_pre_ping off (not a recommended setting)",
    )
    args = parser.parse_args()
    args.pg_version = "?"

    server = None
    with tempfile.TemporaryDirectory(prefix="authcore-bench-") as folder:
        try:
            if args.postgres_url:
                pg_url = args.postgres_url
                where = "given server"
            else:
                server = _throwaway_postgres()
                pg_url = server.create_database("bench")  # type: ignore[attr-defined]
                where = "throwaway server, fsync off"
            urls = {
                "SQLite file": f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}",
                "PostgreSQL": pg_url,
            }
            samples = asyncio.run(run(urls, args))
        finally:
            if server is not None:
                server.stop()  # type: ignore[attr-defined]

    print(
        f"authcore SessionStore, Python {platform.python_version()}, "
        f"SQLAlchemy {version('sqlalchemy')}, aiosqlite {version('aiosqlite')}, "
        f"asyncpg {version('asyncpg')}, PostgreSQL {args.pg_version} ({where}), "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"median of {args.rounds} rounds x {args.operations} calls; "
        f"concurrent = {args.concurrency} tasks in flight; operations per second"
    )
    extra = [name for name in samples if name not in ("SQLite file", "PostgreSQL")]
    header = f"{'operation':<22}{'SQLite file':>14}{'PostgreSQL':>14}{'PG / SQLite':>14}"
    print(header + "".join(f"{name:>18}" for name in extra))
    for measurement in MEASUREMENTS:
        lite = statistics.median(samples["SQLite file"][measurement])
        pg = statistics.median(samples["PostgreSQL"][measurement])
        line = f"{measurement:<22}{lite:>14,.0f}{pg:>14,.0f}{pg / lite:>14.2f}"
        line += "".join(f"{statistics.median(samples[n][measurement]):>18,.0f}" for n in extra)
        print(line)


if __name__ == "__main__":
    main()
