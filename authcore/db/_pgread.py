"""The hot read on asyncpg: one dedicated connection per engine and event loop, batched.

Through the pool, every read pays a checkout (``pool_pre_ping``'s round
trips, SQLAlchemy's adapter, the greenlet) and a return, several times the
cost of the one indexed select it runs. Here each engine made by
:func:`~authcore.db.create_engine` keeps, per running event loop, one asyncpg
connection used for nothing but the hot read:

* **Opened like the pool's own**: with the very arguments the engine's last
  pooled connection was opened with (recorded by a ``do_connect`` listener,
  so ``connect_args``, the URL's query and other listeners' changes all
  apply: ``timeout``, ``command_timeout``, TLS...). Until the engine has
  opened a pooled connection, reads go through the pool.
* **Batched**: a connection runs one statement at a time, so the lookups
  that arrive while one runs wait, and the next statement reads all of them
  at once (``WHERE key = ANY($1)``). A lookup only ever joins a batch not
  yet sent, so it sees everything committed before it was asked for (a
  revocation takes effect on the very next request). A lone lookup is one
  statement. A cancelled caller just stops waiting: the statement is owned
  by the batch task, never interrupted half-way.
* **Liveness without a round trip**: a connection the driver already knows
  to be closed is replaced before use; when a statement fails because the
  connection is gone (the server ended it), the batch is read again, once,
  on a new one (a read is idempotent). Any other failure is the batch's
  :class:`~authcore.errors.StorageError`, with the driver's error chained.
* **Closed** by :func:`~authcore.db.dispose_engine` (from any loop, also
  one whose own loop is closed: see :func:`detach_readers`) and when the
  engine is garbage collected. The batch task exists only while there is
  work; a connection whose loop has closed is closed at the socket level
  the next time the engine opens one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.errors import StorageError

__all__ = [
    "BatchFailed",
    "batched_reader",
    "detach_readers",
    "hard_close_asyncpg",
    "storage_error",
    "watch_connects",
]

_CLOSE_TIMEOUT = 5.0  # seconds a detached connection gets to close politely


def hard_close_asyncpg(raw: Any) -> None:
    """Close an asyncpg connection whose loop is closed, without that loop.

    Private attributes: ``asyncpg.Connection._transport`` (to reach the
    socket) and asyncio's ``_SelectorTransport._sock`` (closed and set to
    ``None``, so the transport's ``__del__`` has nothing to warn about).
    """
    transport = raw._transport
    # terminate() marks it closed (is_closed() -> True, __del__ quiet) and sends
    # Terminate, then raises RuntimeError("Event loop is closed"): transport.abort()
    # cannot schedule connection_lost on the dead loop. Whatever it raises, the
    # socket is closed below.
    with contextlib.suppress(Exception):
        raw.terminate()
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        transport._sock = None
        sock.close()


def _terminate(raw: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Close *raw* without waiting for anything, from any thread."""
    with contextlib.suppress(Exception):
        if loop.is_closed():
            hard_close_asyncpg(raw)
        elif loop.is_running() and not _runs_here(loop):
            loop.call_soon_threadsafe(raw.terminate)
        else:
            raw.terminate()


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class BatchFailed(Exception):
    """A batch's failure, handed to each waiter (who raises a StorageError of its own)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__()
        self.cause = cause


def storage_error(cause: BaseException, action: str) -> StorageError:
    """The StorageError a waiter raises for a failed batch (chain *cause* to it)."""
    if isinstance(cause, StorageError):
        return StorageError(str(cause))
    if isinstance(cause, TimeoutError):
        return StorageError(f"database did not answer in time while {action}")
    if isinstance(cause, OSError):
        return StorageError(f"database unreachable while {action}: {type(cause).__name__}")
    # asyncpg's errors are not DB-API ones; their text may quote values: the type only.
    return StorageError(f"database error while {action}: {type(cause).__name__}")


_Waiters = dict[Any, list["asyncio.Future[Any]"]]


class _Reader:
    """One engine's dedicated connection on one event loop, and its queue of lookups."""

    def __init__(self, holder: _Holder, loop: asyncio.AbstractEventLoop) -> None:
        self.holder = holder
        self.loop = loop
        self.connection: Any = None
        self.pending: dict[str, _Waiters] = {}  # sql -> key -> futures, not yet sent
        self.worker: asyncio.Task[None] | None = None
        self.detached = False  # disposed: close the connection once the work is done
        self.lock = threading.Lock()  # connection/worker/detached: dispose may run elsewhere

    async def fetch(self, sql: str, key: Any) -> Any:
        """The raw row whose batch key is *key*, or ``None``; raises ``BatchFailed``."""
        future: asyncio.Future[Any] = self.loop.create_future()
        self.pending.setdefault(sql, {}).setdefault(key, []).append(future)
        with self.lock:
            if self.worker is None:
                self.worker = self.loop.create_task(self._work(), name="authcore-pg-read")
        return await future

    async def _work(self) -> None:
        batch: dict[str, _Waiters] = {}
        try:
            while self.pending:
                batch, self.pending = self.pending, {}  # later lookups wait for the next one
                for sql, waiters in batch.items():
                    await self._run(sql, waiters)
                batch = {}
        except BaseException as exc:  # cancelled (the loop is shutting down): leave nothing
            self._drop()
            for waiters in (*batch.values(), *self.pending.values()):
                _settle(waiters, error=exc)
            self.pending = {}
            raise
        finally:
            with self.lock:
                self.worker = None
                connection = self.connection if self.detached else None
                if connection is not None:
                    self.connection = None
            if connection is not None:  # disposed while busy: closed now, as the pool does
                await _close(connection)

    async def _run(self, sql: str, waiters: _Waiters) -> None:
        keys = [key for key, futures in waiters.items() if any(not f.done() for f in futures)]
        if not keys:
            return  # every waiter gave up
        try:
            rows = await self._fetch(sql, keys)
        except Exception as exc:
            _settle(waiters, error=exc)
            return
        found = {row[-1]: row for row in rows}  # the batch key is the last column
        for key, futures in waiters.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))

    async def _fetch(self, sql: str, keys: Sequence[Any]) -> list[Any]:
        for attempt in (1, 2):
            connection = self.connection
            if connection is None or connection.is_closed():
                connection = await self._connect()
            try:
                return list(await connection.fetch(sql, keys))
            except Exception as exc:
                if connection.is_closed():
                    self.connection = None
                    if attempt == 1:
                        continue  # the connection is gone: a new one, once (reads are idempotent)
                elif not _is_server_error(exc):
                    self._drop()  # timed out, interrupted...: start afresh next time
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(self) -> Any:
        params = self.holder.params
        assert params is not None  # a reader exists only once the engine has connected
        cargs, cparams = params
        kwargs = dict(cparams)
        kwargs.pop("prepared_statement_cache_size", None)  # SQLAlchemy's adapter's own
        kwargs.pop("prepared_statement_name_func", None)
        connect = kwargs.pop("async_creator_fn", None)
        if connect is None:
            connect = _asyncpg().connect
        connection = await connect(*cargs, **kwargs)
        with self.lock:
            self.connection = connection
        return connection

    def _drop(self) -> None:
        with self.lock:
            connection, self.connection = self.connection, None
        if connection is not None:
            _terminate(connection, self.loop)

    def detach(self) -> Any:
        """Stop serving; the idle connection to close (``None``: none, or closed when done)."""
        with self.lock:
            self.detached = True
            if self.worker is not None:
                return None  # busy: the worker closes it once its batch returns
            connection, self.connection = self.connection, None
            return connection


def _is_server_error(exc: BaseException) -> bool:
    """An error the server reported (the connection is fine), e.g. no such table."""
    return isinstance(exc, _asyncpg().PostgresError)


def _asyncpg() -> Any:
    import asyncpg  # type: ignore[import-untyped]  # only needed for PostgreSQL

    return asyncpg


def _settle(waiters: _Waiters, *, error: BaseException) -> None:
    for futures in waiters.values():
        for future in futures:
            if not future.done():
                future.set_exception(BatchFailed(error))


async def _close(connection: Any) -> None:
    """Close politely; on any failure, abort (nobody awaits the batch task's outcome)."""
    try:
        await connection.close(timeout=_CLOSE_TIMEOUT)
    except asyncio.CancelledError:
        connection.terminate()
        raise
    except Exception:
        connection.terminate()


class _Holder:
    """One engine's connect parameters and readers (one per event loop)."""

    def __init__(self) -> None:
        self.params: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.readers: dict[asyncio.AbstractEventLoop, _Reader] = {}
        self.lock = threading.Lock()

    def reader(self, loop: asyncio.AbstractEventLoop) -> _Reader | None:
        reader = self.readers.get(loop)
        if reader is not None or self.params is None:
            return reader
        with self.lock:
            for old_loop, old in list(self.readers.items()):  # loops closed meanwhile
                if old_loop.is_closed():
                    del self.readers[old_loop]
                    connection = old.detach()
                    if connection is not None:
                        hard_close_asyncpg(connection)
            return self.readers.setdefault(loop, _Reader(self, loop))

    def detach(self) -> list[tuple[Any, asyncio.AbstractEventLoop]]:
        with self.lock:
            readers, self.readers = list(self.readers.values()), {}
        idle = [(reader.detach(), reader.loop) for reader in readers]
        return [(connection, loop) for connection, loop in idle if connection is not None]

    def abandon(self) -> None:
        """The engine is gone: close whatever is left, without waiting."""
        for connection, loop in self.detach():
            _terminate(connection, loop)


_HOLDERS: weakref.WeakKeyDictionary[Engine, _Holder] = weakref.WeakKeyDictionary()


def watch_connects(engine: AsyncEngine) -> None:
    """Record how *engine* opens connections, so the hot read can open its own. Idempotent.

    Only for asyncpg engines; :func:`~authcore.db._dispose.track_connections`
    calls it, so only engines that :func:`~authcore.db.dispose_engine` knows
    how to close get a dedicated connection.
    """
    sync_engine = engine.sync_engine
    if sync_engine.dialect.driver != "asyncpg" or sync_engine in _HOLDERS:
        return
    holder = _HOLDERS[sync_engine] = _Holder()

    @event.listens_for(sync_engine, "do_connect")
    def _record(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        # The engine's own dict (the same object on every connect): later changes
        # by other listeners (a fresh password, say) are seen too.
        holder.params = (tuple(cargs), cparams)

    weakref.finalize(sync_engine, holder.abandon)


def batched_reader(engine: AsyncEngine) -> _Reader | None:
    """The running loop's reader of *engine*, or ``None`` (read through the pool)."""
    holder = _HOLDERS.get(engine.sync_engine)
    if holder is None:
        return None
    return holder.reader(asyncio.get_running_loop())


def detach_readers(engine: Engine) -> list[tuple[Any, asyncio.AbstractEventLoop]]:
    """Forget *engine*'s dedicated connections; the idle ones, with their loops, to close.

    A connection busy with a batch is closed by its batch task when the batch
    returns (as the pool does with connections in use). The next read opens
    a new one.
    """
    holder = _HOLDERS.get(engine)
    return holder.detach() if holder is not None else []
