"""The SQL store's rules as SQL, and its maintenance calls: purge, counts, stats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, delete, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import run_to_completion, storage_errors, uncancellable
from authcore.sessions._base import BaseSessionStore, Progress, notify
from authcore.sessions._model import Reason, SessionStats, check_batch_size
from authcore.sessions._table import sessions_table as t

__all__ = ["PUBLIC_COLUMNS", "STATE_COLUMNS", "SqlMaintenance"]

#: The columns an ``AuthSession`` is built from.
PUBLIC_COLUMNS = (
    t.c.id,
    t.c.user_id,
    t.c.created_at,
    t.c.last_seen_at,
    t.c.expires_at,
    t.c.data,
    t.c.ip,
    t.c.user_agent,
)
#: The columns a session's status is decided by (beside its times).
STATE_COLUMNS = (t.c.family_id, t.c.revoked_at, t.c.revoke_reason)


class SqlMaintenance(BaseSessionStore):
    """What ``SessionStore`` builds on: the state rules of ``status_of`` in SQL,
    and the maintenance half of the contract."""

    engine: AsyncEngine

    def _active(self, now: datetime) -> ColumnElement[bool]:
        """Rows a token would be accepted for at *now* (``Status.ACTIVE``)."""
        clause = and_(t.c.revoked_at.is_(None), t.c.expires_at > now)
        if self.idle_timeout is not None:
            clause = and_(clause, t.c.last_seen_at > now - self.idle_timeout)
        return clause

    def _purgeable(self, now: datetime) -> ColumnElement[bool]:
        """Rows ``purge_expired`` deletes at *now* (``is_purgeable``)."""
        revoked = and_(
            t.c.revoked_at.is_not(None),
            or_(t.c.revoke_reason.is_(None), t.c.revoke_reason != Reason.ROTATED.value),
        )
        clause = or_(t.c.expires_at <= now, revoked)
        if self.idle_timeout is not None:
            idle = and_(t.c.revoked_at.is_(None), t.c.last_seen_at <= now - self.idle_timeout)
            clause = or_(clause, idle)
        return clause

    async def purge_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        batch_size = check_batch_size(batch_size)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable")
        deleted = 0
        async for count in self._purge_batches(batch_size):
            deleted += count
            if progress is not None:
                await notify(progress, deleted)
        return deleted

    async def _purge_batches(self, batch_size: int) -> AsyncIterator[int]:
        """Purge in batches, yielding how many rows each one deleted.

        Each batch is one transaction that a cancellation cannot split; the
        last batch yielded is smaller than *batch_size* (possibly 0).
        """
        condition = self._purgeable(self._now())
        cursor = ""
        while True:
            with storage_errors("purging sessions"):
                count, cursor = await run_to_completion(
                    self._purge_batch(condition, cursor, batch_size)
                )
            yield count
            if count < batch_size:
                return

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

    @uncancellable
    async def count_purgeable(self) -> int:
        condition = self._purgeable(self._now())
        with storage_errors("counting sessions"):
            async with read_connection(self.engine) as conn:
                query = select(func.count()).select_from(t).where(condition)
                return int((await conn.execute(query)).scalar_one())

    @uncancellable
    async def stats(self) -> SessionStats:
        now = self._now()
        active = self._active(now)
        query = select(
            func.count(case((active, 1))).label("active"),
            func.count(case((and_(t.c.revoked_at.is_(None), ~active), 1))).label("expired"),
            func.count(case((t.c.revoked_at.is_not(None), 1))).label("revoked"),
            func.count(distinct(case((active, t.c.user_id)))).label("active_users"),
        ).select_from(t)
        with storage_errors("counting sessions"):
            async with read_connection(self.engine) as conn:
                row = (await conn.execute(query)).one()
        return SessionStats(**{name: int(value or 0) for name, value in row._mapping.items()})
