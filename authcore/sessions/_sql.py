"""``SessionStore``: sessions persisted through async SQLAlchemy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authcore._time import Clock
from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import run_to_completion, storage_errors, uncancellable
from authcore.db._schema import sessions_table as t
from authcore.errors import InvalidTokenError, MalformedTokenError
from authcore.sessions._base import BaseSessionStore
from authcore.sessions._model import (
    AuthSession,
    IssuedSession,
    Reason,
    Status,
    check_session_id,
    decode_data,
    digest_of,
    error_for,
    to_session,
)
from authcore.tokens import UserId, normalize_user_id

__all__ = ["SessionStore"]

PURGE_BATCH = 1000

_PUBLIC_COLUMNS = (
    t.c.id,
    t.c.user_id,
    t.c.created_at,
    t.c.last_seen_at,
    t.c.expires_at,
    t.c.data,
    t.c.ip,
    t.c.user_agent,
)
_STATE_COLUMNS = (t.c.family_id, t.c.revoked_at, t.c.revoke_reason)
_BY_DIGEST = select(*_PUBLIC_COLUMNS, *_STATE_COLUMNS).where(t.c.token_hash == bindparam("digest"))
_BY_ID = select(*_PUBLIC_COLUMNS, *_STATE_COLUMNS).where(t.c.id == bindparam("sid"))
# Built once: constructing ``insert(t).values(row)`` per call cost more than the
# INSERT itself on SQLite (a bind parameter object per column, every time).
_INSERT = insert(t)


class SessionStore(BaseSessionStore):
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
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"engine must be an AsyncEngine, got {type(engine).__name__}")
        super().__init__(
            ttl=ttl,
            idle_timeout=idle_timeout,
            touch_interval=touch_interval,
            token_bytes=token_bytes,
            clock=clock,
        )
        self.engine = engine

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"{super().__repr__()[:-1]}, engine={url!r})"

    # -- SQL building blocks -------------------------------------------------

    def _active(self, now: datetime) -> ColumnElement[bool]:
        clause = and_(t.c.revoked_at.is_(None), t.c.expires_at > now)
        if self.idle_timeout is not None:
            clause = and_(clause, t.c.last_seen_at > now - self.idle_timeout)
        return clause

    def _purgeable(self, now: datetime) -> ColumnElement[bool]:
        revoked = and_(
            t.c.revoked_at.is_not(None),
            or_(t.c.revoke_reason.is_(None), t.c.revoke_reason != Reason.ROTATED.value),
        )
        clause = or_(t.c.expires_at <= now, revoked)
        if self.idle_timeout is not None:
            idle = and_(t.c.revoked_at.is_(None), t.c.last_seen_at <= now - self.idle_timeout)
            clause = or_(clause, idle)
        return clause

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

    @staticmethod
    async def _revoke_family(conn: AsyncConnection, family_id: str, now: datetime) -> None:
        await conn.execute(
            update(t)
            .where(t.c.family_id == family_id, t.c.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=Reason.REUSE.value)
        )

    # -- the contract ----------------------------------------------------------

    @uncancellable
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
        with storage_errors("creating a session"):
            async with write_transaction(self.engine) as conn:
                await conn.execute(_INSERT, new.row())
        return new.issued()

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

    @uncancellable
    async def rotate_session(self, token: str) -> IssuedSession:
        digest = digest_of(token)
        status: Status | None = Status.ACTIVE
        with storage_errors("rotating a session"):
            async with write_transaction(self.engine) as conn:
                now = self._now()
                # Claim the old token atomically: only one rotation of it can win.
                claimed = (
                    await conn.execute(
                        update(t)
                        .where(t.c.token_hash == digest, self._active(now))
                        .values(revoked_at=now, revoke_reason=Reason.ROTATED.value)
                        .returning(*_PUBLIC_COLUMNS, t.c.family_id)
                    )
                ).first()
                if claimed is not None:
                    new = self._new_session(
                        claimed.user_id,
                        ttl=None,
                        data=decode_data(claimed.data),
                        ip=claimed.ip,
                        user_agent=claimed.user_agent,
                        family_id=claimed.family_id,
                    )
                    await conn.execute(_INSERT, new.row())
                    return new.issued()
                row = (await conn.execute(_BY_DIGEST, {"digest": digest})).first()
                status = None if row is None else self._status(row, now)
                if status is Status.REUSED:
                    await self._revoke_family(conn, row.family_id, now)  # type: ignore[union-attr]
                elif status is Status.ACTIVE:  # pragma: no cover - claimed above
                    raise InvalidTokenError("session changed during rotation; try again")
        raise error_for(status)

    @uncancellable
    async def revoke(self, token: str) -> bool:
        try:
            digest = digest_of(token)
        except MalformedTokenError:
            return False
        with storage_errors("revoking a session"):
            return (
                await self._revoke_where(t.c.token_hash == digest, self._now(), Reason.LOGOUT) == 1
            )

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
            select(*_PUBLIC_COLUMNS)
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
        with storage_errors("revoking a session"):
            condition = and_(t.c.id == sid, t.c.user_id == uid)
            return await self._revoke_where(condition, self._now(), Reason.LOGOUT) == 1

    @uncancellable
    async def purge_expired(self) -> int:
        return sum([count async for count in self._purge_batches()])

    # -- maintenance helpers (the command line's purge and stats) ------------------

    async def _purge_batch(
        self, condition: ColumnElement[bool], cursor: str, batch_size: int
    ) -> tuple[int, str]:
        """Delete up to *batch_size* purgeable rows with ids after *cursor*, in one
        transaction; return how many and the new cursor."""
        async with write_transaction(self.engine) as conn:
            ids = (
                (
                    await conn.execute(
                        select(t.c.id)
                        .where(t.c.id > cursor, condition)
                        .order_by(t.c.id)
                        .limit(batch_size)
                    )
                )
                .scalars()
                .all()
            )
            if ids:
                await conn.execute(delete(t).where(t.c.id.in_(ids)))
        return len(ids), (ids[-1] if ids else cursor)

    async def _purge_batches(
        self, *, now: datetime | None = None, batch_size: int = PURGE_BATCH
    ) -> AsyncIterator[int]:
        """Purge as :meth:`purge_expired` does, yielding how many rows each batch deleted.

        Each batch is one transaction that a cancellation cannot split; the
        last batch yielded is smaller than *batch_size* (possibly 0).
        """
        condition = self._purgeable(self._now() if now is None else now)
        cursor = ""
        while True:
            with storage_errors("purging sessions"):
                count, cursor = await run_to_completion(
                    self._purge_batch(condition, cursor, batch_size)
                )
            yield count
            if count < batch_size:
                return

    @uncancellable
    async def _count_purgeable(self, now: datetime | None = None) -> int:
        """How many rows :meth:`purge_expired` would delete at *now* (default: now)."""
        condition = self._purgeable(self._now() if now is None else now)
        with storage_errors("counting sessions"):
            async with read_connection(self.engine) as conn:
                return int(
                    (
                        await conn.execute(select(func.count()).select_from(t).where(condition))
                    ).scalar_one()
                )

    @uncancellable
    async def _stats(self, now: datetime | None = None) -> dict[str, int]:
        """Counts of stored sessions by state at *now*, in one statement.

        ``active`` + ``expired`` + ``revoked`` == ``total``: a revoked row counts
        as revoked even once expired (revocation wins, as in ``validate``);
        ``purgeable`` is what :meth:`purge_expired` would delete.
        """
        now = self._now() if now is None else now
        active = self._active(now)
        revoked = t.c.revoked_at.is_not(None)
        query = select(
            func.count().label("total"),
            func.count(case((active, 1))).label("active"),
            func.count(case((and_(t.c.revoked_at.is_(None), ~active), 1))).label("expired"),
            func.count(case((revoked, 1))).label("revoked"),
            func.count(case((self._purgeable(now), 1))).label("purgeable"),
        ).select_from(t)
        with storage_errors("counting sessions"):
            async with read_connection(self.engine) as conn:
                row = (await conn.execute(query)).one()
        return {name: int(value or 0) for name, value in row._mapping.items()}
