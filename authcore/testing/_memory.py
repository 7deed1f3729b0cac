"""``InMemorySessionStore``: the session contract with no database, for tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authcore._time import Clock
from authcore.errors import MalformedTokenError
from authcore.sessions._base import BaseSessionStore, Progress, notify
from authcore.sessions._model import (
    AuthSession,
    IssuedSession,
    NewSession,
    Reason,
    SessionStats,
    Status,
    check_batch_size,
    check_session_id,
    decode_data,
    digest_of,
    error_for,
    is_purgeable,
    to_session,
)
from authcore.tokens import UserId, normalize_user_id

__all__ = ["InMemorySessionStore"]


@dataclass(slots=True)
class _Record:
    id: str
    token_hash: str
    family_id: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    data: str
    ip: str | None
    user_agent: str | None

    @classmethod
    def from_new(cls, new: NewSession) -> _Record:
        return cls(**new.row())


class InMemorySessionStore(BaseSessionStore):
    """The same methods, defaults, errors and guarantees as ``SessionStore``, in a dict.

    For tests of code that uses a session store: no engine, no schema, no
    disposal. It runs the same rules as the SQL store (both are checked by
    one contract test suite), including rotation families, reuse detection,
    idle timeouts and purge. State lives in this object only; each operation
    completes without yielding to the event loop, so it is atomic.

    Example:
        >>> clock = FakeClock()
        >>> store = InMemorySessionStore(clock=clock, idle_timeout=timedelta(minutes=30))
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
        super().__init__(
            ttl=ttl,
            idle_timeout=idle_timeout,
            touch_interval=touch_interval,
            token_bytes=token_bytes,
            rotation_grace=rotation_grace,
            max_sessions_per_user=max_sessions_per_user,
            clock=clock,
        )
        self._by_digest: dict[str, _Record] = {}
        self._by_id: dict[str, _Record] = {}

    def __len__(self) -> int:
        """How many session rows are held (active, expired and revoked)."""
        return len(self._by_id)

    def _add(self, new: NewSession) -> None:
        record = _Record.from_new(new)
        self._by_digest[record.token_hash] = record
        self._by_id[record.id] = record

    def _active(self, record: _Record, now: datetime) -> bool:
        return self._status(record, now) is Status.ACTIVE

    def _revoke(self, record: _Record, now: datetime, reason: Reason) -> None:
        record.revoked_at, record.revoke_reason = now, reason.value

    def _touch(self, record: _Record, now: datetime) -> None:
        if self._needs_touch(record.last_seen_at, now):
            record.last_seen_at = now

    def _active_in_family(self, family_id: str, now: datetime) -> list[_Record]:
        return [
            r for r in self._by_id.values() if r.family_id == family_id and self._active(r, now)
        ]

    def _revoke_family(self, family_id: str, now: datetime) -> None:
        for record in self._by_id.values():
            if record.family_id == family_id and record.revoked_at is None:
                self._revoke(record, now, Reason.REUSE)

    def _check(self, digest: str, now: datetime) -> _Record:
        record = self._by_digest.get(digest)
        status = None if record is None else self._status(record, now)
        if status is Status.ACTIVE:
            assert record is not None
            return record
        if status is Status.REUSED:
            assert record is not None
            self._revoke_family(record.family_id, now)
        raise error_for(status, record)

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
        self._add(new)
        if self.max_sessions_per_user is not None:
            now = new.created_at
            others = [
                r
                for r in self._by_id.values()
                if r.user_id == new.user_id and r.id != new.id and self._active(r, now)
            ]
            others.sort(key=lambda r: (r.last_seen_at, r.created_at, r.id), reverse=True)
            for record in others[self.max_sessions_per_user - 1 :]:
                self._revoke(record, now, Reason.CAP)
        return new.issued()

    async def validate(self, token: str) -> AuthSession:
        digest = digest_of(token)
        now = self._now()
        record = self._check(digest, now)
        self._touch(record, now)
        return to_session(record)

    async def rotate_session(self, token: str) -> IssuedSession:
        digest = digest_of(token)
        now = self._now()
        record = self._by_digest.get(digest)
        if record is not None and self._status(record, now) is Status.GRACE:
            if not self._active_in_family(record.family_id, now):
                raise error_for(Status.GRACE)
            new = self._successor(record)
            self._add(new)
            return new.issued()
        old = self._check(digest, now)
        new = self._successor(old)
        self._revoke(old, now, Reason.ROTATED)
        self._add(new)
        return new.issued()

    def _successor(self, old: _Record) -> NewSession:
        return self._new_session(
            old.user_id,
            ttl=None,
            data=decode_data(old.data),
            ip=old.ip,
            user_agent=old.user_agent,
            family_id=old.family_id,
        )

    async def revoke(self, token: str) -> bool:
        try:
            record = self._by_digest.get(digest_of(token))
        except MalformedTokenError:
            return False
        now = self._now()
        if record is None:
            return False
        if self._active(record, now):
            self._revoke(record, now, Reason.LOGOUT)
            return True
        return self._end_successors(record, now)

    def _end_successors(self, record: _Record, now: datetime) -> bool:
        """Rotated away (a refresh raced this logout): end what replaced it."""
        if record.revoke_reason != Reason.ROTATED:
            return False
        successors = self._active_in_family(record.family_id, now)
        for successor in successors:
            self._revoke(successor, now, Reason.LOGOUT)
        return bool(successors)

    async def revoke_all(
        self,
        user_id: UserId,
        *,
        except_token: str | None = None,
        except_session_id: str | None = None,
    ) -> int:
        uid = normalize_user_id(user_id)
        now = self._now()
        kept_digest = None if except_token is None else digest_of(except_token)
        if except_session_id is not None and not isinstance(except_session_id, str):
            raise TypeError("except_session_id must be a str")
        count = 0
        for record in self._by_id.values():
            if (
                record.user_id == uid
                and record.token_hash != kept_digest
                and record.id != except_session_id
                and self._active(record, now)
            ):
                self._revoke(record, now, Reason.REVOKE_ALL)
                count += 1
        return count

    async def get_session_by_id(self, session_id: str) -> AuthSession | None:
        sid = check_session_id(session_id)
        record = None if sid is None else self._by_id.get(sid)
        if record is None:
            return None
        now = self._now()
        if not self._active(record, now):
            return None
        self._touch(record, now)
        return to_session(record)

    async def list_sessions(self, user_id: UserId) -> list[AuthSession]:
        uid = normalize_user_id(user_id)
        now = self._now()
        records = [r for r in self._by_id.values() if r.user_id == uid and self._active(r, now)]
        records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [to_session(r) for r in records]

    async def revoke_session(self, user_id: UserId, session_id: str) -> bool:
        uid = normalize_user_id(user_id)
        sid = check_session_id(session_id)
        record = None if sid is None else self._by_id.get(sid)
        now = self._now()
        if record is None or record.user_id != uid:
            return False
        if self._active(record, now):
            self._revoke(record, now, Reason.LOGOUT)
            return True
        return self._end_successors(record, now)

    async def purge_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        batch_size = check_batch_size(batch_size)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable")
        now = self._now()
        doomed = [r for r in self._by_id.values() if is_purgeable(r, now, self.idle_timeout)]
        doomed.sort(key=lambda r: r.id)
        deleted = 0
        while True:  # in batches, as the SQL store does: the last one is short (maybe empty)
            batch, doomed = doomed[:batch_size], doomed[batch_size:]
            for record in batch:
                if self._by_id.pop(record.id, None) is not None:
                    del self._by_digest[record.token_hash]
            deleted += len(batch)
            if progress is not None:
                await notify(progress, deleted)
            if len(batch) < batch_size:
                return deleted

    async def count_purgeable(self) -> int:
        now = self._now()
        return sum(is_purgeable(r, now, self.idle_timeout) for r in self._by_id.values())

    async def stats(self) -> SessionStats:
        now = self._now()
        counts = dict.fromkeys(("active", "expired", "revoked"), 0)
        users = set()
        for record in self._by_id.values():
            if record.revoked_at is not None:
                counts["revoked"] += 1
            elif self._active(record, now):
                counts["active"] += 1
                users.add(record.user_id)
            else:
                counts["expired"] += 1
        return SessionStats(**counts, active_users=len(users))
