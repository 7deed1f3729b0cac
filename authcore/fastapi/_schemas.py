"""Request and response bodies of the authcore routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer, model_validator

from authcore.sessions import AuthSession
from authcore.users import User

__all__ = [
    "Accepted",
    "EmailToken",
    "ForgotPassword",
    "PasswordChange",
    "PasswordChanged",
    "Refresh",
    "Registration",
    "ResetPassword",
    "Revoked",
    "SessionInfo",
    "TokenPair",
    "UserInfo",
]

# ISO 8601 with an explicit offset ("+00:00"), as datetime.isoformat writes it.
IsoDateTime = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str)]


class Registration(BaseModel):
    """``POST /register``: a new account."""

    username: str
    password: str
    email: str | None = None


class UserInfo(BaseModel):
    """A user as the API shows it: never the password hash."""

    id: str
    username: str
    email: str | None
    is_active: bool
    is_verified: bool

    @classmethod
    def of(cls, user: User) -> UserInfo:
        """The public view of *user*."""
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            is_active=user.is_active,
            is_verified=user.is_verified,
        )


class TokenPair(BaseModel):
    """What ``/login`` and ``/refresh`` return.

    ``access_token`` is a short-lived JWT for the ``Authorization: Bearer``
    header; ``refresh_token`` is the opaque session token, to be sent only to
    ``/refresh``. ``expires_in`` is the access token's lifetime in seconds.
    """

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class Refresh(BaseModel):
    """``POST /refresh``: the refresh token to rotate."""

    refresh_token: str


class Revoked(BaseModel):
    """How many sessions a request revoked."""

    revoked: int


class SessionInfo(BaseModel):
    """One of the caller's active sessions (a device). Never carries a token."""

    id: str
    created_at: IsoDateTime
    last_seen_at: IsoDateTime
    expires_at: IsoDateTime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, session: AuthSession, *, current: bool) -> SessionInfo:
        """The public view of *session*."""
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
            ip=session.ip,
            user_agent=session.user_agent,
            current=current,
        )


class PasswordChange(BaseModel):
    """``POST /password``: the current password and the new one."""

    current_password: str
    new_password: str


class PasswordChanged(BaseModel):
    """The answer to ``POST /password``.

    ``revoked`` counts the other sessions that were signed out; ``rotated`` is
    true when the current session's token was replaced (cookie sessions: the
    new token is in the ``Set-Cookie`` header).
    """

    revoked: int
    rotated: bool


class ForgotPassword(BaseModel):
    """``POST /forgot-password``: the account, by its username or its email address."""

    username: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ForgotPassword:
        if (self.username is None) == (self.email is None):
            raise ValueError("give either username or email")
        return self


class ResetPassword(BaseModel):
    """``POST /reset-password``: the token from the reset mail and the new password."""

    token: str
    password: str


class EmailToken(BaseModel):
    """``POST /verify``: the token from the verification mail."""

    token: str


class Accepted(BaseModel):
    """A 202: the request was taken; what follows happens out of band (a mail)."""

    detail: str
