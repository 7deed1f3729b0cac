"""The session and its user in one statement: the read behind every authenticated request.

:meth:`SessionStore.validate_with_user` and
:meth:`SessionStore.session_with_user` read a session joined to its row in
``authcore_users`` with one select (see :mod:`authcore.db._fast` for how it
runs), apply the same rules as :meth:`~SessionStore.validate` and
:meth:`~SessionStore.get_session_by_id` (the throttled touch, the family
revoked on reuse), and hand back the user's public columns alongside.
The user store does not take part: the user's columns are plain values, so
this module knows the users table (it is in the schema), not the user store.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.db._engine import write_transaction
from authcore.db._errors import run_to_completion, storage_errors
from authcore.db._fast import FastSelect
from authcore.sessions._model import (
    AuthSession,
    Status,
    check_session_id,
    digest_of,
    error_for,
    to_session,
)
from authcore.sessions._sql_maintenance import PUBLIC_COLUMNS, STATE_COLUMNS, SqlMaintenance
from authcore.sessions._table import sessions_table as t
from authcore.users._table import users_table as u

__all__ = ["USER_FIELDS", "SqlJoinedReads"]

#: The user's columns read along with the session (the fields of ``authcore.User``).
USER_FIELDS = ("id", "username", "email", "is_active", "is_verified", "created_at", "last_login_at")

_COLUMNS = (
    *PUBLIC_COLUMNS,
    *STATE_COLUMNS,
    u.c.id.label("user_row_id"),  # NULL: the session's user has no row
    *(u.c[name].label(f"user_{name}") for name in USER_FIELDS if name != "id"),
)
_JOINED = t.outerjoin(u, u.c.id == t.c.user_id)
_BY_DIGEST = FastSelect(select(*_COLUMNS).select_from(_JOINED), t.c.token_hash)
_BY_ID = FastSelect(select(*_COLUMNS).select_from(_JOINED), t.c.id)


def _user_of(row: Any) -> dict[str, Any] | None:
    if row.user_row_id is None:
        return None
    values = {name: getattr(row, f"user_{name}") for name in USER_FIELDS if name != "id"}
    return {"id": row.user_row_id, **values}


class SqlJoinedReads(SqlMaintenance):
    """The one-statement reads of :class:`~authcore.SessionStore` (a mixin)."""

    engine: AsyncEngine

    if TYPE_CHECKING:

        async def _touch(self, row: Any, now: datetime) -> datetime | None: ...

        @staticmethod
        async def _revoke_family(conn: Any, family_id: str, now: datetime) -> None: ...

    async def _read(self, query: FastSelect, key: str, action: str) -> Any:
        """The one row *query* finds by *key*, or ``None``; the cheapest way the engine allows."""
        rows = query.try_inline(self.engine, key)
        if rows is None:
            rows = await query.try_batched(self.engine, key, action)
        if rows is None:
            with storage_errors(action):
                rows = await run_to_completion(query.fetch(self.engine, key, action))
        return rows[0] if rows else None

    async def _touched(self, row: Any, now: datetime, action: str) -> datetime | None:
        """``_touch`` when due (a write that runs to completion), else nothing at all."""
        if not self._needs_touch(row.last_seen_at, now):
            return None
        with storage_errors(action):
            return await run_to_completion(self._touch(row, now))

    async def validate_with_user(self, token: str) -> tuple[AuthSession, dict[str, Any] | None]:
        """:meth:`validate` and the session's user, read in one statement.

        Returns:
            The active session, and its user's public columns (those of
            :class:`~authcore.User`; ``None`` when the user has no row).

        Raises:
            InvalidTokenError: as :meth:`validate` (the same subclasses).
            StorageError: the database failed.
        """
        digest = digest_of(token)
        now = self._now()
        action = "validating a session"
        row = await self._read(_BY_DIGEST, digest, action)
        if row is None:
            raise error_for(None)
        status = self._status(row, now)
        if status is Status.ACTIVE:
            touched = await self._touched(row, now, action)
            return to_session(row, last_seen_at=touched), _user_of(row)
        if status is Status.REUSED:
            with storage_errors(action):
                await run_to_completion(self._revoke_reused(row.family_id, now))
        raise error_for(status, row)

    async def _revoke_reused(self, family_id: str, now: datetime) -> None:
        async with write_transaction(self.engine) as conn:
            await self._revoke_family(conn, family_id, now)

    async def session_with_user(
        self, session_id: str
    ) -> tuple[AuthSession, dict[str, Any] | None] | None:
        """:meth:`get_session_by_id` and the session's user, read in one statement.

        Returns:
            ``None`` when no active session has that id; else the session and
            its user's public columns (``None`` when the user has no row).

        Raises:
            StorageError: the database failed.
        """
        sid = check_session_id(session_id)
        if sid is None:
            return None
        now = self._now()
        action = "reading a session"
        row = await self._read(_BY_ID, sid, action)
        if row is None or self._status(row, now) is not Status.ACTIVE:
            return None
        touched = await self._touched(row, now, action)
        return to_session(row, last_seen_at=touched), _user_of(row)
