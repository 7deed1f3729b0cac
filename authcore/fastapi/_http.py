"""The HTTP vocabulary of the integration: status details, the errors, ``Principal``.

A leaf module: everything else in :mod:`authcore.fastapi` speaks HTTP through
these names, so every credential problem is the same 401 with one constant
body, whichever check refused it.
"""

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NoReturn

from fastapi import HTTPException, status

from authcore.errors import HasherBusyError, InvalidTokenError, StorageError
from authcore.sessions import AuthSession
from authcore.users import User

__all__ = [
    "BAD_CURRENT_PASSWORD",
    "BAD_LOGIN",
    "CSRF_REFUSED",
    "NOT_AUTHENTICATED",
    "UNAUTHORIZED_RESPONSES",
    "BUSY",
    "UNAVAILABLE",
    "UNPROCESSABLE",
    "Principal",
    "busy",
    "csrf_refused",
    "http_errors",
    "raise_storage_unavailable",
    "retry_seconds",
    "seconds_until",
    "unauthorized",
    "unavailable",
    "unprocessable",
]

logger = logging.getLogger("authcore.fastapi")

#: The body of every 401 from the dependencies, whatever the reason.
NOT_AUTHENTICATED = "Not authenticated"
#: The body of a 503: the database failed or is unreachable.
UNAVAILABLE = "Authentication is temporarily unavailable"
#: The body of a 503 from a full password hashing queue.
BUSY = "The server is busy; try again shortly"
#: The body of a 403 from the CSRF check.
CSRF_REFUSED = "Cross-site request refused"
#: The body of a failed login, whichever part was wrong.
BAD_LOGIN = "Incorrect username or password"
#: The body of a 400 from ``/password``.
BAD_CURRENT_PASSWORD = "The current password is incorrect"
#: 422 as a literal: ``status.HTTP_422_UNPROCESSABLE_CONTENT`` needs Starlette 0.48.
UNPROCESSABLE = 422

#: The ``responses=`` of every route that needs credentials, for the OpenAPI schema.
UNAUTHORIZED_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "Cross-site request refused (CSRF check)"},
    503: {"description": "The session database is unavailable"},
}


def unauthorized(detail: str = NOT_AUTHENTICATED) -> HTTPException:
    """The 401 every credential problem becomes, with ``WWW-Authenticate: Bearer``."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def unavailable() -> HTTPException:
    """The 503 a :class:`~authcore.errors.StorageError` becomes."""
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=UNAVAILABLE)


def retry_seconds(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def busy(exc: HasherBusyError) -> HTTPException:
    """The 503 with ``Retry-After`` of a full password hashing queue."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=BUSY,
        headers={"Retry-After": retry_seconds(exc.retry_after.total_seconds())},
    )


def csrf_refused() -> HTTPException:
    """The 403 of a refused CSRF (origin) check."""
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=CSRF_REFUSED)


def unprocessable(exc: ValueError | TypeError) -> HTTPException:
    """A 422 with ``{"message", "reasons"}``: the refusal in words (never the password)
    and the password policy's reason codes (empty for any other refusal)."""
    reasons = list(getattr(exc, "reasons", ()))
    return HTTPException(UNPROCESSABLE, detail={"message": str(exc), "reasons": reasons})


def raise_storage_unavailable(exc: StorageError) -> NoReturn:
    """Turn a :class:`~authcore.errors.StorageError` into the 503, logging the cause."""
    logger.warning("request failed: storage unavailable (%s)", exc)
    raise unavailable() from exc


@asynccontextmanager
async def http_errors() -> AsyncIterator[None]:
    """In a route: any :class:`~authcore.errors.InvalidTokenError` is the 401, a
    :class:`~authcore.errors.StorageError` the 503, whenever they happen (a
    concurrent request may revoke what the route has just made), and a
    :class:`~authcore.errors.HasherBusyError` the 503 with ``Retry-After``."""
    try:
        yield
    except InvalidTokenError:
        raise unauthorized() from None
    except HasherBusyError as exc:
        raise busy(exc) from None
    except StorageError as exc:
        raise_storage_unavailable(exc)


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from *now* to *moment*, never negative."""
    return max(int((moment - now).total_seconds()), 0)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request, and how they proved it.

    Attributes:
        session: The active session behind the credentials.
        user: Its user, active.
        via: ``"bearer"`` (a JWT access token in ``Authorization``) or
            ``"cookie"`` (the session cookie).
        token: The session token when *via* is ``"cookie"``, else ``None``.
            Never shown in ``repr``.
    """

    session: AuthSession
    user: User
    via: Literal["bearer", "cookie"]
    token: str | None = field(default=None, repr=False)
