"""What every session store shares: the session type, the rules and argument checks.

The expiry, reuse and purge rules live here once; the SQL store mirrors them in
SQL and the in-memory fake calls them directly, and one contract test suite
runs against both, so a behaviour cannot differ between them.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from authcore._time import positive_timedelta
from authcore.errors import (
    InvalidTokenError,
    TokenExpiredError,
    TokenReuseError,
    TokenRevokedError,
)
from authcore.tokens import (
    hash_token,
    parse_token,
)

__all__ = [
    "AuthSession",
    "IssuedSession",
    "NewSession",
    "Reason",
    "SessionRow",
    "SessionStats",
    "Status",
]

MAX_DATA_BYTES = 64 * 1024
MAX_IP_LENGTH = 64
MAX_USER_AGENT_LENGTH = 512
MAX_SESSION_ID_LENGTH = 32


class Reason(enum.StrEnum):
    """Why a session row was revoked (stored in ``revoke_reason``)."""

    LOGOUT = "logout"
    REVOKE_ALL = "revoke_all"
    ROTATED = "rotated"
    REUSE = "reuse"
    CAP = "cap"  # revoked to keep a user within max_sessions_per_user


class Status(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"
    GRACE = "grace"  # rotated away, presented again within rotation_grace


@dataclass(frozen=True, slots=True)
class AuthSession:
    """A session as the application sees it. It never carries the token.

    Attributes:
        id: Public identifier (what a JWT's ``sid`` claim carries). Random and
            unrelated to the token: knowing it does not help to forge one.
        user_id: The user id, as a string.
        created_at: When the session was created (aware UTC).
        last_seen_at: Last recorded activity (aware UTC), refreshed at most once
            per ``touch_interval``.
        expires_at: Absolute expiry (aware UTC); activity never moves it.
        data: The JSON data stored with the session (a fresh copy).
        ip: Client address recorded at creation, if any.
        user_agent: Client user agent recorded at creation, if any.
    """

    id: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    data: dict[str, Any]
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A session just created (or made by a rotation), with its token.

    What :meth:`~authcore.sessions.BaseSessionStore.issue_session` and
    :meth:`~authcore.sessions.BaseSessionStore.rotate_session` return, so a
    caller that needs both never reads back the session it has just written
    (a read that a concurrent revoke could make fail).

    Attributes:
        token: The new token: the only copy there is. Left out of ``repr``.
        session: The session as stored, exactly what :meth:`validate` of
            *token* returns until it is next touched.
    """

    token: str = field(repr=False)
    session: AuthSession


@dataclass(frozen=True, slots=True)
class SessionStats:
    """How many stored sessions are in each state, at one moment.

    A revoked session counts as revoked even once expired (revocation wins,
    as in ``validate``), so ``active + expired + revoked`` is every stored row.

    Attributes:
        active: Sessions a token would be accepted for.
        expired: Sessions past their expiry or idle timeout, not revoked.
        revoked: Revoked sessions (logout, revoke-all, rotation, reuse, cap).
        active_users: Distinct users with at least one active session.
    """

    active: int
    expired: int
    revoked: int
    active_users: int

    @property
    def total(self) -> int:
        """Every stored session: ``active + expired + revoked``."""
        return self.active + self.expired + self.revoked


@dataclass(frozen=True, slots=True)
class NewSession:
    """Everything a store writes for a new session, validated, plus the raw token."""

    token: str
    token_hash: str
    id: str
    family_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    data_json: str
    ip: str | None
    user_agent: str | None

    def row(self) -> dict[str, Any]:
        """The column values to insert (the token itself is not among them)."""
        return {
            "id": self.id,
            "token_hash": self.token_hash,
            "family_id": self.family_id,
            "user_id": self.user_id,
            "created_at": self.created_at,
            "last_seen_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": None,
            "revoke_reason": None,
            "data": self.data_json,
            "ip": self.ip,
            "user_agent": self.user_agent,
        }

    def issued(self) -> IssuedSession:
        """The token with the public view of the session as stored."""
        session = AuthSession(
            id=self.id,
            user_id=self.user_id,
            created_at=self.created_at,
            last_seen_at=self.created_at,
            expires_at=self.expires_at,
            data=decode_data(self.data_json),
            ip=self.ip,
            user_agent=self.user_agent,
        )
        return IssuedSession(token=self.token, session=session)


def encode_data(data: object) -> str:
    """Serialise session data to JSON, refusing what would not round-trip.

    Raises:
        TypeError: *data* is not a mapping, or holds values JSON cannot encode.
        ValueError: NaN/Infinity, circular references, or over 64 KiB encoded.
    """
    if data is None:
        return "{}"
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict, got {type(data).__name__}")
    if any(not isinstance(key, str) for key in data):
        raise TypeError("data keys must be strings")
    encoded = json.dumps(dict(data), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    if len(encoded.encode("utf-8")) > MAX_DATA_BYTES:
        raise ValueError(f"data must encode to at most {MAX_DATA_BYTES} bytes of JSON")
    return encoded


def decode_data(data_json: str) -> dict[str, Any]:
    value = json.loads(data_json)
    return value if isinstance(value, dict) else {}


def check_client_fields(ip: object, user_agent: object) -> tuple[str | None, str | None]:
    """The client address and user agent to record; never fails for what a client sent.

    Both come from request headers a client controls, and are recorded for
    display. An address is kept, in its normal form, only when it parses as
    an IPv4 or IPv6 address (``ipaddress``); anything else (too long, a
    list, markup) is recorded as ``None``. A long user agent is cut to 512
    characters. Only a value of the wrong type (a programming error) raises.
    """
    if ip is not None and not isinstance(ip, str):
        raise TypeError(f"ip must be a str or None, got {type(ip).__name__}")
    if user_agent is not None and not isinstance(user_agent, str):
        raise TypeError(f"user_agent must be a str or None, got {type(user_agent).__name__}")
    if user_agent is not None:
        user_agent = user_agent[:MAX_USER_AGENT_LENGTH]
    return _address(ip), user_agent


def _address(ip: str | None) -> str | None:
    if ip is None or len(ip) > MAX_IP_LENGTH:
        return None
    try:
        parsed = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    # An IPv4-mapped IPv6 address is written with its IPv4 part in dotted form, the
    # same on every Python (3.13 changed str() to that form; 3.12 wrote hex groups).
    mapped = getattr(parsed, "ipv4_mapped", None)
    address = f"::ffff:{mapped}" if mapped is not None else str(parsed)
    return address if len(address) <= MAX_IP_LENGTH else None


class SessionRow(Protocol):
    """The stored fields the rules read (a SQL row or a fake's record)."""

    id: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    data: str
    ip: str | None
    user_agent: str | None


def status_of(
    row: SessionRow,
    now: datetime,
    idle_timeout: timedelta | None,
    grace: timedelta = timedelta(0),
) -> Status:
    """Classify a stored session at *now*. The single source of the expiry rules.

    Revocation wins over expiry; a token rotated away is a reuse, except
    within *grace* of its rotation (and before it expires), when it is
    ``GRACE``. Expired means ``now >= expires_at``, or with an idle timeout
    ``now >= last_seen_at + idle_timeout``.
    """
    if row.revoked_at is not None:
        if row.revoke_reason != Reason.ROTATED:
            return Status.REVOKED
        # With no grace a rotated-away token is always a reuse, even when *now* was
        # read before a concurrent rotation stamped revoked_at (now < revoked_at).
        if grace > timedelta(0) and now < row.revoked_at + grace and now < row.expires_at:
            return Status.GRACE
        return Status.REUSED
    if now >= row.expires_at:
        return Status.EXPIRED
    if idle_timeout is not None and now >= row.last_seen_at + idle_timeout:
        return Status.EXPIRED
    return Status.ACTIVE


def is_purgeable(row: SessionRow, now: datetime, idle_timeout: timedelta | None) -> bool:
    """Whether ``purge_expired`` deletes a row at *now*.

    Expired rows go, and so do revoked rows, except rows revoked by rotation:
    those are kept until they expire so that presenting them again is still
    detected as reuse. Idle-expired rows that are not revoked go too.
    """
    if now >= row.expires_at:
        return True
    if row.revoked_at is not None:
        return row.revoke_reason != Reason.ROTATED
    return idle_timeout is not None and now >= row.last_seen_at + idle_timeout


def to_session(row: SessionRow, *, last_seen_at: datetime | None = None) -> AuthSession:
    """The public view of a stored row (optionally with a fresher ``last_seen_at``)."""
    return AuthSession(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=last_seen_at or row.last_seen_at,
        expires_at=row.expires_at,
        data=decode_data(row.data),
        ip=row.ip,
        user_agent=row.user_agent,
    )


def digest_of(token: object) -> str:
    """Parse *token* (raising ``MalformedTokenError``) and return its digest; no I/O."""
    parse_token(token)
    assert isinstance(token, str)
    return hash_token(token)


_ERRORS: dict[Status, type[InvalidTokenError]] = {
    Status.EXPIRED: TokenExpiredError,
    Status.REVOKED: TokenRevokedError,
    Status.REUSED: TokenReuseError,
    Status.GRACE: TokenRevokedError,
}
_MESSAGES = {
    Status.EXPIRED: "session expired",
    Status.REVOKED: "session revoked",
    Status.GRACE: "session revoked",
    Status.REUSED: "session token reused after rotation; its whole session family is revoked",
}


def error_for(status: Status | None, row: Any = None) -> InvalidTokenError:
    """The exception for a session that is not active (``None``: unknown token).

    A reuse names the user and the session of *row* (a stored row or record), for audit logs.
    """
    if status is None:
        return InvalidTokenError("unknown session token")
    if status is Status.REUSED and row is not None:
        return TokenReuseError(_MESSAGES[status], user_id=row.user_id, session_id=row.id)
    return _ERRORS[status](_MESSAGES[status])


def positive(value: object, name: str) -> timedelta:
    """A required positive duration."""
    result = positive_timedelta(value, name=name)
    assert result is not None
    return result


def check_grace(value: object) -> timedelta:
    """A rotation grace: a ``timedelta``, zero (off) or more."""
    if not isinstance(value, timedelta):
        raise TypeError(f"rotation_grace must be a datetime.timedelta, got {type(value).__name__}")
    if value < timedelta(0):
        raise ValueError("rotation_grace must not be negative")
    return value


def check_cap(value: object) -> int | None:
    """A session cap: ``None`` (no cap) or a positive ``int``."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"max_sessions_per_user must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError("max_sessions_per_user must be at least 1")
    return value


def check_batch_size(value: object) -> int:
    """A purge batch size: a positive ``int``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"batch_size must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError("batch_size must be at least 1")
    return value


def check_session_id(session_id: object) -> str | None:
    """A plausible public session id, or ``None`` for anything that cannot be one."""
    if isinstance(session_id, str) and 0 < len(session_id) <= MAX_SESSION_ID_LENGTH:
        return session_id
    return None
