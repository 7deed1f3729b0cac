"""What every session store shares: the session type, the rules and argument checks.

:class:`BaseSessionStore` states the contract once; ``SessionStore`` (SQL) and
``authcore.testing.InMemorySessionStore`` implement it, and one contract test
suite runs against both, so a behaviour cannot differ between them.
"""

from __future__ import annotations

import abc
import enum
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from authcore._time import Clock, positive_timedelta, read_clock, system_clock
from authcore.errors import (
    InvalidTokenError,
    TokenExpiredError,
    TokenReuseError,
    TokenRevokedError,
)
from authcore.tokens import (
    UserId,
    check_nbytes,
    hash_token,
    mint_token,
    normalize_user_id,
    parse_token,
)

__all__ = ["AuthSession", "BaseSessionStore"]

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


class Status(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


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
    """Validate the client address; cut an over-long user agent to 512 characters.

    A user agent is a client-controlled header recorded for display, so a long
    one is shortened rather than failing the login; an address is refused.
    """
    if ip is not None and not isinstance(ip, str):
        raise TypeError(f"ip must be a str or None, got {type(ip).__name__}")
    if ip is not None and len(ip) > MAX_IP_LENGTH:
        raise ValueError(f"ip must be at most {MAX_IP_LENGTH} characters")
    if user_agent is not None and not isinstance(user_agent, str):
        raise TypeError(f"user_agent must be a str or None, got {type(user_agent).__name__}")
    if user_agent is not None:
        user_agent = user_agent[:MAX_USER_AGENT_LENGTH]
    return ip, user_agent


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


def status_of(row: SessionRow, now: datetime, idle_timeout: timedelta | None) -> Status:
    """Classify a stored session at *now*. The single source of the expiry rules.

    Revocation wins over expiry; a token rotated away is a reuse. Expired means
    ``now >= expires_at``, or with an idle timeout ``now >= last_seen_at + idle_timeout``.
    """
    if row.revoked_at is not None:
        return Status.REUSED if row.revoke_reason == Reason.ROTATED else Status.REVOKED
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
}
_MESSAGES = {
    Status.EXPIRED: "session expired",
    Status.REVOKED: "session revoked",
    Status.REUSED: "session token reused after rotation; its whole session family is revoked",
}


def error_for(status: Status | None) -> InvalidTokenError:
    """The exception for a session that is not active (``None``: unknown token)."""
    if status is None:
        return InvalidTokenError("unknown session token")
    return _ERRORS[status](_MESSAGES[status])


class BaseSessionStore(abc.ABC):
    """The session store contract shared by every backend.

    Guarantees common to all methods: tokens are only ever stored as their
    SHA-256 digest; a malformed token never reaches storage; every expiry
    decision reads the store's clock, and time seen by the store never runs
    backwards (a clock that goes back extends nothing); an operation that
    fails or is cancelled leaves all of its change or none of it.
    """

    def __init__(
        self,
        *,
        ttl: timedelta = timedelta(days=14),
        idle_timeout: timedelta | None = None,
        touch_interval: timedelta = timedelta(seconds=60),
        token_bytes: int = 32,
        clock: Clock | None = None,
    ) -> None:
        self.ttl: timedelta = _positive(ttl, "ttl")
        self.idle_timeout = positive_timedelta(idle_timeout, name="idle_timeout", allow_none=True)
        if not isinstance(touch_interval, timedelta):
            raise TypeError("touch_interval must be a datetime.timedelta")
        if touch_interval < timedelta(0):
            raise ValueError("touch_interval must not be negative")
        if self.idle_timeout is not None and touch_interval >= self.idle_timeout:
            raise ValueError(
                "touch_interval must be shorter than idle_timeout, or sessions in "
                "constant use would still expire"
            )
        self.touch_interval = touch_interval
        self.token_bytes = check_nbytes(token_bytes)
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning a datetime")
        self._clock: Clock = clock or system_clock
        self._high_water: datetime | None = None

    def _now(self) -> datetime:
        """The store's current time: the clock, never earlier than a time already seen."""
        now = read_clock(self._clock)
        if self._high_water is not None and now < self._high_water:
            return self._high_water
        self._high_water = now
        return now

    def _status(self, row: SessionRow, now: datetime) -> Status:
        return status_of(row, now, self.idle_timeout)

    def _needs_touch(self, last_seen_at: datetime, now: datetime) -> bool:
        return now - last_seen_at >= self.touch_interval and now > last_seen_at

    def _new_session(
        self,
        user_id: UserId,
        *,
        ttl: timedelta | None,
        data: object,
        ip: object,
        user_agent: object,
        family_id: str | None = None,
    ) -> NewSession:
        """Validate create arguments and mint the token; raises before anything is stored."""
        uid = normalize_user_id(user_id)
        lifetime = self.ttl if ttl is None else _positive(ttl, "ttl")
        data_json = encode_data(data)
        ip, user_agent = check_client_fields(ip, user_agent)
        now = self._now()
        try:
            expires_at = now + lifetime
        except OverflowError:
            raise ValueError("ttl is too large: the expiry would be past year 9999") from None
        token = mint_token(uid, self.token_bytes, now)
        session_id = secrets.token_urlsafe(16)
        return NewSession(
            token=token,
            token_hash=hash_token(token),
            id=session_id,
            family_id=family_id or session_id,
            user_id=uid,
            created_at=now,
            expires_at=expires_at,
            data_json=data_json,
            ip=ip,
            user_agent=user_agent,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ttl={self.ttl!r}, idle_timeout={self.idle_timeout!r}, "
            f"touch_interval={self.touch_interval!r})"
        )

    @abc.abstractmethod
    async def create_session(
        self,
        user_id: UserId,
        *,
        ttl: timedelta | None = None,
        data: Mapping[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> str:
        """Create a session for *user_id* and return its new token.

        Guaranteed: each call returns a distinct token and stores exactly one
        session, under any concurrency and across processes sharing a database.
        Only the token's SHA-256 is stored. Invalid arguments raise before
        anything is stored.

        Args:
            user_id: A ``str``, ``int`` or ``UUID`` (stored as ``str``).
            ttl: Lifetime of this session; the store's ``ttl`` when ``None``.
            data: JSON-serialisable mapping with string keys (at most 64 KiB).
            ip: Client address to record (at most 64 characters).
            user_agent: Client user agent to record (cut to 512 characters).

        Raises:
            TypeError: an argument has the wrong type, or *data* is not JSON-serialisable.
            ValueError: an argument is out of range (empty user id, NaN in *data*...).
            StorageError: the database failed.
        """

    @abc.abstractmethod
    async def validate(self, token: str) -> AuthSession:
        """Return the active session for *token*, or raise why it is not accepted.

        A malformed token is refused before any database access. Refreshes
        ``last_seen_at`` at most once per ``touch_interval``; that refresh never
        moves ``expires_at`` and can never undo a concurrent revoke.

        Raises:
            MalformedTokenError: not an authcore token.
            InvalidTokenError: well-formed but unknown.
            TokenExpiredError: ``now >= expires_at`` or idle for ``idle_timeout``.
            TokenRevokedError: revoked by logout or revoke-all.
            TokenReuseError: a token that was rotated away; the whole rotation
                family is revoked before this is raised.
            StorageError: the database failed.
        """

    async def get_session(self, token: str) -> AuthSession | None:
        """Like :meth:`validate`, but ``None`` instead of an ``InvalidTokenError``.

        The same checks and side effects apply (reuse still revokes the family).

        Raises:
            StorageError: the database failed.
        """
        try:
            return await self.validate(token)
        except InvalidTokenError:
            return None

    @abc.abstractmethod
    async def rotate(self, token: str) -> str:
        """Replace *token* by a new one for the same user, data, ip and user agent.

        The new session expires the store's ``ttl`` from now and joins the old
        one's rotation family. Presenting the old token again raises
        :class:`~authcore.errors.TokenReuseError` and revokes the whole family.
        Atomic, also under cancellation: either the old token stays valid or
        the new one is, never both and never neither.

        Raises:
            The same errors as :meth:`validate`.
        """

    @abc.abstractmethod
    async def revoke(self, token: str) -> bool:
        """Revoke the session of *token*.

        Returns:
            ``True`` when an active session was revoked; ``False`` for an
            unknown, expired, already revoked or malformed token (the last
            without database access).

        Raises:
            StorageError: the database failed.
        """

    @abc.abstractmethod
    async def revoke_all(
        self,
        user_id: UserId,
        *,
        except_token: str | None = None,
        except_session_id: str | None = None,
    ) -> int:
        """Revoke every active session of *user_id*, except the one named.

        One statement: a session being created concurrently is either revoked
        or kept according to the exception, never half-way.

        Args:
            user_id: Whose sessions to revoke.
            except_token: Keep the session of this token (log out everywhere else).
            except_session_id: Keep the session with this public id.

        Returns:
            How many sessions were active and are now revoked.

        Raises:
            MalformedTokenError: *except_token* is not an authcore token.
            StorageError: the database failed.
        """

    @abc.abstractmethod
    async def get_session_by_id(self, session_id: str) -> AuthSession | None:
        """The active session with this public id (a JWT's ``sid``), else ``None``.

        Applies the same expiry rules as :meth:`validate`, including the
        throttled ``last_seen_at`` refresh, so idle timeouts follow activity
        made with access tokens too.
        """

    @abc.abstractmethod
    async def list_sessions(self, user_id: UserId) -> list[AuthSession]:
        """The active sessions of *user_id* (their devices), newest first."""

    @abc.abstractmethod
    async def revoke_session(self, user_id: UserId, session_id: str) -> bool:
        """Revoke one session by public id, only among *user_id*'s active sessions.

        Returns:
            ``True`` when a session was revoked.
        """

    @abc.abstractmethod
    async def purge_expired(self) -> int:
        """Delete expired and revoked sessions; return how many rows were deleted.

        Sessions revoked by rotation are kept until they expire, so presenting
        a rotated-away token is still recognised as reuse. Works in batches.
        """


def _positive(value: object, name: str) -> timedelta:
    result = positive_timedelta(value, name=name)
    assert result is not None
    return result


def check_session_id(session_id: object) -> str | None:
    """A plausible public session id, or ``None`` for anything that cannot be one."""
    if isinstance(session_id, str) and 0 < len(session_id) <= MAX_SESSION_ID_LENGTH:
        return session_id
    return None
