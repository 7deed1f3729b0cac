"""The floor under ``authcore bench --compare``: the same work done by hand.

Each function here does what an authcore call does with nothing in between:
a token recipe (an f-string, ``secrets.token_hex`` and SHA-256), and a raw
SQLAlchemy Core insert or select of the row ``create_session`` stores, on the
same engine. :func:`seed_sessions` fills a table in bulk for benchmark scripts.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._defaults import SESSION_TTL
from authcore.cli._measure import Measurement, timed, timed_loop
from authcore.db._errors import storage_errors
from authcore.sessions._table import sessions_table
from authcore.tokens import generate_token, hash_token, mint_token

__all__ = [
    "measure_mint",
    "measure_raw_insert",
    "measure_raw_select",
    "measure_token_recipe",
    "mint_and_digest",
    "raw_insert",
    "raw_select",
    "seed_sessions",
    "token_recipe",
]

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
    row = _session_row(user_id, token, now, now + SESSION_TTL)
    async with engine.begin() as conn:
        await conn.execute(_RAW_INSERT, row)
    return token


def measure_mint(count: int) -> Measurement:
    """Mint *count* tokens and their digests (:func:`mint_and_digest`)."""
    return timed_loop("mint+digest", mint_and_digest, count)


def measure_token_recipe(count: int) -> Measurement:
    """The floor of :func:`measure_mint`: *count* calls of :func:`token_recipe`."""
    return timed_loop("token recipe", token_recipe, count)


async def measure_raw_insert(
    engine: AsyncEngine, user_id: str, count: int, *, concurrency: int = 1
) -> tuple[Measurement, list[str]]:
    """The floor of ``measure_create``: *count* :func:`raw_insert` calls."""
    calls = [functools.partial(raw_insert, engine, user_id) for _ in range(count)]
    return await timed("raw insert", calls, concurrency)


async def measure_raw_select(
    engine: AsyncEngine, tokens: Sequence[str], *, concurrency: int = 1
) -> Measurement:
    """The floor of ``measure_validate``: one :func:`raw_select` per token, shuffled."""
    order = list(tokens)
    secrets.SystemRandom().shuffle(order)
    calls = [functools.partial(raw_select, engine, token) for token in order]
    measurement, _ = await timed("raw select", calls, concurrency)
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
    expires_at = now - timedelta(seconds=1) if expired else now + SESSION_TTL
    created_at = expires_at - SESSION_TTL
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
