"""``dispose_engine``: close an engine's connections from any event loop, never hanging.

:func:`authcore.db.create_engine` calls :func:`track_connections` on every engine it
makes; engines made elsewhere are disposed the polite way, under the same timeout.

How it works
------------
A ``connect`` pool event records, in ``connection_record.info``, the loop each
DBAPI connection was opened on; ``checkout``/``checkin`` events keep the set of
connections in use. ``dispose_engine`` then

1. swaps in a fresh pool at once (``sync_engine.dispose(close=False)``: no I/O),
   so the engine is usable again whatever happens next;
2. closes every tracked connection concurrently, each in the right way:

   * opened on the running loop: polite close here
     (asyncpg ``close(timeout=...)``, aiosqlite ``close()``);
   * opened on a loop that is still open: polite close *on that loop* --
     ``run_coroutine_threadsafe`` when it runs in another thread, a short
     ``loop.run_until_complete`` in a worker thread when it is idle;
   * aiosqlite, whatever the loop: polite close here (its futures are created
     on the caller's loop, so the opening loop does not matter);
   * asyncpg on a closed loop: ``Connection.terminate()`` marks the connection
     closed and sends Terminate, then raises "Event loop is closed" when the
     transport schedules its own clean-up; we swallow that and close the
     transport's socket ourselves (server backend exits at once);

   anything that fails or runs past the deadline is force-closed;
3. invalidates the records of connections that were checked out on a dead or
   idle loop (nobody can be using them), so the garbage collector later finds
   nothing to close and SQLAlchemy's "non-checked-in connection" warning never
   fires; connections checked out on a *running* loop are in use: they are
   left alone (SQLAlchemy's own ``dispose`` semantics) and closed when they
   come back to the (old) pool.

The hot read's dedicated asyncpg connections (:mod:`authcore.db._pgread`) are
closed in step 2 alongside the pool's (busy ones when their batch returns).

Private attributes touched (all in ``_hard_close_asyncpg``, in ``_pgread``):
  * ``asyncpg.Connection._transport`` -- to reach the socket;
  * ``asyncio.selector_events._SelectorTransport._sock`` -- closed and set to
    ``None``: the only way to close the socket object without the loop and keep
    the transport's ``__del__`` from warning "unclosed transport".
Nothing else private is read or written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from authcore.db._fast import close_inline_reader
from authcore.db._pgread import detach_readers, watch_connects
from authcore.db._pgread import hard_close_asyncpg as _hard_close_asyncpg

logger = logging.getLogger("authcore.db")

_LOOP_KEY = "authcore.loop"  # connection_record.info key: weakref to the opening loop
_FORCE_GRACE = 1.0  # extra seconds allowed for force-closing after the deadline


class _Tracker:
    __slots__ = ("checked_out", "close_on_checkin", "records")

    def __init__(self) -> None:
        self.records: weakref.WeakSet[ConnectionPoolEntry] = weakref.WeakSet()
        self.checked_out: weakref.WeakSet[ConnectionPoolEntry] = weakref.WeakSet()
        self.close_on_checkin: weakref.WeakSet[ConnectionPoolEntry] = weakref.WeakSet()


_trackers: weakref.WeakKeyDictionary[Engine, _Tracker] = weakref.WeakKeyDictionary()


def track_connections(engine: AsyncEngine) -> None:
    """Install the pool listeners ``dispose_engine`` relies on. Idempotent."""
    sync_engine = engine.sync_engine
    if sync_engine in _trackers:
        return
    tracker = _trackers[sync_engine] = _Tracker()
    watch_connects(engine)  # the hot read's own connections (asyncpg), closed below

    # Engine-level pool listeners are carried over to the new pool on dispose().
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LOOP_KEY] = weakref.ref(asyncio.get_running_loop())
        tracker.records.add(record)

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        tracker.checked_out.add(record)

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        tracker.checked_out.discard(record)
        if record in tracker.close_on_checkin:
            # Came back to a pool that was disposed while it was in use.
            tracker.close_on_checkin.discard(record)
            tracker.records.discard(record)
            if record.dbapi_connection is not None:
                record.invalidate()  # polite inside the greenlet, terminate() outside


def _loop_of(record: ConnectionPoolEntry) -> asyncio.AbstractEventLoop | None:
    ref = record.info.get(_LOOP_KEY)
    return ref() if ref is not None else None


async def _run_on(
    loop: asyncio.AbstractEventLoop,
    here: asyncio.AbstractEventLoop,
    make: Callable[[], Coroutine[Any, Any, list[bool]]],
) -> list[bool]:
    """Run ``make()`` on ``loop`` (open, not closed) and wait for the result here."""
    if loop is here:
        return await make()
    if loop.is_running():  # another thread's loop
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))
    # Open but idle (an asyncio.Runner between runs, say): run it briefly in a worker
    # thread. One call per loop: a loop must never be run by two threads at once.
    return await asyncio.to_thread(loop.run_until_complete, make())


async def _close_politely(driver: str, raws: list[Any], timeout: float) -> list[bool]:
    """Close ``raws`` concurrently on the running loop; one bool per connection."""

    async def one(raw: Any) -> bool:
        try:
            async with asyncio.timeout(timeout):
                if driver == "asyncpg":
                    await raw.close(timeout=timeout)  # aborts the connection itself on timeout
                else:
                    await raw.close()
        except Exception as exc:  # TimeoutError included
            logger.warning(
                "connection %r did not close cleanly (%s); force-closing it",
                raw,
                type(exc).__name__,
            )
            return False
        return True

    return list(await asyncio.gather(*(one(raw) for raw in raws)))


async def _close_group(
    driver: str, loop: asyncio.AbstractEventLoop, raws: list[Any], deadline: float
) -> bool:
    """Close connections that belong to ``loop`` (open) on that loop; force what fails."""
    here = asyncio.get_running_loop()
    timeout = max(deadline - here.time(), 0.0)
    try:
        # Safety net only: _close_politely keeps to its own timeout.
        async with asyncio.timeout(timeout + _FORCE_GRACE):
            outcomes = await _run_on(loop, here, lambda: _close_politely(driver, raws, timeout))
    except Exception as exc:
        logger.warning("closing %d connection(s) failed (%s)", len(raws), type(exc).__name__)
        outcomes = [False] * len(raws)
    for raw, ok in zip(raws, outcomes, strict=True):
        if not ok:
            _force_close(driver, raw, loop)
    return all(outcomes)


def _force_close(driver: str, raw: Any, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close without waiting for anything; idempotent."""
    try:
        if driver == "asyncpg":
            if loop is None or loop.is_closed():
                _hard_close_asyncpg(raw)
            elif loop.is_running() and loop is not asyncio.get_running_loop():
                loop.call_soon_threadsafe(raw.terminate)
            else:
                raw.terminate()
        elif driver == "aiosqlite":
            _stop_aiosqlite(raw)
    except Exception:
        logger.warning("could not force-close connection %r", raw, exc_info=True)


def _stop_aiosqlite(raw: Any) -> None:
    # Connection.stop() is sync: it queues "close sqlite3, end the worker thread".
    # Called from a thread without an event loop it attaches no future, so the
    # worker never calls back into a loop that may be closed by then.
    thread = threading.Thread(target=raw.stop, name="authcore-aiosqlite-stop")
    thread.start()
    thread.join()  # stop() only puts an item on a queue: returns at once


async def dispose_engine(engine: AsyncEngine, *, timeout: float = 10.0) -> bool:
    """Close every pooled connection of *engine*, never waiting much longer than *timeout*.

    Guaranteed:

    * ``True`` when every connection closed cleanly. Past *timeout*, what is
      left is force-closed, a warning is logged and ``False`` is returned;
      a timeout never raises and this never hangs.
    * Works from any event loop, also when the loop that opened the
      connections is closed (a pytest session fixture disposed after
      function-scoped loops, say): such connections are closed at the socket
      level, with no "Event loop is closed" traceback, for aiosqlite and
      asyncpg alike.
    * Connections checked out on a running loop are in use: they are closed
      when they are returned, as with SQLAlchemy's own ``dispose()``.
    * Safe to call twice; the engine can be used again afterwards (it opens
      new connections on demand). An in-memory SQLite engine from
      :func:`create_engine` keeps its data across disposal.

    Raises:
        ValueError: *timeout* is not positive.
    """
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    close_inline_reader(engine.sync_engine)  # the hot read's own sqlite3 connection
    here = asyncio.get_running_loop()
    deadline = here.time() + timeout
    sync_engine = engine.sync_engine
    driver = sync_engine.dialect.driver
    tracker = _trackers.get(sync_engine)
    if tracker is None or driver not in ("asyncpg", "aiosqlite"):
        # Not tracked, or a driver we have no recipe for: only the polite way.
        try:
            async with asyncio.timeout(timeout):
                await engine.dispose()
        except TimeoutError:
            logger.warning("disposing the engine took longer than %.1f s; gave up waiting", timeout)
            return False
        return True

    # StaticPool shares one connection among all checkouts (and fires one checkin for
    # many checkouts): like StaticPool.dispose(), close it even when in use.
    shared = isinstance(sync_engine.pool, StaticPool)
    targets: list[tuple[Any, asyncio.AbstractEventLoop | None]] = []
    invalidate: list[ConnectionPoolEntry] = []
    for record in list(tracker.records):
        dbapi_connection = record.dbapi_connection
        if dbapi_connection is None:
            tracker.records.discard(record)
            continue
        loop = _loop_of(record)
        if record in tracker.checked_out and not shared:
            if loop is not None and loop.is_running():
                tracker.close_on_checkin.add(record)  # in use right now: closed on return
                continue
            invalidate.append(record)  # its loop is closed or idle: nobody can be using it
        tracker.records.discard(record)
        targets.append((dbapi_connection.driver_connection, loop))

    # A fresh pool right away: no I/O, and nothing can check out the old connections.
    sync_engine.dispose(close=False)
    targets += detach_readers(sync_engine)  # the hot read's idle connections (asyncpg)

    groups: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    clean = True
    try:
        for raw, loop in targets:
            if driver == "aiosqlite":
                loop = here  # aiosqlite futures live on the caller's loop: close from here
            if loop is None or loop.is_closed():
                _hard_close_asyncpg(raw)  # no loop to be polite on
            else:
                groups.setdefault(loop, []).append(raw)
        results = await asyncio.gather(
            *(_close_group(driver, loop, raws, deadline) for loop, raws in groups.items())
        )
        clean = all(results)
    except BaseException:  # cancelled: never leave anything open behind us
        for raw, loop in targets:
            _force_close(driver, raw, loop)
        raise
    finally:
        for record in invalidate:
            with contextlib.suppress(Exception):
                record.invalidate()  # the driver connection is closed: no I/O left
    await asyncio.sleep(0)  # let aborted transports run their connection_lost (closes sockets)
    if not clean:
        logger.warning("engine disposal did not finish cleanly within %.1fs", timeout)
    return clean
