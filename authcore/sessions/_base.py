"""``BaseSessionStore``: the session store contract, stated once with its guarantees."""

from __future__ import annotations

import abc
import inspect
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from authcore._time import Clock, positive_timedelta, read_clock, system_clock
from authcore.errors import InvalidTokenError
from authcore.sessions._model import (
    AuthSession,
    IssuedSession,
    NewSession,
    SessionRow,
    SessionStats,
    Status,
    check_cap,
    check_client_fields,
    check_grace,
    encode_data,
    positive,
    status_of,
)
from authcore.tokens import UserId, check_nbytes, hash_token, mint_token, normalize_user_id

__all__ = ["BaseSessionStore", "Progress", "notify"]

Progress = Callable[[int], Awaitable[object] | object]
"""A purge progress callback: called with the running count of deleted rows."""


async def notify(progress: Progress, count: int) -> None:
    """Call a progress callback, awaiting it when it is a coroutine function."""
    result = progress(count)
    if inspect.isawaitable(result):
        await result


class BaseSessionStore(abc.ABC):
    """The session store contract shared by every backend.

    Guarantees common to all methods: tokens are only ever stored as their
    SHA-256 digest; a malformed token never reaches storage; every expiry
    decision reads the store's clock, and time seen by the store never runs
    backwards (a clock that goes back extends nothing); an operation that
    fails or is cancelled leaves all of its change or none of it.

    Cancellation: a caller that is cancelled (task cancellation, timeout)
    never receives a result, so :meth:`issue_session` / :meth:`create_session`
    then leave no session and :meth:`rotate_session` / :meth:`rotate` leave
    the old token valid and no successor. Every other operation that was
    under way when its caller was cancelled completes (a logout still logs
    out, a reuse still revokes the family) before ``CancelledError`` is raised.
    """

    def __init__(
        self,
        *,
        ttl: timedelta = timedelta(days=14),
        idle_timeout: timedelta | None = None,
        touch_interval: timedelta = timedelta(seconds=60),
        token_bytes: int = 32,
        rotation_grace: timedelta = timedelta(0),
        max_sessions_per_user: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.ttl: timedelta = positive(ttl, "ttl")
        self.rotation_grace = check_grace(rotation_grace)
        self.max_sessions_per_user = check_cap(max_sessions_per_user)
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
        return status_of(row, now, self.idle_timeout, self.rotation_grace)

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
        lifetime = self.ttl if ttl is None else positive(ttl, "ttl")
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
    async def issue_session(
        self,
        user_id: UserId,
        *,
        ttl: timedelta | None = None,
        data: Mapping[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> IssuedSession:
        """Create a session for *user_id*; return its new token with the session.

        Guaranteed: each call returns a distinct token and stores exactly one
        session, under any concurrency and across processes sharing a database.
        Only the token's SHA-256 is stored. Invalid arguments raise before
        anything is stored. The returned session is what was written: no
        second read, so a concurrent revoke cannot make this call fail.
        With ``max_sessions_per_user``, the same transaction revokes the
        user's least recently seen active sessions beyond the cap, so this
        call always succeeds and at most the cap stay active.

        Args:
            user_id: A ``str``, ``int`` or ``UUID`` (stored as ``str``).
            ttl: Lifetime of this session; the store's ``ttl`` when ``None``.
            data: JSON-serialisable mapping with string keys (at most 64 KiB).
            ip: Client address to record: kept (normalised) only when it parses
                as an IPv4 or IPv6 address, else recorded as ``None``; never an error.
            user_agent: Client user agent to record (cut to 512 characters).

        Raises:
            TypeError: an argument has the wrong type, or *data* is not JSON-serialisable.
            ValueError: an argument is out of range (empty user id, NaN in *data*...).
            StorageError: the database failed.
        """

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

        The same as :meth:`issue_session` (same arguments, guarantees and
        errors), returning only the token.
        """
        issued = await self.issue_session(user_id, ttl=ttl, data=data, ip=ip, user_agent=user_agent)
        return issued.token

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
    async def rotate_session(self, token: str) -> IssuedSession:
        """Replace *token* by a new one for the same user, data, ip and user agent.

        The new session expires the store's ``ttl`` from now and joins the old
        one's rotation family. Presenting the old token again raises
        :class:`~authcore.errors.TokenReuseError` and revokes the whole family.
        Atomic, also under cancellation: either the old token stays valid or
        the new one is, never both and never neither.

        Rotation grace: within ``rotation_grace`` after a token was rotated
        away, rotating it again returns a further new token of the same
        family (the earlier successor stays valid: a client whose response
        was lost, or a second tab), as long as the family still has an active
        session; :meth:`validate` of it raises
        :class:`~authcore.errors.TokenRevokedError`. Neither revokes the
        family. After the grace, both raise ``TokenReuseError`` and revoke it.

        Returns:
            The new token with its session, as written (no second read).

        Raises:
            InvalidTokenError: for the same reasons as :meth:`validate`
                (malformed, unknown, expired, revoked); a rotated-away token
                raises :class:`~authcore.errors.TokenReuseError`.
            StorageError: the database failed.
        """

    async def rotate(self, token: str) -> str:
        """Replace *token* by a new one and return the new token.

        The same as :meth:`rotate_session` (same guarantees and errors),
        returning only the token.
        """
        return (await self.rotate_session(token)).token

    @abc.abstractmethod
    async def revoke(self, token: str) -> bool:
        """Revoke the session of *token*.

        Logging out always ends the session the client holds: when *token*
        was rotated away (a refresh racing this logout), the active sessions
        of its rotation family, which replaced it, are revoked instead.

        Returns:
            ``True`` when an active session was revoked (the token's own, or a
            successor's); ``False`` for an unknown, expired, already revoked
            or malformed token (the last without database access).

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
        """Revoke one session by public id, only among *user_id*'s sessions.

        Like :meth:`revoke`: when that session was rotated away (a refresh
        racing a logout by access token, say), the active sessions of its
        rotation family are revoked instead, so the device is logged out.

        Returns:
            ``True`` when a session was revoked.
        """

    @abc.abstractmethod
    async def purge_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        """Delete expired and revoked sessions; return how many rows were deleted.

        Sessions revoked by rotation are kept until they expire, so presenting
        a rotated-away token is still recognised as reuse. What is purgeable
        is decided once, at the start. Works in batches of *batch_size* rows,
        each one transaction that a cancellation cannot split (a cancelled
        purge stops after the batch under way).

        Args:
            batch_size: Rows deleted per transaction (at least 1).
            progress: Called with the running count of deleted rows after each
                batch (a plain function, or a coroutine function).

        Raises:
            TypeError, ValueError: a bad *batch_size*.
            StorageError: the database failed.
        """

    @abc.abstractmethod
    async def count_purgeable(self) -> int:
        """How many rows :meth:`purge_expired` would delete now."""

    @abc.abstractmethod
    async def stats(self) -> SessionStats:
        """How many stored sessions are active, expired and revoked now, in one read,
        and how many distinct users have an active session."""
