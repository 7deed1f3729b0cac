"""Timestamps and the expiry boundary, to the microsecond, on every backend.

SQLite stores integer microseconds, PostgreSQL ``timestamptz``, the fake
Python datetimes. Expiry is decided twice over: in Python after a lookup
(``validate``, ``get_session``) and in SQL (``list_sessions``, ``revoke``,
``purge_expired``). Both must put the boundary at the same instant everywhere:
``now == expires_at`` is expired, one microsecond earlier is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from authcore import (
    SessionStore,
    TokenExpiredError,
    create_engine,
    create_schema,
    dispose_engine,
)
from authcore.sessions import BaseSessionStore
from authcore.sessions._table import sessions_table
from authcore.testing import FakeClock

from .conftest import StoreFactory

US = timedelta(microseconds=1)
# Odd microseconds everywhere, so that any rounding (to milliseconds, to float
# seconds) or time-zone slip shows up as a difference.
START = datetime(2031, 7, 4, 12, 34, 56, 789_013, tzinfo=UTC)
TTL = timedelta(days=3, seconds=7, microseconds=999_989)


async def _listed(store: BaseSessionStore, user: str) -> list[str]:
    return [s.id for s in await store.list_sessions(user)]


async def test_absolute_expiry_boundary(make_store: StoreFactory, clock: FakeClock) -> None:
    clock.set(START)
    store = await make_store(ttl=TTL)
    token = await store.create_session("u")
    session = await store.validate(token)
    expires_at = START + TTL
    assert session.expires_at == expires_at

    clock.set(expires_at - US)  # one microsecond before: still valid, for every query
    assert await _listed(store, "u") == [session.id]
    assert await store.purge_expired() == 0
    assert (await store.validate(token)).id == session.id
    assert await store.get_session_by_id(session.id) is not None

    clock.set(expires_at)  # exactly at expires_at: expired, for every query
    assert await _listed(store, "u") == []
    assert await store.get_session(token) is None
    assert await store.get_session_by_id(session.id) is None
    with pytest.raises(TokenExpiredError):
        await store.validate(token)
    assert await store.revoke(token) is False
    assert await store.revoke_all("u") == 0
    assert await store.purge_expired() == 1


async def test_idle_expiry_boundary(make_store: StoreFactory, clock: FakeClock) -> None:
    idle = timedelta(hours=1, microseconds=3)
    clock.set(START)
    store = await make_store(idle_timeout=idle, touch_interval=timedelta(minutes=1))
    kept, dropped = await store.create_session("u"), await store.create_session("u")
    kept_id, dropped_id = (await store.validate(kept)).id, (await store.validate(dropped)).id

    clock.set(START + idle - US)  # one microsecond before the idle limit
    assert sorted(await _listed(store, "u")) == sorted([kept_id, dropped_id])
    assert await store.purge_expired() == 0
    touched = await store.validate(kept)  # activity: kept's idle limit moves on
    assert touched.last_seen_at == START + idle - US

    clock.set(START + idle)  # exactly at dropped's idle limit
    assert await _listed(store, "u") == [kept_id]
    with pytest.raises(TokenExpiredError):
        await store.validate(dropped)
    assert await store.revoke(dropped) is False
    assert await store.purge_expired() == 1
    # The touch was stored to the microsecond: kept's limit is exact too.
    (listed,) = await store.list_sessions("u")
    assert listed.last_seen_at == START + idle - US
    assert listed.created_at == START

    clock.set(touched.last_seen_at + idle - US)
    assert await _listed(store, "u") == [kept_id]
    clock.set(touched.last_seen_at + idle)
    assert await _listed(store, "u") == []
    assert await store.get_session(kept) is None


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2000, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
        START,
        datetime(2999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        # Aware but not UTC: the same instant comes back, in UTC.
        datetime(2031, 3, 30, 2, 30, 0, 500_001, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    ],
)
async def test_timestamps_round_trip_to_the_microsecond(
    make_store: StoreFactory, moment: datetime
) -> None:
    store = await make_store(clock=FakeClock(moment), ttl=timedelta(microseconds=1))
    token = await store.create_session("u")
    session = await store.validate(token)
    for value in (session.created_at, session.last_seen_at):
        assert value == moment
        assert value.tzinfo is UTC
        assert value.utcoffset() == timedelta(0)
    assert session.expires_at == moment + US
    assert session.created_at.replace(tzinfo=None) == moment.astimezone(UTC).replace(tzinfo=None)
    (listed,) = await store.list_sessions("u")
    assert (listed.created_at, listed.expires_at) == (moment, moment + US)


@pytest.mark.postgres
async def test_postgres_session_time_zone_changes_nothing(postgres_database: str) -> None:
    # timestamptz stores an instant; the session's TimeZone only changes how it is shown.
    for zone in ["UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati"]:
        settings = {"server_settings": {"timezone": zone}}
        engine = create_engine(postgres_database, connect_args=settings)
        try:
            await create_schema(engine)
            clock = FakeClock(START)
            store = SessionStore(engine, clock=clock, ttl=TTL)
            token = await store.create_session("u")
            async with engine.connect() as conn:
                assert await conn.scalar(text("show timezone")) == zone
                stored = await conn.scalar(
                    select(text("expires_at::text")).select_from(sessions_table)
                )
            # The server shows it in its zone; the instant is START + TTL all the same.
            shown = datetime.fromisoformat(stored)
            assert shown.utcoffset() == ZoneInfo(zone).utcoffset(START + TTL), zone
            assert shown == START + TTL
            assert (await store.list_sessions("u"))[0].created_at == START
            clock.set(START + TTL - US)
            assert (await store.validate(token)).expires_at == START + TTL
            clock.set(START + TTL)
            with pytest.raises(TokenExpiredError):
                await store.validate(token)
            assert await store.purge_expired() == 1  # the table is empty for the next zone
        finally:
            assert await dispose_engine(engine)
