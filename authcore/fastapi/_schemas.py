"""Request and response bodies of the authcore routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

__all__ = [
    "PasswordChange",
    "PasswordChanged",
    "Refresh",
    "Registration",
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


class UserInfo(BaseModel):
    """A user as the API shows it: never the password hash."""

    id: str
    username: str


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
