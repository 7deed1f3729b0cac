"""Database helpers of the command line: engines that never create files, checks."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from authcore.config import ConfigError, Settings, load_settings, safe_url
from authcore.errors import AuthError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

    from authcore.sessions import SessionStore

__all__ = [
    "CommandError",
    "check_database",
    "engine_for",
    "schema_problems",
    "password_from_stdin",
    "settings_from_args",
    "store_for",
]


class CommandError(Exception):
    """A failure to report as one line, exit status 1 (the message is safe to show)."""


def _sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite file URL; ``None`` for memory and server databases."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):  # already a URI filename: the user chose its mode
        return None
    return Path(database)


def _password_of(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    return None if password is None else str(password)


def _existing_only(url: str) -> str | URL:
    """*url*, changed so that SQLite opens the file read-write but never creates it.

    A SQLite file comes back as a :class:`~sqlalchemy.engine.URL` object, never
    rendered to text: SQLAlchemy 2.0 renders a URI filename unescaped, and the
    re-parsed URL would lose its ``?mode=rw``.
    """
    from sqlalchemy.engine import make_url

    path = _sqlite_file(url)
    if path is None:
        return url
    if not path.exists():
        raise CommandError(
            f"database file {path.resolve()} does not exist; create it with `authcore init-db`"
        )
    parsed = make_url(url)
    query = {**parsed.query, "uri": "true"}
    return parsed.set(database=f"{path.resolve().as_uri()}?mode=rw", query=query)


@asynccontextmanager
async def engine_for(url: str, *, create: bool = False) -> AsyncIterator[AsyncEngine]:
    """An engine on *url* (an existing SQLite file unless *create*), disposed on exit."""
    from authcore.db import create_engine, dispose_engine

    try:
        engine = create_engine(url if create else _existing_only(url))
    except ValueError as exc:  # e.g. a bad timeout in the URL's query string
        message = str(exc)
        password = _password_of(url)
        if password:
            message = message.replace(password, "***")
        raise ConfigError([f"database_url: {message}"]) from exc
    try:
        yield engine
    except AuthError as exc:
        raise CommandError(f"{exc} (database: {safe_url(url)})") from exc
    finally:
        await dispose_engine(engine)


async def schema_problems(engine: AsyncEngine) -> list[str]:
    """What is missing from authcore's schema: tables, then columns."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import Connection

    from authcore.db import metadata
    from authcore.db._errors import storage_errors

    def missing(conn: Connection) -> list[str]:
        inspector = inspect(conn)
        problems = []
        for table in metadata.sorted_tables:
            if not inspector.has_table(table.name):
                problems.append(f"table {table.name}")
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            problems.extend(
                f"column {table.name}.{c.name}" for c in table.c if c.name not in present
            )
        return problems

    with storage_errors("reading the schema"):
        async with engine.connect() as conn:
            return await conn.run_sync(missing)


async def _round_trips(engine: AsyncEngine, count: int = 5) -> tuple[float, float]:
    """Connect, then run ``SELECT 1`` *count* times: (connect ms, median round trip ms)."""
    from sqlalchemy import text

    from authcore.db._errors import storage_errors

    with storage_errors("connecting"):
        start = time.perf_counter()
        async with engine.connect() as conn:
            connected = time.perf_counter()
            trips = []
            for _ in range(count):
                begin = time.perf_counter()
                await conn.execute(text("SELECT 1"))
                trips.append(time.perf_counter() - begin)
    trips.sort()
    return (connected - start) * 1000, trips[len(trips) // 2] * 1000


def store_for(engine: AsyncEngine, settings: Settings) -> SessionStore:
    from authcore.sessions import SessionStore

    return SessionStore(engine, ttl=settings.session_ttl, idle_timeout=settings.idle_timeout)


async def check_database(url: str, timeout: float, *, require_schema: bool) -> str:
    """Connect, time round trips and check the schema; a one-line summary, or CommandError."""
    async with engine_for(url) as engine:
        try:
            async with asyncio.timeout(timeout):
                connect_ms, trip_ms = await _round_trips(engine)
                missing = await schema_problems(engine)
        except TimeoutError:
            raise CommandError(f"no answer from {safe_url(url)} within {timeout:g} s") from None
    schema = "schema ok" if not missing else f"schema incomplete: missing {', '.join(missing)}"
    if missing and require_schema:
        raise CommandError(f"{safe_url(url)}: {schema}; run `authcore init-db`")
    return f"{schema}, connect {connect_ms:.1f} ms, round trip {trip_ms:.2f} ms"


def settings_from_args(
    args: argparse.Namespace,
    *,
    require_secret: bool = False,
    rounds: int | None = None,
    database_url: bool = True,
) -> Settings:
    """The settings a command runs with: its flags over ``AUTHCORE_*`` over the file."""
    overrides: dict[str, object] = {"bcrypt_rounds": rounds}
    if database_url:
        overrides["database_url"] = args.database_url
    return load_settings(
        args.config_file,
        overrides=overrides,
        require_secret=require_secret,
        allow_test_rounds=args.allow_test_rounds,
    )


def password_from_stdin(error: type[Exception], *, limit: int = 64 * 1024) -> str:
    """One line of standard input (a password) without its line ending.

    Raises *error* (the caller's usage or command error) for input over
    *limit* bytes, input that is not UTF-8, or more than one line; its
    message never contains the input.
    """
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise error("standard input is too long for a password")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # raised below, outside the handler: the input is not chained
    if text is None:
        raise error("standard input is not UTF-8 text")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if "\n" in text:
        raise error("expected one line on standard input (the password)")
    return text
