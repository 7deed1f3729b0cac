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
import dataclasses
import functools
import hashlib
import math
import os
import platform
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.db import create_engine, create_schema, dispose_engine
from authcore.db._errors import storage_errors
from authcore.db._schema import sessions_table
from authcore.files import remove_sqlite_database
from authcore.passwords import PasswordHasher
from authcore.sessions import SessionStore
from authcore.tokens import generate_token, hash_token, mint_token

__all__ = [
    "BenchReport",
    "Measurement",
    "mint_and_digest",
    "measure_create",
    "measure_hashing",
    "measure_mint",
    "measure_raw_insert",
    "measure_raw_select",
    "measure_token_recipe",
    "measure_tokens",
    "measure_validate",
    "percentile",
    "raw_insert",
    "raw_select",
    "run_bench",
    "seed_sessions",
    "token_recipe",
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


# -- the floor: the same work done by hand, on the same engine -----------------------------

_t = sessions_table
_RAW_SELECT = select(
    _t.c.id,
    _t.c.user_id,
    _t.c.created_at,
    _t.c.last_seen_at,
    _t.c.expires_at,
    _t.c.data,
    _t.c.ip,
    _t.c.user_agent,
    _t.c.family_id,
    _t.c.revoked_at,
    _t.c.revoke_reason,
).where(_t.c.token_hash == bindparam("digest"))
_RAW_INSERT = insert(_t)
_BENCH_TTL = timedelta(days=14)
_BENCH_IP = "192.0.2.1"
_BENCH_AGENT = "authcore bench"


def token_recipe(user_id: str = "bench-user") -> str:
    """The floor for minting: an f-string, ``secrets.token_hex(32)`` and SHA-256.

    Returns the digest; *user_id* must already be URL-safe (no encoding is done).
    """
    token = f"token_{user_id}_{time.time_ns() // 1000}_{secrets.token_hex(32)}"
    return hashlib.sha256(token.encode()).hexdigest()


def mint_and_digest(user_id: str = "bench-user") -> str:
    """What authcore does for the same job: :func:`generate_token` then :func:`hash_token`."""
    return hash_token(generate_token(user_id))


def _session_row(
    user_id: str, token: str, created_at: datetime, expires_at: datetime
) -> dict[str, Any]:
    """The row ``create_session`` stores, built by hand (the session id is its family id)."""
    session_id = secrets.token_urlsafe(16)
    return {
        "id": session_id,
        "token_hash": hashlib.sha256(token.encode()).hexdigest(),
        "family_id": session_id,
        "user_id": user_id,
        "created_at": created_at,
        "last_seen_at": created_at,
        "expires_at": expires_at,
        "revoked_at": None,
        "revoke_reason": None,
        "data": "{}",
        "ip": _BENCH_IP,
        "user_agent": _BENCH_AGENT,
    }


async def raw_select(engine: AsyncEngine, token: str) -> Any:
    """The floor for ``validate``: one Core select by the token's digest; the row or ``None``."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    async with engine.connect() as conn:
        return (await conn.execute(_RAW_SELECT, {"digest": digest})).first()


async def raw_insert(engine: AsyncEngine, user_id: str) -> str:
    """The floor for ``create_session``: the same row, one Core insert in its own transaction."""
    now = datetime.now(UTC)
    token = f"token_{user_id}_{time.time_ns() // 1000}_{secrets.token_hex(32)}"
    row = _session_row(user_id, token, now, now + _BENCH_TTL)
    async with engine.begin() as conn:
        await conn.execute(_RAW_INSERT, row)
    return token


def _loop(name: str, call: Callable[[], object], count: int) -> Measurement:
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - begin)
    return Measurement(name, count, time.perf_counter() - start, tuple(latencies))


def measure_mint(count: int) -> Measurement:
    """Mint *count* tokens and their digests (:func:`mint_and_digest`)."""
    return _loop("mint+digest", mint_and_digest, count)


def measure_token_recipe(count: int) -> Measurement:
    """The floor of :func:`measure_mint`: *count* calls of :func:`token_recipe`."""
    return _loop("token recipe", token_recipe, count)


async def measure_raw_insert(
    engine: AsyncEngine, user_id: str, count: int, *, concurrency: int = 1
) -> tuple[Measurement, list[str]]:
    """The floor of :func:`measure_create`: *count* :func:`raw_insert` calls."""
    calls = [functools.partial(raw_insert, engine, user_id) for _ in range(count)]
    return await _timed("raw insert", calls, concurrency)


async def measure_raw_select(
    engine: AsyncEngine, tokens: Sequence[str], *, concurrency: int = 1
) -> Measurement:
    """The floor of :func:`measure_validate`: one :func:`raw_select` per token, shuffled."""
    order = list(tokens)
    secrets.SystemRandom().shuffle(order)
    calls = [functools.partial(raw_select, engine, token) for token in order]
    measurement, _ = await _timed("raw select", calls, concurrency)
    return measurement


async def seed_sessions(
    engine: AsyncEngine,
    count: int,
    *,
    user_prefix: str = "bench-seed",
    users: int = 1000,
    expired: bool = False,
    keep: int = 0,
    batch: int = 10_000,
    now: datetime | None = None,
) -> list[str]:
    """Insert *count* sessions in bulk (Core ``executemany``, *batch* rows per transaction).

    Rows are what ``create_session`` would store, spread over *users* user ids;
    with *expired* they expired a second before *now*. Returns up to *keep*
    of their tokens, spread evenly over the rows, for validating.
    """
    now = now or datetime.now(UTC)
    expires_at = now - timedelta(seconds=1) if expired else now + _BENCH_TTL
    created_at = expires_at - _BENCH_TTL
    step = max(1, count // keep) if keep else 0
    kept: list[str] = []
    for first in range(0, count, batch):
        rows = []
        for n in range(first, min(first + batch, count)):
            user_id = f"{user_prefix}-{n % users}"
            token = mint_token(user_id, 32, created_at)
            rows.append(_session_row(user_id, token, created_at, expires_at))
            if step and n % step == 0 and len(kept) < keep:
                kept.append(token)
        with storage_errors("seeding sessions"):
            async with engine.begin() as conn:
                await conn.execute(_RAW_INSERT, rows)
    return kept


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


def _against(measured: Measurement, floor: Measurement) -> Measurement:
    """*measured* with its throughput relative to *floor* in its note."""
    ratio = measured.ops_per_second / floor.ops_per_second if floor.ops_per_second else 0.0
    note = f"{ratio:.2f}x {floor.name}"
    return dataclasses.replace(measured, note=f"{measured.note}, {note}" if measured.note else note)


async def run_bench(
    url: str | None = None,
    *,
    sessions: int = 1000,
    tokens: int = 20_000,
    hashes: int = 5,
    rounds: int = 12,
    concurrency: int = 1,
    compare: bool = False,
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
        compare: Also measure the floor of each operation (the same work by
            hand: a token recipe, a raw Core insert and select on the same
            engine) and note each ratio; ``benchmarks/bench_floor.py`` does
            this thoroughly.
    """
    temporary = url is None
    user_id = f"authcore-bench-{secrets.token_hex(8)}"
    results: list[Measurement] = [measure_tokens(tokens)]
    if compare:
        measure_mint(min(tokens, 1000))  # warm-up
        measure_token_recipe(min(tokens, 1000))
        floor = measure_token_recipe(tokens)
        results += [_against(measure_mint(tokens), floor), floor]
    async with _bench_engine(url) as engine:
        database = engine.url.render_as_string(hide_password=True)
        await create_schema(engine)
        store = SessionStore(engine)
        try:
            await store.validate(await store.create_session(user_id))  # warm-up: connects
            created, new_tokens = await measure_create(
                store, user_id, sessions, concurrency=concurrency
            )
            validated = await measure_validate(store, new_tokens, concurrency=concurrency)
            if compare:
                inserted, raw_tokens = await measure_raw_insert(
                    engine, user_id, sessions, concurrency=concurrency
                )
                selected = await measure_raw_select(engine, raw_tokens, concurrency=concurrency)
                results += [_against(created, inserted), inserted]
                results += [_against(validated, selected), selected]
            else:
                results += [created, validated]
        finally:
            with storage_errors("deleting the bench's sessions"):
                async with engine.begin() as conn:
                    await conn.execute(
                        delete(sessions_table).where(sessions_table.c.user_id == user_id)
                    )
    results.append(await measure_hashing(hashes, rounds=rounds))
    return BenchReport(database, temporary, tuple(results))
