"""Engine construction: sensible, safe defaults per backend."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from authcore.db._dispose import track_connections
from authcore.db._errors import caller_cancelled
from authcore.db._logs import hide_driver_arguments, hide_result_rows

__all__ = [
    "DEFAULT_URL",
    "create_engine",
    "read_connection",
    "serial_writes",
    "write_transaction",
]

DEFAULT_URL = "sqlite+aiosqlite:///authcore.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
ASYNCPG_CONNECT_TIMEOUT = 10.0  # seconds to open a connection (TCP, TLS, startup)
ASYNCPG_COMMAND_TIMEOUT = 30.0  # seconds any one statement may take
# SQLite file engines -> their writer lock per event loop.
_SERIAL_WRITES: weakref.WeakKeyDictionary[
    Engine, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
] = weakref.WeakKeyDictionary()


def _is_memory(url: URL) -> bool:
    return (url.database or "") in ("", ":memory:")


def _memory_url(url: URL) -> tuple[URL, str]:
    """Rewrite an in-memory URL to a named database of SQLite's ``memdb`` VFS.

    Every connection that opens the same ``memdb`` name shares one database,
    and it uses ordinary SQLite locking, so the engine's pool works as it does
    for a file (plain ``:memory:`` gives each connection a database of its own).
    """
    name = f"/authcore-{uuid.uuid4().hex}"
    return url.set(database=f"file:{name}?vfs=memdb", query={"uri": "true"}), name


def _install_sqlite_pragmas(engine: AsyncEngine, *, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 driver opens a transaction right before the first
        # INSERT/UPDATE/DELETE, inside that same call; "IMMEDIATE" makes it take
        # the write lock up front (waiting on the busy timeout), so a write
        # transaction never fails half-way with "database is locked". Plain
        # reads run without a transaction and never block writers (WAL).
        dbapi_connection.isolation_level = "IMMEDIATE"
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    if wal:  # one writer at a time per file; the in-memory pool of one does this already
        _SERIAL_WRITES[engine.sync_engine] = weakref.WeakKeyDictionary()


def _aiosqlite_connect(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    """Open an aiosqlite connection as SQLAlchemy does, without its failed-connect race.

    aiosqlite (0.22) stops its worker thread after a failed connect without
    waiting for it; the thread's last reply can then land on an event loop
    that has closed meanwhile ("Event loop is closed" in a thread). Waiting
    for the thread here, while the loop still runs, closes that window.
    """
    import aiosqlite  # the driver is only needed for SQLite URLs

    connection = aiosqlite.connect(*args, **kwargs)
    thread: threading.Thread | None = getattr(connection, "_thread", None)
    if thread is not None:
        thread.daemon = True  # as SQLAlchemy does: never keep the interpreter alive
    return _finish_connect(connection, thread)


async def _finish_connect(connection: Any, thread: threading.Thread | None) -> Any:
    try:
        return await connection
    except BaseException:
        if thread is not None and thread.is_alive():
            await asyncio.shield(asyncio.to_thread(thread.join, 5.0))
        raise


def _seconds(key: str, value: str | tuple[str, ...]) -> float:
    """A timeout from a URL's query string, in seconds."""
    try:
        if isinstance(value, str):
            return float(value)
    except ValueError:
        pass
    raise ValueError(f"{key} in the database URL must be a number of seconds")


def create_engine(url: str | URL = DEFAULT_URL, **kwargs: Any) -> AsyncEngine:
    """Create an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` with authcore's defaults.

    Guaranteed, per backend (explicit ``kwargs`` win over these defaults):

    * **SQLite file** (``sqlite+aiosqlite:///path.db``): WAL journal, a 10 s busy
      timeout, foreign keys on, ``synchronous=NORMAL``; write transactions
      start with ``BEGIN IMMEDIATE`` (issued by the driver before the first
      write), so concurrent writers wait for each other instead of failing
      with "database is locked"; plain reads take no lock.
    * **SQLite in memory** (``sqlite+aiosqlite://`` or ``:memory:``): one
      database shared by every connection of this engine, kept alive for the
      engine's lifetime, so it survives :func:`dispose_engine`; a pool of one
      connection, which serves thousands of concurrent tasks in turn.
    * **Server databases** (e.g. ``postgresql+asyncpg://``): ``pool_pre_ping``
      so connections killed by the server (restart, failover, idle reaper)
      are replaced transparently. With asyncpg, two timeouts keep every
      operation bounded even when the server stops answering:

      - ``timeout=10`` (seconds): opening a connection; an unreachable server
        raises :class:`~authcore.errors.StorageError` within about that long.
      - ``command_timeout=30`` (seconds): any one statement, lock waits
        included. A store operation runs to completion even when its caller
        is cancelled (so it never leaves half a change), and this timeout
        bounds how long that can take. Past it, asyncpg cancels the statement
        on the server and the operation raises
        :class:`~authcore.errors.StorageError`. The limit applies to every
        statement run on the engine, including an application's own queries.

      Override either through ``connect_args`` (``None`` disables a timeout)
      or the URL's query string, e.g.
      ``create_engine(url, connect_args={"command_timeout": 5})`` or
      ``postgresql+asyncpg://host/db?command_timeout=5``.

    **Every backend**: ``hide_parameters=True``, so statement parameters
    (token digests, password hashes) never appear in SQLAlchemy's log lines
    or error messages, nor do result rows at DEBUG; and aiosqlite's own
    DEBUG lines lose their arguments (filters on the loggers; no logger's
    level is changed).

    Dispose the engine with :func:`dispose_engine` (or use :func:`managed_engine`).

    Example:
        >>> engine = create_engine("sqlite+aiosqlite:///app.db")  # doctest: +SKIP
    """
    parsed = make_url(url)
    # No statement parameters (token digests, password hashes) in SQLAlchemy's
    # log lines or error messages, whatever the loggers' levels.
    kwargs.setdefault("hide_parameters", True)
    keeper: sqlite3.Connection | None = None
    if parsed.get_backend_name() == "sqlite":
        memory = _is_memory(parsed)
        if memory:
            parsed, name = _memory_url(parsed)
            # Holds the shared database open while the pool has no connection.
            keeper = sqlite3.connect(f"file:{name}?vfs=memdb", uri=True, check_same_thread=False)
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 0)
        if parsed.get_driver_name() == "aiosqlite":
            hide_driver_arguments()
            connect_args = dict(kwargs.pop("connect_args", {}))
            connect_args.setdefault("async_creator_fn", _aiosqlite_connect)
            kwargs["connect_args"] = connect_args
        engine = create_async_engine(parsed, **kwargs)
        _install_sqlite_pragmas(engine, wal=not memory)
        if keeper is not None:
            weakref.finalize(engine.sync_engine, keeper.close)
        hide_result_rows(engine)
        track_connections(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_driver_name() == "asyncpg":
        connect_args = dict(kwargs.pop("connect_args", {}))
        defaults = {"timeout": ASYNCPG_CONNECT_TIMEOUT, "command_timeout": ASYNCPG_COMMAND_TIMEOUT}
        for key, default in defaults.items():
            value = default
            if key in parsed.query:  # the URL's setting, as a number (asyncpg wants one)
                value = _seconds(key, parsed.query[key])
                parsed = parsed.difference_update_query([key])
            connect_args.setdefault(key, value)  # explicit connect_args win, as in SQLAlchemy
        kwargs["connect_args"] = connect_args
    engine = create_async_engine(parsed, **kwargs)
    hide_result_rows(engine)
    track_connections(engine)
    return engine


def serial_writes(engine: AsyncEngine) -> AbstractAsyncContextManager[object]:
    """A lock that queues this process's SQLite writers on the event loop.

    SQLite has one writer at a time; waiters inside SQLite poll with sleeps
    of 1 ms and more, which wastes most of the time under contention.
    Queueing in-process writers on an :class:`asyncio.Lock` instead keeps
    throughput up; other processes still wait on the busy timeout. One lock
    per engine and event loop; on other backends this does nothing.
    """
    locks = _SERIAL_WRITES.get(engine.sync_engine)
    if locks is None:
        return contextlib.nullcontext()
    loop = asyncio.get_running_loop()
    lock = locks.get(loop)
    if lock is None:
        lock = locks[loop] = asyncio.Lock()
    return cast(AbstractAsyncContextManager[object], lock)


@contextlib.asynccontextmanager
async def write_transaction(
    engine: AsyncEngine, *, undo_if_cancelled: bool | Callable[[], bool] = False
) -> AsyncIterator[AsyncConnection]:
    """A write transaction; the writer lock is taken before a connection is checked out.

    Taking the lock first means a task never holds a pooled connection while
    it waits for the lock, so writers cannot starve the pool.

    With *undo_if_cancelled* (``True``, or a predicate asked right before the
    commit), for work whose result only its caller can use (a new token), the
    transaction is rolled back instead of committed when the caller of the
    enclosing :func:`~authcore.db._errors.run_to_completion` has been
    cancelled, and ``CancelledError`` is raised; with ``True`` it is not even
    started when the caller was cancelled before the writer lock was free.
    A cancellation that arrives during the COMMIT itself is not seen here:
    the caller checks :func:`~authcore.db._errors.caller_cancelled` after
    the block and undoes the change in a transaction of its own.
    """
    # Store methods run inside run_to_completion (@uncancellable), so the
    # connection is closed inline: ``async with engine.begin()`` would close it
    # through SQLAlchemy's own shielded close, a second task per operation.
    async with serial_writes(engine):
        if undo_if_cancelled is True and caller_cancelled():
            raise asyncio.CancelledError("the caller was cancelled before the transaction")
        conn = await engine.connect()
        try:
            transaction = await conn.begin()
            try:
                yield conn
            except BaseException:
                await transaction.rollback()
                raise
            if caller_cancelled() and (
                undo_if_cancelled() if callable(undo_if_cancelled) else undo_if_cancelled
            ):
                await transaction.rollback()
                raise asyncio.CancelledError("the caller was cancelled; rolled back")
            await transaction.commit()
        finally:
            await conn.close()


class read_connection:  # named like a function: used as engine.connect() is
    """``async with read_connection(engine) as conn``: a connection for reads.

    The same as ``async with engine.connect()``, for code already running
    inside :func:`~authcore.db._errors.run_to_completion`: the connection is
    closed inline, not in a separate shielded task as SQLAlchemy's context
    manager does (that protection is already there, one level up).
    """

    __slots__ = ("_conn", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> AsyncConnection:
        self._conn: AsyncConnection = await self._engine.connect()
        return self._conn

    async def __aexit__(self, *_exc: object) -> None:
        await self._conn.close()
