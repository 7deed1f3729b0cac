"""The exceptions authcore raises.

Every error authcore raises on purpose derives from :class:`AuthError`::

    AuthError(Exception)
    ├── InvalidTokenError            any token that must not be accepted (-> HTTP 401)
    │   ├── MalformedTokenError      not of authcore's format; raised before any I/O
    │   ├── TokenExpiredError        session past expires_at or idle timeout; JWT past exp
    │   └── TokenRevokedError        session revoked (logout, revoke_all, rotation)
    │       └── TokenReuseError      a rotated-away token was presented again; its
    │                                whole rotation family is now revoked
    ├── PasswordPolicyError          (also ValueError) empty, not a str, too long, or
    │                                refused by a PasswordPolicy; ``.reasons`` holds the codes
    ├── LoginThrottledError          too many failed logins; ``.retry_after`` is a timedelta
    ├── HasherBusyError              the password hashing queue is full; ``.retry_after``
    ├── UserExistsError              username already taken (case-insensitive)
    ├── UserNotFoundError            (also LookupError) no user with that id
    ├── StorageError                 the database failed or is unreachable; the
    │                                driver's exception is chained as ``__cause__``
    ├── DependencyVersionError       (also ImportError) an unsupported dependency version
    └── ConfigError                  (also ValueError) invalid settings; ``.problems``
                                     lists every problem as ``"key: what is wrong"``

Messages are written for humans and never contain a raw token, a password, a
password hash or a key, so they are safe to log and to show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Final

__all__ = [
    "AuthError",
    "ConfigError",
    "DependencyVersionError",
    "HasherBusyError",
    "InvalidTokenError",
    "LoginThrottledError",
    "MalformedTokenError",
    "PasswordPolicyError",
    "StorageError",
    "TokenExpiredError",
    "TokenReuseError",
    "TokenRevokedError",
    "UserExistsError",
    "UserNotFoundError",
]


class AuthError(Exception):
    """Base class of every error authcore raises on purpose."""


class InvalidTokenError(AuthError):
    """A token that must not be accepted: unknown, malformed, expired or revoked.

    A web integration maps every subclass to the same HTTP 401 response, so a
    client cannot tell which check failed.
    """


class MalformedTokenError(InvalidTokenError):
    """The value is not a token authcore could have produced.

    Raised before any database access.
    """


class TokenExpiredError(InvalidTokenError):
    """The session is past its absolute expiry or its idle timeout (or a JWT past ``exp``)."""


class TokenRevokedError(InvalidTokenError):
    """The session was revoked (logout, revoke-all, rotation)."""


class TokenReuseError(TokenRevokedError):
    """A token that had been rotated away was presented again.

    This is the signature of a stolen token: every session of its rotation
    family has been revoked by the time this is raised.

    Attributes:
        user_id: The user whose token it was, when the store says (for an
            audit log; never a secret), else ``None``.
        session_id: The public id of the rotated-away session, or ``None``.
    """

    def __init__(
        self, message: str = "", *, user_id: str | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.session_id = session_id


_REASON_WORDS: Final = {
    "too_short": "it is too short",
    "too_long": "it is too long",
    "similar_to_username": "it is too similar to the username",
    "too_common": "it is a commonly used password",
}


class PasswordPolicyError(AuthError, ValueError):
    """The password is refused before any hashing.

    Raised by :class:`~authcore.PasswordHasher` for a password that is empty,
    not a ``str`` or too long, and by :class:`~authcore.PasswordPolicy` for one
    its rules refuse. The message names the problems in plain words and never
    contains the password.

    Attributes:
        reasons: The reason codes that apply, in a fixed order, from
            ``"too_short"``, ``"too_long"``, ``"similar_to_username"`` and
            ``"too_common"``; empty for a refusal that has no code (a value
            that is not a ``str``, a lone surrogate, plain bcrypt's 72-byte limit).
    """

    reasons: tuple[str, ...]

    def __init__(self, message: str | None = None, *, reasons: Iterable[str] = ()) -> None:
        self.reasons = tuple(reasons)
        if message is None:
            words = [_REASON_WORDS.get(code, code) for code in self.reasons]
            message = "password refused: " + ("; ".join(words) or "it is not acceptable")
        super().__init__(message)


class LoginThrottledError(AuthError):
    """Too many failed logins for this username or client address; try again later.

    Attributes:
        retry_after: How long until the oldest counted failure leaves the
            window and a login may be tried again (a positive ``timedelta``).
    """

    retry_after: timedelta

    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after = retry_after
        seconds = max(1, math.ceil(retry_after.total_seconds()))
        super().__init__(f"too many failed logins; try again in {seconds} s")


class HasherBusyError(AuthError):
    """Too many password hashes are already waiting for the hashing threads: load shedding.

    Raised at once, before any hashing, so an overloaded server answers quickly
    (a web integration maps it to HTTP 503 with ``Retry-After``).

    Attributes:
        retry_after: A suggested wait before trying again (a positive ``timedelta``).
    """

    retry_after: timedelta

    def __init__(self, retry_after: timedelta = timedelta(seconds=1)) -> None:
        self.retry_after = retry_after
        super().__init__("too many password hashes are waiting; try again shortly")


class UserExistsError(AuthError):
    """The username is already taken (compared after NFKC normalisation and case folding)."""


class UserNotFoundError(AuthError, LookupError):
    """No user has that id."""


class StorageError(AuthError):
    """The database failed or could not be reached.

    The driver's exception is chained as ``__cause__`` for logs and debugging.
    """


class DependencyVersionError(AuthError, ImportError):
    """An installed dependency is outside the supported range.

    The message names the installed version and the command that fixes it.
    """


class ConfigError(AuthError, ValueError):
    """The configuration is invalid; :attr:`problems` lists every problem found.

    Each problem reads ``"key: what is wrong"``, where the key is a setting's
    name (``session_ttl``), an environment variable (``AUTHCORE_SESSION_TTL``)
    or ``config file``. ``str()`` joins them with ``"; "``. Guaranteed: no
    problem ever contains the secret key or a database password.

    Attributes:
        problems: One entry per problem, in the order found.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("; ".join(self.problems))
