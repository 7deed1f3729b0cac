"""The exceptions authcore raises.

Every error authcore raises on purpose derives from :class:`AuthError`::

    AuthError(Exception)
    ├── InvalidTokenError            any token that must not be accepted (-> HTTP 401)
    │   ├── MalformedTokenError      not of authcore's format; raised before any I/O
    │   ├── TokenExpiredError        session past expires_at or idle timeout; JWT past exp
    │   └── TokenRevokedError        session revoked (logout, revoke_all, rotation)
    │       └── TokenReuseError      a rotated-away token was presented again; its
    │                                whole rotation family is now revoked
    ├── PasswordPolicyError          (also ValueError) empty, not a str, too long
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

from collections.abc import Iterable

__all__ = [
    "AuthError",
    "ConfigError",
    "DependencyVersionError",
    "InvalidTokenError",
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
    """


class PasswordPolicyError(AuthError, ValueError):
    """The password is refused before any hashing: empty, not a ``str``, or too long."""


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
