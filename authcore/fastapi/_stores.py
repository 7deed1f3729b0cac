"""What :class:`~authcore.fastapi.AuthCore` needs of its stores, as protocols.

Any object with these methods can be injected (``AuthCore(sessions=...,
users=...)``): :class:`~authcore.SessionStore` and :class:`~authcore.UserStore`,
the testing kit's in-memory fakes, or an application's own. The methods and
their guarantees are those of the contract (see :class:`~authcore.SessionStore`
and :class:`~authcore.UserStore`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from authcore.sessions import AuthSession, IssuedSession
from authcore.tokens import UserId
from authcore.users import User

__all__ = ["SessionBackend", "UserBackend"]


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
    """The user store methods the integration calls."""

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
