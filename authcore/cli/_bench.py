"""The measurements behind ``authcore bench``, reusable by benchmark scripts.

Each ``measure_*`` coroutine runs one operation a given number of times and
returns a :class:`~authcore.cli._measure.Measurement` (throughput and latency
percentiles); :func:`run_bench` runs them all against a database and returns a
:class:`BenchReport`, which renders as a table or as JSON. The floor of each
operation (the same work done by hand) is in :mod:`authcore.cli._floor`. A
script under ``benchmarks/`` can call the pieces directly::

    async with managed_engine(url) as engine:
        store = SessionStore(engine)
        created, tokens = await measure_create(store, "bench-user", 1000)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.cli._floor import (
    measure_mint,
    measure_raw_insert,
    measure_raw_select,
    measure_token_recipe,
)
from authcore.cli._measure import Measurement, timed, timed_loop
from authcore.db import create_engine, create_schema, dispose_engine
from authcore.db._errors import storage_errors
from authcore.files import remove_sqlite_database
from authcore.passwords import PasswordHasher
from authcore.sessions import SessionStore
from authcore.sessions._table import sessions_table
from authcore.tokens import generate_token

__all__ = [
    "BenchReport",
    "measure_create",
    "measure_hashing",
    "measure_tokens",
    "measure_validate",
    "run_bench",
]


def measure_tokens(count: int) -> Measurement:
    """Mint *count* tokens with :func:`~authcore.generate_token` (CPU only, no I/O)."""
    return timed_loop("generate_token", functools.partial(generate_token, "bench-user"), count)


async def measure_create(
    store: SessionStore, user_id: str, count: int, *, concurrency: int = 1
) -> tuple[Measurement, list[str]]:
    """Create *count* sessions for *user_id*; the measurement and the tokens."""
    calls = [
        lambda: store.create_session(user_id, ip="192.0.2.1", user_agent="authcore bench")
        for _ in range(count)
    ]
    return await timed("create_session", calls, concurrency)


async def measure_validate(
    store: SessionStore, tokens: Sequence[str], *, concurrency: int = 1
) -> Measurement:
    """Validate each of *tokens* once, in a shuffled order."""
    order = list(tokens)
    secrets.SystemRandom().shuffle(order)
    calls = [functools.partial(store.validate, token) for token in order]
    measurement, _ = await timed("validate", calls, concurrency)
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
    measurement, _ = await timed("hash_password", calls, 1, note=note)
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
