"""Async engines for authcore: creation with safe defaults, schema, and clean disposal.

Public API: :func:`create_engine`, :func:`create_schema`, :func:`dispose_engine`,
:func:`managed_engine` and :data:`metadata`; for an application's Alembic
environment, :func:`alembic_render_item`.
"""

from typing import TYPE_CHECKING, Any

from authcore.db._alembic import alembic_render_item
from authcore.db._dispose import dispose_engine
from authcore.db._engine import create_engine
from authcore.db._lifecycle import create_schema, managed_engine
from authcore.db._schema import load_tables

if TYPE_CHECKING:
    from authcore.db._schema import metadata


def __getattr__(name: str) -> Any:
    # The tables are defined beside their stores, which import this package: the
    # MetaData is handed out only after they are all loaded (PEP 562).
    if name == "metadata":
        value = globals()["metadata"] = load_tables()
        return value
    raise AttributeError(f"module 'authcore.db' has no attribute {name!r}")


__all__ = [
    "alembic_render_item",
    "create_engine",
    "create_schema",
    "dispose_engine",
    "managed_engine",
    "metadata",
]
