"""The stores :class:`~authcore.fastapi.AuthCore` runs on: what it needs of them, and the defaults.

Any object with the methods of the protocols below can be injected
(``AuthCore(sessions=..., users=...)``): :class:`~authcore.SessionStore` and
:class:`~authcore.UserStore`, the testing kit's in-memory fakes, or an
application's own. The methods and their guarantees are those of the contract
(see :class:`~authcore.SessionStore` and :class:`~authcore.UserStore`).
:func:`open_stores` makes the stores that were not injected, on an engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock
from authcore.db import create_engine
from authcore.passwords import PasswordHasher, PasswordPolicy
from authcore.sessions import AuthSession, IssuedSession, SessionStore
from authcore.throttle import LoginThrottle
from authcore.tokens import UserId
from authcore.users import User, UserStore

__all__ = ["SessionBackend", "Stores", "UserBackend", "open_stores"]


class SessionBackend(Protocol):
    """The session store methods the integration calls."""

    async def issue_session(
        self,
        user_id: UserId,
        *,
        ttl: timedelta | None = None,
        data: Mapping[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> IssuedSession:
        """Create a session; its token with the session as written."""

    async def rotate_session(self, token: str) -> IssuedSession:
        """Replace *token*; the new token with the session as written."""

    async def validate(self, token: str) -> AuthSession:
        """The active session of *token*, or raise ``InvalidTokenError``."""

    async def revoke(self, token: str) -> bool:
        """Revoke the session of *token* (or its successor from a concurrent rotation)."""

    async def revoke_all(
        self,
        user_id: UserId,
        *,
        except_token: str | None = None,
        except_session_id: str | None = None,
    ) -> int:
        """Revoke every active session of *user_id*, but the one kept."""

    async def get_session_by_id(self, session_id: str) -> AuthSession | None:
        """The active session with that public id, else ``None``."""

    async def list_sessions(self, user_id: UserId) -> list[AuthSession]:
        """The active sessions of *user_id*, newest first."""

    async def revoke_session(self, user_id: UserId, session_id: str) -> bool:
        """Revoke one of *user_id*'s active sessions by its public id."""


class UserBackend(Protocol):
    """The user store methods the integration calls.

    ``/login`` re-checks, once its session exists, that the password it
    verified is still the user's (see :mod:`authcore.users._receipt`); only a
    :class:`~authcore.BaseUserStore` whose ``authenticate`` runs takes part.
    Another store's logins are not re-checked.
    """

    async def create_user(self, username: str, password: str, *, email: str | None = None) -> User:
        """Create a user; ``UserExistsError``, ``PasswordPolicyError``.

        ``/register`` passes *email* only when the client sent one.
        """

    async def authenticate(self, username: str, password: str) -> User | None:
        """The active user with that password, else ``None``."""

    async def get_user(self, user_id: UserId) -> User | None:
        """The user with that id, else ``None``."""

    async def get_user_by_username(self, username: str) -> User | None:
        """The user with that (normalised) username, else ``None``."""

    async def set_password(self, user_id: UserId, new_password: str) -> None:
        """Change a user's password; ``UserNotFoundError``."""

    async def set_active(self, user_id: UserId, active: bool) -> None:
        """Activate or deactivate a user; ``UserNotFoundError``."""

    async def get_user_by_email(self, email: str) -> User | None:
        """The user with that (normalised) email address, else ``None``."""

    async def make_reset_token(self, user_id: UserId, *, ttl: timedelta = ...) -> str:
        """A one-time password reset token (for ``/forgot-password``)."""

    async def reset_password(self, token: str, new_password: str) -> User:
        """Set a new password with a reset token; ``InvalidTokenError``, ``PasswordPolicyError``."""

    async def make_verify_token(self, user_id: UserId, *, ttl: timedelta = ...) -> str:
        """A one-time email verification token; ``ValueError`` without an address."""

    async def verify_email(self, token: str) -> User:
        """Mark the address verified with a verification token; ``InvalidTokenError``."""


@dataclass(frozen=True, slots=True)
class Stores:
    """The engine and the stores an ``AuthCore`` runs on."""

    engine: AsyncEngine | None  # None: both stores injected, and no engine given
    owns_engine: bool  # made here, so disposed by the app's lifespan
    sessions: SessionBackend
    users: UserBackend
    login_throttle: LoginThrottle | None
    hasher: PasswordHasher  # the app's (and the default user store's)

    @property
    def users_hasher(self) -> PasswordHasher | None:
        """The user store's own hasher when it has one (an injected store may differ)."""
        hasher = getattr(self.users, "hasher", self.hasher)
        return hasher if isinstance(hasher, PasswordHasher) else None


def open_stores(
    *,
    database_url: str | URL,
    engine: AsyncEngine | None,
    sessions: SessionBackend | None,
    users: UserBackend | None,
    hasher: PasswordHasher | None,
    password_policy: PasswordPolicy | None,
    login_throttle: LoginThrottle | bool | None,
    session_ttl: timedelta,
    idle_timeout: timedelta | None,
    rotation_grace: timedelta,
    max_sessions_per_user: int | None,
    clock: Clock | None,
) -> Stores:
    """The injected stores, and the default ones on *engine* (made from *database_url*).

    An engine is made only when a store needs one: with both stores
    injected, there is no database. The arguments are those of ``AuthCore``;
    *hasher* ``None`` is ``PasswordHasher()``.

    Raises:
        TypeError: *login_throttle* is not a ``LoginThrottle``, a bool or ``None``
            (before any engine is made).
    """
    if login_throttle is not None and not isinstance(login_throttle, bool | LoginThrottle):
        raise TypeError("login_throttle must be a LoginThrottle, True, False or None")
    hasher = PasswordHasher() if hasher is None else hasher
    owns_engine = engine is None and (sessions is None or users is None)
    if owns_engine:
        engine = create_engine(database_url)
    if sessions is None:  # not `or`: an empty in-memory store is falsy (it has a len)
        assert engine is not None  # made above
        sessions = SessionStore(
            engine,
            ttl=session_ttl,
            idle_timeout=idle_timeout,
            rotation_grace=rotation_grace,
            max_sessions_per_user=max_sessions_per_user,
            clock=clock,
        )
    if users is None:
        assert engine is not None  # made above
        users = UserStore(engine, hasher=hasher, policy=password_policy, clock=clock)
    if login_throttle is True:
        login_throttle = None if engine is None else LoginThrottle(engine, clock=clock)
    return Stores(engine, owns_engine, sessions, users, login_throttle or None, hasher)
