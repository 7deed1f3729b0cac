"""The hot read: one indexed select, run the cheapest way the engine allows.

A request authenticated by a session runs one small select; through
SQLAlchemy Core over aiosqlite that costs a pool checkout, a cursor, several
worker-thread hand-offs and a rollback on return, hundreds of times the cost
of the SQL itself. :class:`FastSelect` compiles a select once per dialect and
runs it:

* **SQLite** (aiosqlite, a file or a ``memdb`` database): on a read-only
  ``sqlite3`` connection of the engine's own, inline on the event loop, in
  autocommit (each read sees every committed write, from any process). Its
  busy timeout is zero: when SQLite would make it wait (a writer in the
  middle of a commit without WAL, a WAL recovery) it gives up at once and
  the read goes the ordinary way. No thread hand-off at all; the loop is
  held for the few microseconds of an indexed lookup.
* **asyncpg**: on the engine's dedicated connection for this event loop,
  the lookups waiting together read in one statement (see
  :mod:`authcore.db._pgread`); before the engine has opened any pooled
  connection, ``fetch`` on a pooled connection's own asyncpg connection
  (asyncpg prepares and caches the statement): one round trip and no
  transaction, so returning the connection to the pool costs nothing.
* anything else, or when the inline read cannot be used: SQLAlchemy Core.

The inline connection is closed by :func:`~authcore.db.dispose_engine` (and
when the engine is garbage collected); the next read opens a new one.
Values come back through the columns' own result processors, exactly as
SQLAlchemy would return them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.db._pgread import BatchFailed, batched_reader, storage_error

__all__ = ["FastSelect", "close_inline_reader"]

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bind parameters, in positional order
    processors: tuple[_Processor, ...]


class _InlineReader:
    """One engine's read-only ``sqlite3`` connection, used inline on event loops.

    A lock taken without waiting keeps two threads (two event loops) off the
    connection at once: the one that does not get it reads the ordinary way.
    """

    def __init__(self, database: str, uri: bool) -> None:
        self.database = database
        self.uri = uri
        self.lock = threading.Lock()
        self.connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection | None:
        if not self.uri and not os.path.exists(self.database):
            return None  # never create the file: the engine does, on its first connection
        connection = sqlite3.connect(
            self.database, uri=self.uri, check_same_thread=False, isolation_level=None
        )
        try:
            connection.execute("PRAGMA busy_timeout = 0")  # never wait on the loop
            connection.execute("PRAGMA query_only = 1")
        except BaseException:
            connection.close()
            raise
        return connection

    def fetch(self, sql: str, args: tuple[Any, ...]) -> list[Any] | None:
        """The rows, or ``None`` when the read must go the ordinary way."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if self.connection is None:
                self.connection = self._open()
                if self.connection is None:
                    return None
            return self.connection.execute(sql, args).fetchall()
        except sqlite3.Error:
            return None  # busy, locked, no table yet...: the async path reports it properly
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            if self.connection is not None:
                self.connection.close()
                self.connection = None


_READERS: weakref.WeakKeyDictionary[Engine, _InlineReader | None] = weakref.WeakKeyDictionary()


def _inline_reader(engine: AsyncEngine) -> _InlineReader | None:
    sync_engine = engine.sync_engine
    try:
        return _READERS[sync_engine]
    except KeyError:
        pass
    reader: _InlineReader | None = None
    url = engine.url
    database = url.database or ""
    if engine.dialect.driver == "aiosqlite" and database not in ("", ":memory:"):
        uri = url.query.get("uri") == "true"
        if not uri or "vfs=memdb" in database:  # a file, or create_engine's shared memdb
            reader = _InlineReader(database, uri)
            weakref.finalize(sync_engine, reader.close)
    _READERS[sync_engine] = reader
    return reader


def close_inline_reader(engine: Engine) -> None:
    """Close *engine*'s inline ``sqlite3`` connection, if it has one (reopened on demand)."""
    reader = _READERS.get(engine)
    if reader is not None:
        reader.close()


class FastSelect:
    """A select of at most one row by a unique key, compiled once per dialect, run cheaply.

    Args:
        query: The select, without the key's condition; its selected
            columns uniquely named (label them).
        key: The unique column the row is found by (a string column).
    """

    def __init__(self, query: Select[Any], key: ColumnElement[Any]) -> None:
        self.query = query.where(key == bindparam("key"))
        # text[], not varchar(n)[]: asyncpg knows its codec without introspecting the
        # server's types (three more queries per new connection); the index still serves.
        keys = bindparam("keys", type_=postgresql.ARRAY(Text()))
        # The batched form (asyncpg): every key of a batch, each row with its key last.
        self.batch_query = query.add_columns(key.label("batch_key")).where(key == any_(keys))
        columns = query.selected_columns
        self.row_type: type[Any] = namedtuple("FastRow", [c.key for c in columns])  # type: ignore[misc]
        self._compiled: dict[type[Dialect], _Compiled] = {}
        self._batch_sql: dict[type[Dialect], str] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(type(dialect))
        if compiled is None:
            statement = self.query.compile(dialect=dialect)
            processors = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self.query.selected_columns
            )
            names = tuple(statement.positiontup or ())
            compiled = _Compiled(str(statement), names, processors)
            self._compiled[type(dialect)] = compiled
        return compiled

    def _row(self, compiled: _Compiled, raw: Any) -> Any:
        return self.row_type._make(
            value if p is None else p(value)
            for p, value in zip(compiled.processors, raw, strict=False)  # batch key left out
        )

    def try_inline(self, engine: AsyncEngine, key: str) -> list[Any] | None:
        """The rows read inline, without awaiting; ``None`` when that is not possible here."""
        reader = _inline_reader(engine)
        if reader is None:
            return None
        compiled = self._compile(engine.dialect)
        raw = reader.fetch(compiled.sql, (key,))
        return None if raw is None else [self._row(compiled, row) for row in raw]

    async def try_batched(self, engine: AsyncEngine, key: str, action: str) -> list[Any] | None:
        """The rows read on the engine's dedicated asyncpg connection, batched with the
        lookups of other tasks; ``None`` when there is none (read through the pool).

        Raises:
            StorageError: the database failed (the driver's error chained).
        """
        reader = batched_reader(engine)
        if reader is None:
            return None
        dialect = engine.dialect
        sql = self._batch_sql.get(type(dialect))
        if sql is None:
            sql = self._batch_sql[type(dialect)] = str(self.batch_query.compile(dialect=dialect))
        try:
            raw = await reader.fetch(sql, key)
        except BatchFailed as failed:
            raise storage_error(failed.cause, action) from failed.cause
        return [] if raw is None else [self._row(self._compile(dialect), raw)]

    async def fetch(self, engine: AsyncEngine, key: str, action: str) -> list[Any]:
        """The rows, read through the pool (run it inside run_to_completion).

        *action* names the read in a ``StorageError`` ("validating a session").
        """
        params = {"key": key}
        # engine.connect() closed inline, as read_connection does (that module imports this one).
        conn = await engine.connect()
        try:
            if engine.dialect.driver != "asyncpg":
                result = await conn.execute(self.query, params)
                return [self.row_type._make(row) for row in result]
            compiled = self._compile(engine.dialect)
            args = tuple(params[name] for name in compiled.names)
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                raw = await driver.fetch(compiled.sql, *args)
            except (OSError, TimeoutError):
                raise  # storage_errors turns these into StorageError
            except Exception as exc:  # asyncpg's own errors are not DB-API ones
                if driver.is_closed():
                    await conn.invalidate()  # not back into the pool
                raise storage_error(exc, action) from exc
        finally:
            await conn.close()
        return [self._row(compiled, row) for row in raw]
