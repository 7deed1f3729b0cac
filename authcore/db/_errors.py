"""Translating driver failures into :class:`~authcore.errors.StorageError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from authcore.errors import StorageError

__all__ = ["storage_errors"]


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Re-raise database and network failures inside the block as ``StorageError``.

    The original exception is chained as ``__cause__``. Cancellation and
    authcore's own errors pass through untouched. The message names the
    *action* and the failure's type, never a statement's parameters.
    """
    try:
        yield
    except DBAPIError as exc:
        # The driver's own first line ("database is locked", "no such table: ..."),
        # never SQLAlchemy's rendering, which appends the statement's parameters.
        detail = str(exc.orig).strip().splitlines()[0][:200] if str(exc.orig).strip() else ""
        kind = type(exc.orig).__name__
        raise StorageError(f"database error while {action}: {kind}: {detail}".rstrip(": ")) from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"database error while {action}: {type(exc).__name__}") from exc
    except OSError as exc:  # sockets, refused connections, timeouts
        raise StorageError(f"database unreachable while {action}: {type(exc).__name__}") from exc
