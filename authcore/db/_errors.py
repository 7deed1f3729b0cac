"""Guards around every storage operation: driver errors and cancellation."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from authcore.errors import StorageError

__all__ = ["caller_cancelled", "run_to_completion", "storage_errors", "uncancellable"]

logger = logging.getLogger("authcore.db")

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


class _Caller:
    """What the work inside :func:`run_to_completion` may know of its caller."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


_CALLER: ContextVar[_Caller | None] = ContextVar("authcore_caller", default=None)


def caller_cancelled() -> bool:
    """Whether the caller of the enclosing :func:`run_to_completion` was cancelled.

    Work that must not outlive a caller who will never see its result (a new
    session's token) checks this right before it commits, and rolls back, or
    undoes its change when the cancellation arrived during the commit.
    ``False`` outside :func:`run_to_completion`.
    """
    caller = _CALLER.get()
    return caller is not None and caller.cancelled


async def _finish(
    task: asyncio.Future[Any], caller: _Caller | None = None
) -> asyncio.CancelledError | None:
    """Wait until *task* is done, whatever cancellations arrive; return the first of them.

    A cancellation that arrives just as *task* finishes, before this
    coroutine resumes, counts too: it must not be swallowed. *caller*, when
    given, is marked cancelled at once, for the task to see.
    """
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as error:
            # Either the caller was cancelled, or the task itself ended cancelled
            # (it gave up on its own): only the first is the caller's cancellation.
            if cancelled is None and not (task.done() and task.cancelled()):
                cancelled = error
                if caller is not None:
                    caller.cancelled = True
        except BaseException:  # noqa: S110 - the task's own error, raised by the caller
            pass
        if task.done():
            return cancelled


async def run_to_completion(
    coro: Coroutine[Any, Any, T],
    *,
    undo: Callable[[T], Coroutine[Any, Any, object]] | None = None,
) -> T:
    """Run *coro* in a task of its own that a cancellation of the caller cannot interrupt.

    If the caller is cancelled meanwhile, *coro* still runs to its end (its
    transaction commits or rolls back, its connection returns to the pool),
    and only then is the ``CancelledError`` raised in the caller. A
    cancellation therefore never lands between two halves of a driver call
    (a statement sent but its rows not read, a commit sent but not
    acknowledged), which is where connections leak or keep locks.

    For work whose result only the caller can use (a new session's token):
    *coro* learns of the cancellation through :func:`caller_cancelled` and
    may roll back instead of committing; and when it returned a result all
    the same (the cancellation came during its COMMIT, or after it, before
    the caller could resume), ``undo(result)`` runs, just as uninterruptibly,
    before the ``CancelledError`` is raised. A failing *undo* is logged.
    How long finishing takes is bounded by the pool timeout and the
    driver's own timeouts.
    """
    caller = _Caller()
    reset = _CALLER.set(caller)
    try:
        task = asyncio.ensure_future(coro)  # the task's context holds *caller*
    finally:
        _CALLER.reset(reset)
    cancelled = await _finish(task, caller)
    if cancelled is None:
        return task.result()
    if task.cancelled() or task.exception() is not None:
        raise cancelled  # the task's own error is retrieved; the cancellation wins
    if undo is not None:
        undoing = asyncio.ensure_future(undo(task.result()))
        await _finish(undoing)
        if not undoing.cancelled() and undoing.exception() is not None:
            logger.warning(
                "could not undo an operation whose caller was cancelled: %s",
                type(undoing.exception()).__name__,
            )
    raise cancelled


def uncancellable(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a coroutine function so that each call runs via :func:`run_to_completion`."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await run_to_completion(method(*args, **kwargs))

    return wrapper
