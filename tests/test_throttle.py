"""``LoginThrottle``: failed logins counted in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import (
    LoginThrottle,
    LoginThrottledError,
    StorageError,
    UserStore,
    create_engine,
    create_schema,
    dispose_engine,
)
from authcore.testing import FakeClock, fast_hasher
from authcore.throttle import login_failures_table

from .conftest import new_engine

BACKENDS = ["sqlite-memory", "sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)]
IP = "203.0.113.9"


@pytest_asyncio.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await new_engine(request.param, request, tmp_path)
    try:
        yield engine
    finally:
        assert await dispose_engine(engine)


@pytest.fixture
def throttle(engine: AsyncEngine, clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(engine, clock=clock)


async def fail(throttle: LoginThrottle, username: str, ip: str | None, times: int) -> None:
    for _ in range(times):
        await throttle.record_failure(username, ip)


async def retry_after(throttle: LoginThrottle, username: str, ip: str | None) -> timedelta:
    with pytest.raises(LoginThrottledError) as caught:
        await throttle.check(username, ip)
    return caught.value.retry_after


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = (
            await conn.execute(select(func.count()).select_from(login_failures_table))
        ).scalar()
    return int(count or 0)


async def test_the_fifth_failure_closes_the_username(
    throttle: LoginThrottle, clock: FakeClock
) -> None:
    assert (throttle.max_failures, throttle.window) == (5, timedelta(minutes=15))
    for _ in range(4):
        await throttle.record_failure("alice", IP)
        clock.advance(minutes=1)
        await throttle.check("alice", IP)
    await throttle.record_failure("alice", IP)  # five, the first 4 minutes ago
    assert await retry_after(throttle, "alice", IP) == timedelta(minutes=11)
    assert await retry_after(throttle, "alice", None) == timedelta(minutes=11)
    assert await retry_after(throttle, "alice", "198.51.100.1") == timedelta(minutes=11)
    await throttle.check("bob", IP)  # other usernames are not affected
    clock.advance(minutes=11, microseconds=-1)
    assert await retry_after(throttle, "alice", IP) == timedelta(microseconds=1)
    clock.advance(microseconds=1)  # the oldest failure has left the window
    await throttle.check("alice", IP)
    await throttle.record_failure("alice", IP)  # five again, the oldest 14 minutes ago
    assert await retry_after(throttle, "alice", IP) == timedelta(minutes=1)


async def test_retry_after_counts_every_failure_past_the_limit(
    throttle: LoginThrottle, clock: FakeClock
) -> None:
    for _ in range(7):  # e.g. concurrent attempts that all passed the check
        await throttle.record_failure("alice", None)
        clock.advance(minutes=1)
    # failures at t0..t6, now t7: four must leave, so the third (t2) decides
    assert await retry_after(throttle, "alice", None) == timedelta(minutes=15 + 2 - 7)


async def test_usernames_are_normalised_and_unknown_ones_count_alike(
    engine: AsyncEngine, throttle: LoginThrottle
) -> None:
    await UserStore(engine, hasher=fast_hasher()).create_user("alice", "a long passphrase")
    for name in ("Alice", "ALICE", " alice ", "\uff41\uff4c\uff49\uff43\uff45", "alice"):
        await throttle.record_failure(name, None)
    await fail(throttle, "nobody", None, 5)
    known = await retry_after(throttle, "aLiCe", None)
    unknown = await retry_after(throttle, "NOBODY", None)
    assert known == unknown
    assert str(await _error(throttle, "alice")) == str(await _error(throttle, "nobody"))
    for odd in ("", "x" * 1000, "nul\x00"):  # names no account could have: counted too
        await fail(throttle, odd, None, 5)
        await retry_after(throttle, odd, None)


async def _error(throttle: LoginThrottle, username: str) -> LoginThrottledError:
    with pytest.raises(LoginThrottledError) as caught:
        await throttle.check(username, None)
    assert username not in str(caught.value) or not username
    return caught.value


async def test_the_ip_limit(engine: AsyncEngine, clock: FakeClock) -> None:
    throttle = LoginThrottle(engine, max_failures_per_ip=10, clock=clock)
    for n in range(10):
        await throttle.record_failure(f"user{n}", IP)
    assert await retry_after(throttle, "someone-else", IP) == timedelta(minutes=15)
    await throttle.check("someone-else", "198.51.100.1")
    await throttle.check("someone-else", None)
    await throttle.record_success("user9", IP)  # a success does not reopen the address
    await retry_after(throttle, "user9", IP)


async def test_success_clears_the_usernames_failures(throttle: LoginThrottle) -> None:
    await fail(throttle, "alice", IP, 5)
    await fail(throttle, "bob", IP, 5)
    await throttle.record_success("ALICE", "198.51.100.1")
    await throttle.check("alice", IP)
    await retry_after(throttle, "bob", IP)


async def test_old_failures_are_deleted(
    engine: AsyncEngine, throttle: LoginThrottle, clock: FakeClock
) -> None:
    await fail(throttle, "alice", IP, 3)
    await fail(throttle, "bob", None, 2)
    assert await rows(engine) == 5
    clock.advance(minutes=15)
    await throttle.record_failure("carol", None)
    assert await rows(engine) == 1


async def test_nothing_but_a_digest_of_the_username_is_stored(
    engine: AsyncEngine, throttle: LoginThrottle
) -> None:
    await throttle.record_failure("Alice", IP)
    async with engine.connect() as conn:
        row = (await conn.execute(select(login_failures_table))).one()
    assert row.username_key == hashlib.sha256(b"alice").hexdigest()
    assert row.ip == IP
    assert "alice" not in repr(tuple(row)).lower()


async def test_arguments_are_checked(engine: AsyncEngine, throttle: LoginThrottle) -> None:
    for options, error in (
        ({"max_failures": 0}, ValueError),
        ({"max_failures_per_ip": -1}, ValueError),
        ({"max_failures": 5.0}, TypeError),
        ({"max_failures": True}, TypeError),
        ({"window": timedelta(0)}, ValueError),
        ({"window": 900}, TypeError),
        ({"clock": "now"}, TypeError),
    ):
        with pytest.raises(error):
            LoginThrottle(engine, **options)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LoginThrottle("sqlite+aiosqlite://")  # type: ignore[arg-type]
    for method in (throttle.check, throttle.record_failure, throttle.record_success):
        with pytest.raises(TypeError):
            await method(None, IP)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await method("alice", 7)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ip"):
            await method("alice", "1" * 65)
    assert await rows(engine) == 0
    assert repr(throttle) == (
        "LoginThrottle(max_failures=5, window=datetime.timedelta(seconds=900), "
        "max_failures_per_ip=100)"
    )


def test_the_error_says_when_to_retry() -> None:
    error = LoginThrottledError(timedelta(seconds=61, microseconds=1))
    assert error.retry_after == timedelta(seconds=61, microseconds=1)
    assert str(error) == "too many failed logins; try again in 62 s"
    assert str(LoginThrottledError(timedelta(microseconds=1))).endswith("in 1 s")


async def test_two_processes_share_the_counts_on_one_sqlite_file(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Two engines on one file, as two worker processes have; and a restart."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    first, second = create_engine(url), create_engine(url)
    try:
        await create_schema(first)
        a, b = LoginThrottle(first, clock=clock), LoginThrottle(second, clock=clock)
        await fail(a, "alice", IP, 3)
        await fail(b, "ALICE", IP, 2)
        assert await retry_after(a, "alice", IP) == await retry_after(b, "alice", IP)
        await b.record_success("alice", IP)
        await a.check("alice", IP)
        await fail(a, "bob", IP, 5)
    finally:
        assert await dispose_engine(first)
        assert await dispose_engine(second)
    restarted = create_engine(url)
    try:
        await retry_after(LoginThrottle(restarted, clock=clock), "bob", None)
    finally:
        assert await dispose_engine(restarted)


@pytest.mark.postgres
async def test_two_processes_share_the_counts_on_postgres(
    postgres_database: str, clock: FakeClock
) -> None:
    first, second = create_engine(postgres_database), create_engine(postgres_database)
    try:
        await create_schema(first)
        a, b = LoginThrottle(first, clock=clock), LoginThrottle(second, clock=clock)
        await fail(a, "alice", IP, 3)
        await fail(b, "alice", IP, 2)
        await retry_after(a, "alice", None)
        await b.record_success("alice", None)
        await a.check("alice", None)
    finally:
        assert await dispose_engine(first)
        assert await dispose_engine(second)


async def test_a_missing_table_is_a_storage_error() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    throttle = LoginThrottle(engine)
    try:
        for call in (throttle.check, throttle.record_failure, throttle.record_success):
            with pytest.raises(StorageError, match="authcore_login_failures"):
                await call("alice", IP)
    finally:
        assert await dispose_engine(engine)
