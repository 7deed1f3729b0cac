"""Schema creation and engine disposal that never hangs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.db._dispose import dispose_engine
from authcore.db._engine import DEFAULT_URL, create_engine
from authcore.db._errors import storage_errors
from authcore.db._schema import load_tables

__all__ = ["create_schema", "managed_engine"]


async def create_schema(engine: AsyncEngine) -> None:
    """Create authcore's tables and indexes where they do not exist yet.

    Every table of authcore is created, whichever of its modules were
    imported before. Idempotent: calling it on a database that already has
    the schema changes nothing, and safe when several processes call it at
    once on a fresh database (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
    Applications that manage their schema with Alembic include
    :data:`authcore.metadata` in their migrations instead.

    Raises:
        StorageError: the database failed or is unreachable.
    """
    metadata = load_tables()
    with storage_errors("creating the schema"):
        async with engine.begin() as conn:
            # Several processes may start at once on a fresh database (app workers
            # each running the lifespan): serialise the check-then-create.
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext('authcore.create_schema'))")
                )
            elif conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(metadata.create_all)


@asynccontextmanager
async def managed_engine(
    url: str | URL = DEFAULT_URL,
    *,
    create_schema: bool = True,
    dispose_timeout: float = 10.0,
) -> AsyncIterator[AsyncEngine]:
    """Create an engine (and by default the schema); dispose it on exit.

    Disposal happens on normal exit, on error and on cancellation.

    Example:
        >>> async with managed_engine("sqlite+aiosqlite:///app.db") as engine:  # doctest: +SKIP
        ...     store = SessionStore(engine)
    """
    engine = create_engine(url)
    try:
        if create_schema:
            await _create_schema(engine)
        yield engine
    finally:
        await asyncio.shield(dispose_engine(engine, timeout=dispose_timeout))


_create_schema = create_schema
