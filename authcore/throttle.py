"""``LoginThrottle``: failed logins counted in the database, per username and per client IP.

The counts live in the ``authcore_login_failures`` table, so every worker
process and every restart sees the same numbers. Usernames are keyed like the
user store keys them (NFKC, case-folded) and stored only as a SHA-256, so
known and unknown usernames are counted alike and the table names no account.
The check costs one or two indexed reads and no password hashing: call it
before :meth:`~authcore.UserStore.authenticate`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Column, ColumnElement, Index, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock, positive_timedelta, read_clock, system_clock
from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import storage_errors, uncancellable
from authcore.db._schema import UTCDateTime, metadata
from authcore.errors import LoginThrottledError
from authcore.users._model import name_key

__all__ = ["LoginThrottle"]

MAX_IP_LENGTH: Final = 64
_CLEARED: Final = ""  # the username_key of a failure that counts for its IP only

login_failures_table = Table(
    "authcore_login_failures",
    metadata,
    Column("id", String(32), primary_key=True),
    # SHA-256 of the normalised username (known or not): no account names at rest.
    Column("username_key", String(64), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("failed_at", UTCDateTime(), nullable=False, index=True),
    Index("ix_authcore_login_failures_username_key_failed_at", "username_key", "failed_at"),
    Index("ix_authcore_login_failures_ip_failed_at", "ip", "failed_at"),
)
f = login_failures_table  # the short name the queries below use


def _username_key(username: object) -> str:
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, got {type(username).__name__}")
    key = name_key(username.strip())
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _check_ip(ip: object) -> str | None:
    if ip is None:
        return None
    if not isinstance(ip, str):
        raise TypeError(f"ip must be a str or None, got {type(ip).__name__}")
    if len(ip) > MAX_IP_LENGTH:
        raise ValueError(f"ip must be at most {MAX_IP_LENGTH} characters")
    return ip


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


class LoginThrottle:
    """Refuses logins after too many recent failures for a username or an IP.

    A sliding window: a failure counts for *window* after it happened. Once
    a username has *max_failures* counted failures (or an IP
    *max_failures_per_ip*), :meth:`check` raises
    :class:`~authcore.errors.LoginThrottledError` until enough of them have
    left the window. The state is in the database (the
    ``authcore_login_failures`` table, created by
    :func:`~authcore.create_schema`), so it holds across processes and
    restarts; old rows are deleted as new failures are recorded.

    Typical use, before any password hashing::

        await throttle.check(username, ip)          # raises LoginThrottledError
        user = await users.authenticate(username, password)
        if user is None:
            await throttle.record_failure(username, ip)
        else:
            await throttle.record_success(username, ip)

    Args:
        engine: The engine to use (see :func:`authcore.create_engine`).
        max_failures: Failures of one username within *window* that close it.
        window: How long a failure counts.
        max_failures_per_ip: Failures from one IP (any usernames) within *window*
            that close it.
        clock: Zero-argument callable returning aware UTC time; the system clock by default.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is not positive.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        max_failures_per_ip: int = 100,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"engine must be an AsyncEngine, got {type(engine).__name__}")
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning a datetime")
        self.engine = engine
        self.max_failures = _positive_int(max_failures, "max_failures")
        self.max_failures_per_ip = _positive_int(max_failures_per_ip, "max_failures_per_ip")
        positive_timedelta(window, name="window")
        self.window = window
        self._clock: Clock = clock or system_clock

    def __repr__(self) -> str:
        return (
            f"LoginThrottle(max_failures={self.max_failures}, window={self.window!r}, "
            f"max_failures_per_ip={self.max_failures_per_ip})"
        )

    @uncancellable
    async def _nth_latest(
        self, where: ColumnElement[bool], since: datetime, n: int
    ) -> datetime | None:
        """The *n*-th most recent failure after *since*, or ``None`` if fewer counted."""
        query = (
            select(f.c.failed_at)
            .where(where, f.c.failed_at > since)
            .order_by(f.c.failed_at.desc())
            .offset(n - 1)
            .limit(1)
        )
        with storage_errors("checking the login throttle"):
            async with read_connection(self.engine) as conn:
                value: datetime | None = (await conn.execute(query)).scalar()
        return value

    async def check(self, username: str, ip: str | None) -> None:
        """Raise :class:`~authcore.errors.LoginThrottledError` if a login must not be tried now.

        Its ``retry_after`` says when enough counted failures will have left
        the window (for the username or the IP, whichever is later). The same
        for a username that exists and one that does not.

        Raises:
            LoginThrottledError: too many recent failures.
            TypeError, ValueError: *username* is not a ``str``, *ip* neither a
                ``str`` (at most 64 characters) nor ``None``.
            StorageError: the database failed.
        """
        key, address = _username_key(username), _check_ip(ip)
        now = read_clock(self._clock)
        since = now - self.window
        blocking = [await self._nth_latest(f.c.username_key == key, since, self.max_failures)]
        if address is not None:
            blocking.append(
                await self._nth_latest(f.c.ip == address, since, self.max_failures_per_ip)
            )
        until = max((moment for moment in blocking if moment is not None), default=None)
        if until is not None:
            raise LoginThrottledError(until + self.window - now)

    @uncancellable
    async def record_failure(self, username: str, ip: str | None) -> None:
        """Count a failed login for *username* and *ip* (now).

        Also deletes failures older than the window, whoever they were for.

        Raises:
            TypeError, ValueError: as :meth:`check`.
            StorageError: the database failed.
        """
        key, address = _username_key(username), _check_ip(ip)
        now = read_clock(self._clock)
        with storage_errors("recording a failed login"):
            async with write_transaction(self.engine) as conn:
                await conn.execute(delete(f).where(f.c.failed_at <= now - self.window))
                await conn.execute(
                    insert(f).values(
                        id=uuid.uuid4().hex, username_key=key, ip=address, failed_at=now
                    )
                )

    @uncancellable
    async def record_success(self, username: str, ip: str | None) -> None:
        """Forget the failures of *username* after a successful login.

        The failures still count for their IP addresses: a success for one
        account says nothing about the other usernames tried from there.

        Raises:
            TypeError, ValueError: as :meth:`check`.
            StorageError: the database failed.
        """
        key = _username_key(username)
        _check_ip(ip)
        mine = f.c.username_key == key
        with storage_errors("clearing failed logins"):
            async with write_transaction(self.engine) as conn:
                await conn.execute(delete(f).where(mine, f.c.ip.is_(None)))
                # Still counted for their address, no longer for the username.
                await conn.execute(update(f).where(mine).values(username_key=_CLEARED))
