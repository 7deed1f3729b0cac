"""The measurements behind ``authcore bench``, reusable by benchmark scripts.

Each ``measure_*`` coroutine runs one operation a given number of times and
returns a :class:`Measurement` (throughput and latency percentiles);
:func:`run_bench` runs them all against a database and returns a
:class:`BenchReport`, which renders as a table or as JSON. A script under
``benchmarks/`` can call the pieces directly::

    async with managed_engine(url) as engine:
        store = SessionStore(engine)
        created, tokens = await measure_create(store, "bench-user", 1000)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import platform
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.db import create_engine, create_schema, dispose_engine
from authcore.db._errors import storage_errors
from authcore.db._schema import sessions_table
from authcore.files import remove_sqlite_database
from authcore.passwords import PasswordHasher
from authcore.sessions import SessionStore
from authcore.tokens import generate_token

__all__ = [
    "BenchReport",
    "Measurement",
    "measure_create",
    "measure_hashing",
    "measure_tokens",
    "measure_validate",
    "percentile",
    "run_bench",
]

_T = TypeVar("_T")


def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0..100) of *values*, nearest-rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Measurement:
    """One operation measured *count* times.

    Attributes:
        name: What was measured (``"create_session"``...).
        count: How many operations ran.
        seconds: Wall-clock time for all of them.
        latencies: Seconds taken by each operation.
        concurrency: How many ran at once.
        note: Extra context for the table (e.g. the bcrypt cost).
    """

    name: str
    count: int
    seconds: float
    latencies: tuple[float, ...] = field(repr=False)
    concurrency: int = 1
    note: str = ""

    @property
    def ops_per_second(self) -> float:
        """Throughput: operations per wall-clock second."""
        return self.count / self.seconds if self.seconds > 0 else math.inf

    @property
    def p50_ms(self) -> float:
        """Median latency in milliseconds."""
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        """99th-percentile latency in milliseconds."""
        return percentile(self.latencies, 99) * 1000

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (rounded)."""
        return {
            "name": self.name,
            "count": self.count,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 6),
            "ops_per_second": round(self.ops_per_second, 1),
            "p50_ms": round(self.p50_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "note": self.note,
        }


async def _timed(
    name: str,
    calls: Sequence[Callable[[], Awaitable[_T]]],
    concurrency: int,
    note: str = "",
) -> tuple[Measurement, list[_T]]:
    """Run *calls* with at most *concurrency* in flight; time each and the whole."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    latencies = [0.0] * len(calls)
    results: list[Any] = [None] * len(calls)
    queue = iter(range(len(calls)))

    async def worker() -> None:
        for index in queue:
            start = time.perf_counter()
            results[index] = await calls[index]()
            latencies[index] = time.perf_counter() - start

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(calls)) or 1):
            group.create_task(worker())
    seconds = time.perf_counter() - start
    measurement = Measurement(name, len(calls), seconds, tuple(latencies), concurrency, note)
    return measurement, results


def measure_tokens(count: int) -> Measurement:
    """Mint *count* tokens with :func:`~authcore.generate_token` (CPU only, no I/O)."""
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        generate_token("bench-user")
        latencies.append(time.perf_counter() - begin)
    return Measurement("generate_token", count, time.perf_counter() - start, tuple(latencies))


async def measure_create(
    store: SessionStore, user_id: str, count: int, *, concurrency: int = 1
) -> tuple[Measurement, list[str]]:
    """Create *count* sessions for *user_id*; the measurement and the tokens."""
    calls = [
        lambda: store.create_session(user_id, ip="192.0.2.1", user_agent="authcore bench")
        for _ in range(count)
    ]
    return await _timed("create_session", calls, concurrency)


async def measure_validate(
    store: SessionStore, tokens: Sequence[str], *, concurrency: int = 1
) -> Measurement:
    """Validate each of *tokens* once, in a shuffled order."""
    order = list(tokens)
    secrets.SystemRandom().shuffle(order)
    calls = [functools.partial(store.validate, token) for token in order]
    measurement, _ = await _timed("validate", calls, concurrency)
    return measurement


async def measure_hashing(
    count: int, *, rounds: int = 12, scheme: str = "bcrypt_sha256"
) -> Measurement:
    """Hash a password *count* times, one at a time, through the async API."""
    hasher = PasswordHasher(rounds=rounds, scheme=scheme)
    password = secrets.token_urlsafe(12)
    await PasswordHasher(rounds=4).hash(password)  # warm-up: loads the bcrypt backend
    calls = [lambda: hasher.hash(password) for _ in range(count)]
    note = f"{scheme}, {rounds} rounds"
    measurement, _ = await _timed("hash_password", calls, 1, note=note)
    return measurement


@dataclass(frozen=True)
class BenchReport:
    """Everything ``authcore bench`` measured, and on what.

    Attributes:
        database: The database URL, password masked.
        temporary: Whether the database was a throwaway SQLite file.
        results: One :class:`Measurement` per operation.
    """

    database: str
    temporary: bool
    results: tuple[Measurement, ...]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "database": self.database,
            "temporary": self.temporary,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "results": [m.as_dict() for m in self.results],
        }

    def table(self) -> str:
        """The report as an aligned plain-text table."""
        where = "temporary SQLite database" if self.temporary else self.database
        lines = [
            f"authcore bench on {where}",
            f"Python {platform.python_version()}, {os.cpu_count()} CPU(s)",
            "",
            f"{'operation':<16}{'count':>8}{'ops/s':>12}{'p50 ms':>10}{'p99 ms':>10}  notes",
        ]
        for m in self.results:
            notes = [f"concurrency {m.concurrency}"] if m.concurrency > 1 else []
            if m.note:
                notes.append(m.note)
            lines.append(
                f"{m.name:<16}{m.count:>8}{m.ops_per_second:>12,.1f}"
                f"{m.p50_ms:>10.3f}{m.p99_ms:>10.3f}  {', '.join(notes)}".rstrip()
            )
        return "\n".join(lines)


@contextlib.asynccontextmanager
async def _bench_engine(url: str | None) -> AsyncIterator[AsyncEngine]:
    """An engine on *url*, or on a temporary SQLite file removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="authcore-bench-") as folder:
        path = Path(folder) / "bench.db"
        engine = create_engine(url or f"sqlite+aiosqlite:///{path}")
        try:
            yield engine
        finally:
            await dispose_engine(engine)
            remove_sqlite_database(path)


async def run_bench(
    url: str | None = None,
    *,
    sessions: int = 1000,
    tokens: int = 20_000,
    hashes: int = 5,
    rounds: int = 12,
    concurrency: int = 1,
) -> BenchReport:
    """Measure token minting, session create and validate, and password hashing.

    On *url*, or on a temporary SQLite file when it is ``None``. On a given
    database the schema is created if missing, and the sessions the bench
    creates (for a random user id) are deleted afterwards.

    Args:
        url: An async SQLAlchemy URL, or ``None`` for a temporary SQLite file.
        sessions: Sessions to create, then validate.
        tokens: Tokens to mint.
        hashes: Passwords to hash.
        rounds: bcrypt cost of the hashes.
        concurrency: Session operations in flight at once.
    """
    temporary = url is None
    user_id = f"authcore-bench-{secrets.token_hex(8)}"
    results: list[Measurement] = [measure_tokens(tokens)]
    async with _bench_engine(url) as engine:
        database = engine.url.render_as_string(hide_password=True)
        await create_schema(engine)
        store = SessionStore(engine)
        try:
            await store.validate(await store.create_session(user_id))  # warm-up: connects
            created, new_tokens = await measure_create(
                store, user_id, sessions, concurrency=concurrency
            )
            results.append(created)
            results.append(await measure_validate(store, new_tokens, concurrency=concurrency))
        finally:
            with storage_errors("deleting the bench's sessions"):
                async with engine.begin() as conn:
                    await conn.execute(
                        delete(sessions_table).where(sessions_table.c.user_id == user_id)
                    )
    results.append(await measure_hashing(hashes, rounds=rounds))
    return BenchReport(database, temporary, tuple(results))
