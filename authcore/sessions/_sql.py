"""``SessionStore``: sessions persisted through async SQLAlchemy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authcore._time import Clock
from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import run_to_completion, storage_errors, uncancellable
from authcore.db._logs import hide_driver_arguments
from authcore.errors import InvalidTokenError, MalformedTokenError
from authcore.sessions._model import (
    AuthSession,
    IssuedSession,
    NewSession,
    Reason,
    Status,
    check_session_id,
    decode_data,
    digest_of,
    error_for,
    to_session,
)
from authcore.sessions._sql_joined import SqlJoinedReads
from authcore.sessions._sql_maintenance import PUBLIC_COLUMNS, STATE_COLUMNS
from authcore.sessions._table import sessions_table as t
from authcore.tokens import UserId, normalize_user_id

__all__ = ["SessionStore"]


_BY_DIGEST = select(*PUBLIC_COLUMNS, *STATE_COLUMNS).where(t.c.token_hash == bindparam("digest"))
_BY_ID = select(*PUBLIC_COLUMNS, *STATE_COLUMNS).where(t.c.id == bindparam("sid"))
# Built once: constructing ``insert(t).values(row)`` per call cost more than the
# INSERT itself on SQLite (a bind parameter object per column, every time).
_INSERT = insert(t)


@dataclass(frozen=True, slots=True)
class _Issued:
    """A committed create or rotation, with what it takes to undo it."""

    new: NewSession
    at: datetime | None = None  # when the sessions below were revoked
    rotated: str | None = None  # the id of the session it replaced
    capped: tuple[str, ...] = ()  # the ids it revoked to stay within the cap

    def issued(self) -> IssuedSession:
        return self.new.issued()


class SessionStore(SqlJoinedReads):
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

    def _successor(self, old: Any) -> NewSession:
        """The session that replaces *old* (a row) in its rotation family."""
        return self._new_session(
            old.user_id,
            ttl=None,
            data=decode_data(old.data),
            ip=old.ip,
            user_agent=old.user_agent,
            family_id=old.family_id,
        )

    async def _family_active(self, conn: AsyncConnection, row: Any, now: datetime) -> bool:
        """Whether *row*'s rotation family still has an active session."""
        query = select(t.c.id).where(t.c.family_id == row.family_id, self._active(now)).limit(1)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # a concurrent logout waits, then sees the new one
        return (await conn.execute(query)).first() is not None

    async def _take_back(self, done: _Issued) -> None:
        """Undo a committed create or rotation whose caller was cancelled after all.

        The new session is deleted (nobody holds its token); for a rotation,
        the old session is made active again, unless the new one had been
        revoked meanwhile (a reuse revoked the family: the old one stays revoked).
        """
        with storage_errors("taking back a session"):
            async with write_transaction(self.engine) as conn:
                gone = await conn.execute(
                    delete(t).where(t.c.id == done.new.id, t.c.revoked_at.is_(None))
                )
                if done.rotated is not None and gone.rowcount == 1:
                    await self._unrevoke(conn, (done.rotated,), Reason.ROTATED, done.at)
                if done.capped:
                    await self._unrevoke(conn, done.capped, Reason.CAP, done.at)

    @staticmethod
    async def _unrevoke(
        conn: AsyncConnection, ids: tuple[str, ...], reason: Reason, at: datetime | None
    ) -> None:
        """Make active again the sessions *ids* revoked for *reason* at *at*, and only those."""
        await conn.execute(
            update(t)
            .where(t.c.id.in_(ids), t.c.revoke_reason == reason.value, t.c.revoked_at == at)
            .values(revoked_at=None, revoke_reason=None)
        )

    @staticmethod
    async def _revoke_family(conn: AsyncConnection, family_id: str, now: datetime) -> None:
        await conn.execute(
            update(t)
            .where(t.c.family_id == family_id, t.c.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=Reason.REUSE.value)
        )

    # -- the contract ----------------------------------------------------------

    async def issue_session(
        self,
        user_id: UserId,
        *,
        ttl: timedelta | None = None,
        data: Mapping[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> IssuedSession:
        new = self._new_session(user_id, ttl=ttl, data=data, ip=ip, user_agent=user_agent)
        # A cancelled caller never receives the token: the insert is rolled back
        # before its COMMIT, or taken back when the cancellation came later.
        return (await run_to_completion(self._insert(new), undo=self._take_back)).issued()

    async def _insert(self, new: NewSession) -> _Issued:
        with storage_errors("creating a session"):
            async with write_transaction(self.engine, undo_if_cancelled=True) as conn:
                if self.max_sessions_per_user is None:
                    await conn.execute(_INSERT, new.row())
                    return _Issued(new)
                capped = await self._insert_within_cap(conn, new, self.max_sessions_per_user)
        return _Issued(new, at=new.created_at, capped=capped)

    async def _insert_within_cap(
        self, conn: AsyncConnection, new: NewSession, cap: int
    ) -> tuple[str, ...]:
        """Insert *new* and revoke its user's least recently seen active sessions
        beyond *cap*, in the caller's transaction; return the revoked ids."""
        if conn.dialect.name == "postgresql":
            # Serialise the creates of one user: READ COMMITTED would let two
            # concurrent ones each keep cap - 1 others. (SQLite has one writer.)
            await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(new.user_id))))
        await conn.execute(_INSERT, new.row())  # on SQLite this takes the write lock
        now = new.created_at
        excess = (
            select(t.c.id)
            .where(t.c.user_id == new.user_id, t.c.id != new.id, self._active(now))
            .order_by(t.c.last_seen_at.desc(), t.c.created_at.desc(), t.c.id.desc())
            .offset(cap - 1)
        )
        ids = tuple((await conn.execute(excess)).scalars().all())
        if ids:
            await conn.execute(
                update(t)
                .where(t.c.id.in_(ids))
                .values(revoked_at=now, revoke_reason=Reason.CAP.value)
            )
        return ids

    @uncancellable
    async def validate(self, token: str) -> AuthSession:
        digest = digest_of(token)
        now = self._now()
        with storage_errors("validating a session"):
            async with read_connection(self.engine) as conn:
                row = (await conn.execute(_BY_DIGEST, {"digest": digest})).first()
            if row is None:
                raise error_for(None)
            status = self._status(row, now)
            if status is Status.ACTIVE:
                return to_session(row, last_seen_at=await self._touch(row, now))
            if status is Status.REUSED:
                async with write_transaction(self.engine) as conn:
                    await self._revoke_family(conn, row.family_id, now)
        raise error_for(status)

    async def rotate_session(self, token: str) -> IssuedSession:
        digest = digest_of(token)
        # As for a create: a cancelled caller keeps the old token, and no successor.
        return (await run_to_completion(self._rotate(digest), undo=self._take_back)).issued()

    async def _rotate(self, digest: str) -> _Issued:
        new: NewSession | None = None
        with storage_errors("rotating a session"):
            # Rolled back if the caller is cancelled before the commit, but only
            # when it made a successor: a reuse found on the way is still acted on.
            async with write_transaction(
                self.engine, undo_if_cancelled=lambda: new is not None
            ) as conn:
                now = self._now()
                # Claim the old token atomically: only one rotation of it can win.
                claimed = (
                    await conn.execute(
                        update(t)
                        .where(t.c.token_hash == digest, self._active(now))
                        .values(revoked_at=now, revoke_reason=Reason.ROTATED.value)
                        .returning(*PUBLIC_COLUMNS, t.c.family_id)
                    )
                ).first()
                if claimed is not None:
                    new = self._successor(claimed)
                    await conn.execute(_INSERT, new.row())
                    return _Issued(new, at=now, rotated=claimed.id)
                row = (await conn.execute(_BY_DIGEST, {"digest": digest})).first()
                status = None if row is None else self._status(row, now)
                if status is Status.GRACE and await self._family_active(conn, row, now):
                    # Rotated away moments ago (a lost response, two tabs): a
                    # further successor in the same family; the others stay.
                    new = self._successor(row)
                    await conn.execute(_INSERT, new.row())
                    return _Issued(new)
                if status is Status.REUSED:
                    await self._revoke_family(conn, row.family_id, now)  # type: ignore[union-attr]
                elif status is Status.ACTIVE:  # pragma: no cover - claimed above
                    raise InvalidTokenError("session changed during rotation; try again")
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
