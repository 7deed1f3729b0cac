"""Guards around every storage operation: driver errors and cancellation."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from authcore.errors import StorageError

__all__ = ["run_to_completion", "storage_errors", "uncancellable"]

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Re-raise database and network failures inside the block as ``StorageError``.

    The original exception is chained as ``__cause__``. Cancellation and
    authcore's own errors pass through untouched. The message names the
    *action* and the driver's own first line, never a statement's parameters.
    """
    try:
        yield
    except DBAPIError as exc:
        # The driver's own first line ("database is locked", "no such table: ..."),
        # never SQLAlchemy's rendering, which appends the statement's parameters.
        lines = str(exc.orig).strip().splitlines()
        detail = f": {lines[0][:200]}" if lines else ""
        kind = type(exc.orig).__name__
        raise StorageError(f"database error while {action}: {kind}{detail}") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"database error while {action}: {type(exc).__name__}") from exc
    except TimeoutError as exc:  # asyncpg's connect timeout or command_timeout
        raise StorageError(f"database did not answer in time while {action}") from exc
    except OSError as exc:  # sockets, refused connections
        raise StorageError(f"database unreachable while {action}: {type(exc).__name__}") from exc


async def run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* in a task of its own that a cancellation of the caller cannot interrupt.

    If the caller is cancelled meanwhile, *coro* still finishes (its
    transaction commits or rolls back, its connection returns to the pool),
    and only then is the ``CancelledError`` raised in the caller. A
    cancellation therefore never lands between two halves of a driver call
    (a statement sent but its rows not read, a commit sent but not
    acknowledged), which is where connections leak or keep locks.
    How long that takes is bounded by the pool timeout and the driver's own
    timeouts.
    """
    task = asyncio.ensure_future(coro)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if not task.done():
                cancelled = error  # the caller was cancelled: finish first
        except BaseException:  # noqa: S110 - the task's own error, re-raised below
            pass
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # mark it retrieved; the cancellation wins
        raise cancelled
    return task.result()


def uncancellable(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a coroutine function so that each call runs via :func:`run_to_completion`."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await run_to_completion(method(*args, **kwargs))

    return wrapper
