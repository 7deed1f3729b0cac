"""``SessionStore``: sessions persisted through async SQLAlchemy."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock
from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import storage_errors, uncancellable
from authcore.db._logs import hide_driver_arguments
from authcore.errors import MalformedTokenError
from authcore.sessions._model import (
    AuthSession,
    Reason,
    Status,
    check_session_id,
    digest_of,
    error_for,
    to_session,
)
from authcore.sessions._sql_issuing import BY_DIGEST, SqlIssuing
from authcore.sessions._sql_maintenance import PUBLIC_COLUMNS, STATE_COLUMNS
from authcore.sessions._table import sessions_table as t
from authcore.tokens import UserId, normalize_user_id

__all__ = ["SessionStore"]


_BY_ID = select(*PUBLIC_COLUMNS, *STATE_COLUMNS).where(t.c.id == bindparam("sid"))


class SessionStore(SqlIssuing):
    """Sessions in a SQL database through an async SQLAlchemy engine.

    Each token is looked up by its SHA-256 digest (a unique index); sessions are
    indexed by user, by expiry and by rotation family. A validate costs one
    indexed read and, at most once per ``touch_interval``, one small write.
    Every write is a single transaction; on SQLite, transactions that read
    before they write start with ``BEGIN IMMEDIATE``. Database failures raise
    :class:`~authcore.errors.StorageError` with the driver's error chained.

    Example:
        >>> engine = create_engine("sqlite+aiosqlite:///app.db")  # doctest: +SKIP
        >>> await create_schema(engine)  # doctest: +SKIP
        >>> store = SessionStore(engine, idle_timeout=timedelta(hours=2))  # doctest: +SKIP
        >>> token = await store.create_session("alice", ip="203.0.113.9")  # doctest: +SKIP
        >>> (await store.validate(token)).user_id  # doctest: +SKIP
        'alice'

    Args:
        engine: The engine to use (see :func:`authcore.create_engine`).
        ttl: Absolute lifetime of new sessions.
        idle_timeout: Expire sessions unused for this long; ``None`` disables it.
        touch_interval: Refresh ``last_seen_at`` at most this often (shorter than
            ``idle_timeout``).
        token_bytes: Random bytes per token, 16 to 64.
        rotation_grace: How long after a rotation the old token may be rotated
            again (see :meth:`rotate_session`); zero, the default, turns it off.
        max_sessions_per_user: Keep at most this many active sessions per user
            (see :meth:`issue_session`); ``None``, the default, for no cap.
        clock: Zero-argument callable returning aware UTC time; the system clock by default.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl: timedelta = timedelta(days=14),
        idle_timeout: timedelta | None = None,
        touch_interval: timedelta = timedelta(seconds=60),
        token_bytes: int = 32,
        rotation_grace: timedelta = timedelta(0),
        max_sessions_per_user: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"engine must be an AsyncEngine, got {type(engine).__name__}")
        super().__init__(
            ttl=ttl,
            idle_timeout=idle_timeout,
            touch_interval=touch_interval,
            token_bytes=token_bytes,
            rotation_grace=rotation_grace,
            max_sessions_per_user=max_sessions_per_user,
            clock=clock,
        )
        self.engine = engine
        if engine.dialect.driver == "aiosqlite":  # an engine not made by create_engine
            hide_driver_arguments()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"{super().__repr__()[:-1]}, engine={url!r})"

    # -- SQL building blocks -------------------------------------------------

    async def _touch(self, row: Any, now: datetime) -> datetime | None:
        """Refresh ``last_seen_at`` if due; only ever moves it forward, never revives."""
        if not self._needs_touch(row.last_seen_at, now):
            return None
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(t)
                .where(t.c.id == row.id, t.c.revoked_at.is_(None), t.c.last_seen_at < now)
                .values(last_seen_at=now)
            )
        return now

    async def _revoke_where(
        self, condition: ColumnElement[bool], now: datetime, reason: Reason
    ) -> int:
        """Revoke the active sessions matching *condition* in one statement; how many."""
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                update(t)
                .where(condition, self._active(now))
                .values(revoked_at=now, revoke_reason=reason.value)
            )
        return result.rowcount

    # -- the contract ----------------------------------------------------------

    @uncancellable
    async def validate(self, token: str) -> AuthSession:
        digest = digest_of(token)
        now = self._now()
        with storage_errors("validating a session"):
            async with read_connection(self.engine) as conn:
                row = (await conn.execute(BY_DIGEST, {"digest": digest})).first()
            if row is None:
                raise error_for(None)
            status = self._status(row, now)
            if status is Status.ACTIVE:
                return to_session(row, last_seen_at=await self._touch(row, now))
            if status is Status.REUSED:
                async with write_transaction(self.engine) as conn:
                    await self._revoke_family(conn, row.family_id, now)
        raise error_for(status, row)

    @uncancellable
    async def revoke(self, token: str) -> bool:
        try:
            digest = digest_of(token)
        except MalformedTokenError:
            return False
        now = self._now()
        with storage_errors("revoking a session"):
            async with write_transaction(self.engine) as conn:
                revoked = await conn.execute(
                    update(t)
                    .where(t.c.token_hash == digest, self._active(now))
                    .values(revoked_at=now, revoke_reason=Reason.LOGOUT.value)
                )
                if revoked.rowcount == 1:
                    return True
                # A token rotated away (by a refresh racing this logout, say): end
                # the sessions that replaced it, so logging out always logs out.
                rotated = (
                    select(t.c.family_id)
                    .where(t.c.token_hash == digest, t.c.revoke_reason == Reason.ROTATED.value)
                    .scalar_subquery()
                )
                family = await conn.execute(
                    update(t)
                    .where(t.c.family_id == rotated, self._active(now))
                    .values(revoked_at=now, revoke_reason=Reason.LOGOUT.value)
                )
                return family.rowcount > 0

    @uncancellable
    async def revoke_all(
        self,
        user_id: UserId,
        *,
        except_token: str | None = None,
        except_session_id: str | None = None,
    ) -> int:
        uid = normalize_user_id(user_id)
        condition = t.c.user_id == uid
        if except_token is not None:
            condition = and_(condition, t.c.token_hash != digest_of(except_token))
        if except_session_id is not None:
            if not isinstance(except_session_id, str):
                raise TypeError("except_session_id must be a str")
            condition = and_(condition, t.c.id != except_session_id)
        with storage_errors("revoking sessions"):
            return await self._revoke_where(condition, self._now(), Reason.REVOKE_ALL)

    @uncancellable
    async def get_session_by_id(self, session_id: str) -> AuthSession | None:
        sid = check_session_id(session_id)
        if sid is None:
            return None
        now = self._now()
        with storage_errors("reading a session"):
            async with read_connection(self.engine) as conn:
                row = (await conn.execute(_BY_ID, {"sid": sid})).first()
            if row is None or self._status(row, now) is not Status.ACTIVE:
                return None
            return to_session(row, last_seen_at=await self._touch(row, now))

    @uncancellable
    async def list_sessions(self, user_id: UserId) -> list[AuthSession]:
        uid = normalize_user_id(user_id)
        now = self._now()
        query = (
            select(*PUBLIC_COLUMNS)
            .where(t.c.user_id == uid, self._active(now))
            .order_by(t.c.created_at.desc(), t.c.id.desc())
        )
        with storage_errors("listing sessions"):
            async with read_connection(self.engine) as conn:
                rows = (await conn.execute(query)).all()
        return [to_session(row) for row in rows]

    @uncancellable
    async def revoke_session(self, user_id: UserId, session_id: str) -> bool:
        uid = normalize_user_id(user_id)
        sid = check_session_id(session_id)
        if sid is None:
            return False
        now = self._now()
        with storage_errors("revoking a session"):
            async with write_transaction(self.engine) as conn:
                revoked = await conn.execute(
                    update(t)
                    .where(t.c.id == sid, t.c.user_id == uid, self._active(now))
                    .values(revoked_at=now, revoke_reason=Reason.LOGOUT.value)
                )
                if revoked.rowcount == 1:
                    return True
                # Rotated away (a refresh racing a logout by access token): end the
                # sessions that replaced it, as revoke() does for a token.
                rotated = (
                    select(t.c.family_id)
                    .where(
                        t.c.id == sid,
                        t.c.user_id == uid,
                        t.c.revoke_reason == Reason.ROTATED.value,
                    )
                    .scalar_subquery()
                )
                family = await conn.execute(
                    update(t)
                    .where(t.c.family_id == rotated, self._active(now))
                    .values(revoked_at=now, revoke_reason=Reason.LOGOUT.value)
                )
                return family.rowcount > 0
