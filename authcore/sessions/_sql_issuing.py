"""How ``SessionStore`` issues sessions: creation and rotation, taken back if cancelled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authcore.db._engine import write_transaction
from authcore.db._errors import run_to_completion, storage_errors
from authcore.errors import InvalidTokenError
from authcore.sessions._model import (
    IssuedSession,
    NewSession,
    Reason,
    Status,
    decode_data,
    digest_of,
    error_for,
)
from authcore.sessions._sql_joined import SqlJoinedReads
from authcore.sessions._sql_maintenance import PUBLIC_COLUMNS, STATE_COLUMNS
from authcore.sessions._table import sessions_table as t
from authcore.tokens import UserId

__all__ = ["BY_DIGEST", "SqlIssuing"]

#: A session's row, with its state, by token digest.
BY_DIGEST = select(*PUBLIC_COLUMNS, *STATE_COLUMNS).where(t.c.token_hash == bindparam("digest"))
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


class SqlIssuing(SqlJoinedReads):
    """The writes that hand out a token, of :class:`~authcore.SessionStore` (a mixin).

    A create or a rotation whose caller is cancelled leaves no session behind
    whose token nobody holds: it is rolled back before its commit, or taken
    back after it.
    """

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
                row = (await conn.execute(BY_DIGEST, {"digest": digest})).first()
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
