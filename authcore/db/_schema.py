"""The ``MetaData`` that authcore's tables share, and their aware-UTC column type.

Each table is defined beside the store that owns it (``authcore.sessions``,
``authcore.users``, ``authcore.throttle``). Those modules build on this package
(engines, transactions), so it cannot import them when it is imported: it
knows them by name, in :data:`TABLE_MODULES`, and :func:`load_tables` imports
them when the whole schema is needed (``create_schema``, ``authcore.metadata``).
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Dialect, MetaData
from sqlalchemy.types import TypeDecorator, TypeEngine

from authcore._time import EPOCH, as_utc

__all__ = ["NAMING_CONVENTION", "TABLE_MODULES", "UTCDateTime", "load_tables", "metadata"]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The ``MetaData`` holding authcore's tables, for an application's own Alembic environment.

Read as ``authcore.metadata`` or ``authcore.db.metadata``, it holds every table.
"""

TABLE_MODULES: Final = ("authcore.sessions._table", "authcore.users._table", "authcore.throttle")
"""The modules that define authcore's tables (tests/test_db.py checks that none is missing)."""


def load_tables() -> MetaData:
    """Import every module of :data:`TABLE_MODULES`; the ``MetaData`` then holds every table."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata


class UTCDateTime(TypeDecorator[datetime]):
    """An aware-UTC datetime column, exact to the microsecond on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no datetime type, so the value
    is stored as integer microseconds since the Unix epoch: exact, compact,
    compared numerically by indexes, and never confused by time zones. Naive
    datetimes are refused on the way in; values always come back aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            delta = value - EPOCH
            return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return EPOCH + timedelta(microseconds=int(value))
