"""PostgreSQL under faults, with a real server and no mocks.

Killed backends, an unreachable or silent server, a server stopped and started
again mid-run, statements stuck on a lock, and storms of cancelled tasks.
Each test runs in a database of its own (``postgres_database``); the one that
stops the server has a server of its own, so nothing else notices.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import (
    InvalidTokenError,
    SessionStore,
    StorageError,
    create_engine,
    create_schema,
    dispose_engine,
    generate_token,
    hash_token,
)
from authcore.db._engine import ASYNCPG_COMMAND_TIMEOUT, ASYNCPG_CONNECT_TIMEOUT
from authcore.sessions._table import sessions_table

from .conftest import assert_no_checked_out, require_postgres
from .pgserver import PostgresServer

pytestmark = pytest.mark.postgres

DOES_NOT_HANG = 30.0  # seconds: a generous bound for "finishes", never a timing claim


def _dbname(url: str) -> str:
    name = make_url(url).database
    assert name
    return name


def _backends(server: PostgresServer, url: str) -> list[tuple[int, str, str]]:
    """(pid, state, wait_event_type) of the client backends connected to *url*'s database."""
    out = server.psql(
        "select pid, coalesce(state, ''), coalesce(wait_event_type, '') from pg_stat_activity "
        f"where backend_type = 'client backend' and datname = '{_dbname(url)}' "
        "and pid <> pg_backend_pid()"
    )
    rows = [line.split("|") for line in out.splitlines() if line]
    return [(int(pid), state, wait) for pid, state, wait in rows]


async def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll *condition* (run in a thread: it may call psql) until true; fail after a while."""
    deadline = time.monotonic() + DOES_NOT_HANG
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


async def _row_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(sessions_table)) or 0)


@pytest_asyncio.fixture
async def engine(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database)
    await create_schema(engine)
    try:
        yield engine
    finally:
        assert await dispose_engine(engine)


# -- killed backends ------------------------------------------------------------


async def test_killed_backends_are_replaced_on_the_next_checkout(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    store = SessionStore(engine, touch_interval=timedelta(microseconds=1))
    url = str(engine.url)
    tokens = await asyncio.gather(*(store.create_session("u") for _ in range(20)))
    before = {pid for pid, _, _ in _backends(postgres_server, url)}
    assert before, "the pool should hold connections"
    killed = postgres_server.psql(
        f"select count(pg_terminate_backend(pid)) from pg_stat_activity "
        f"where datname = '{_dbname(url)}' and pid <> pg_backend_pid()"
    )
    assert int(killed) == len(before)
    await _wait_for(lambda: not _backends(postgres_server, url), "the backends to exit")

    # The very next operation succeeds: pre-ping finds the dead connection and replaces it.
    assert (await store.validate(tokens[0])).user_id == "u"
    # And so does a burst that needs many connections at once.
    sessions = await asyncio.gather(*(store.validate(token) for token in tokens))
    assert {s.user_id for s in sessions} == {"u"}
    assert await store.revoke(tokens[1]) is True
    after = {pid for pid, _, _ in _backends(postgres_server, url)}
    assert after
    assert not after & before
    assert_no_checked_out(engine)


async def test_backend_killed_mid_statement_is_a_storage_error(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    store = SessionStore(engine)
    url = str(engine.url)
    token = await store.create_session("u")
    blocker = create_engine(url)
    try:
        async with blocker.begin() as lock:  # holds the row lock until the block ends
            await lock.execute(
                select(sessions_table.c.id)
                .where(sessions_table.c.token_hash == hash_token(token))
                .with_for_update()
            )
            revoking = asyncio.create_task(store.revoke(token))

            def waiting() -> list[int]:
                return [pid for pid, _, wait in _backends(postgres_server, url) if wait == "Lock"]

            await _wait_for(lambda: bool(waiting()), "the revoke to wait on the row lock")
            (victim,) = waiting()
            postgres_server.psql(f"select pg_terminate_backend({victim})")
            with pytest.raises(StorageError) as info:
                await asyncio.wait_for(revoking, DOES_NOT_HANG)
            assert info.value.__cause__ is not None
            assert token not in str(info.value)
    finally:
        assert await dispose_engine(blocker)
    # The killed revoke changed nothing; the next one goes through on a fresh connection.
    assert (await store.validate(token)).user_id == "u"
    assert await store.revoke(token) is True
    assert_no_checked_out(engine)


# -- unreachable and silent servers ----------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there any more: connections are refused


def _store_calls(store: SessionStore) -> list[Callable[[], Awaitable[object]]]:
    token = generate_token("u")
    return [
        lambda: create_schema(store.engine),
        lambda: store.create_session("u"),
        lambda: store.validate(token),
        lambda: store.get_session(token),
        lambda: store.revoke(token),
        lambda: store.list_sessions("u"),
        lambda: store.purge_expired(),
    ]


async def test_unreachable_server_is_a_storage_error() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/authcore")
    store = SessionStore(engine)
    try:
        for call in _store_calls(store):
            started = time.monotonic()
            with pytest.raises(StorageError, match="unreachable") as info:
                await call()
            assert time.monotonic() - started < DOES_NOT_HANG
            assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert_no_checked_out(engine)
    finally:
        assert await dispose_engine(engine)


async def test_silent_server_times_out_as_a_storage_error() -> None:
    # Accepts TCP connections (the kernel does, from the backlog) and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/authcore"
        engine = create_engine(url, connect_args={"timeout": 0.5})
        store = SessionStore(engine)
        try:
            for call in _store_calls(store)[:3]:
                started = time.monotonic()
                with pytest.raises(StorageError, match="did not answer in time") as info:
                    await call()
                assert time.monotonic() - started < 10  # the timeout is 0.5 s
                assert isinstance(info.value.__cause__, TimeoutError)
            assert_no_checked_out(engine)
        finally:
            assert await dispose_engine(engine)


def _connect_params(engine: AsyncEngine) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    @event.listens_for(engine.sync_engine, "do_connect")
    def _record(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.append(dict(cparams))

    return seen


@pytest.mark.parametrize(
    ("query", "connect_args", "expected"),
    [
        ("", {}, (ASYNCPG_CONNECT_TIMEOUT, ASYNCPG_COMMAND_TIMEOUT)),
        ("", {"command_timeout": 3, "timeout": 4}, (4, 3)),
        ("", {"command_timeout": None}, (ASYNCPG_CONNECT_TIMEOUT, None)),
        ("?command_timeout=2.5&timeout=7", {}, (7.0, 2.5)),
        ("?command_timeout=2.5", {"command_timeout": 9}, (ASYNCPG_CONNECT_TIMEOUT, 9)),
    ],
    ids=["defaults", "connect_args", "disabled", "url", "connect_args-over-url"],
)
async def test_asyncpg_timeouts_default_and_can_be_overridden(
    postgres_url: str, query: str, connect_args: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    engine = create_engine(postgres_url + query, connect_args=connect_args)
    seen = _connect_params(engine)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("select 1")) == 1
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw._config.command_timeout == expected[1]  # what asyncpg really uses
    finally:
        assert await dispose_engine(engine)
    assert [(p["timeout"], p["command_timeout"]) for p in seen] == [expected]


def test_asyncpg_timeout_in_the_url_must_be_a_number() -> None:
    with pytest.raises(ValueError, match="command_timeout"):
        create_engine("postgresql+asyncpg://u@localhost/db?command_timeout=soon")


async def test_command_timeout_bounds_a_wait_after_cancellation(
    postgres_database: str, postgres_server: PostgresServer
) -> None:
    url = postgres_database
    engine = create_engine(url, connect_args={"command_timeout": 2})
    blocker = create_engine(url)
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        token = await store.create_session("u")
        async with blocker.begin() as lock:  # a transaction that never lets go of the row
            await lock.execute(
                select(sessions_table.c.id)
                .where(sessions_table.c.token_hash == hash_token(token))
                .with_for_update()
            )
            stuck = asyncio.create_task(store.revoke(token))
            cancelled = asyncio.create_task(store.revoke(token))

            def waiting_on_the_lock() -> int:
                return sum(wait == "Lock" for _, _, wait in _backends(postgres_server, url))

            await _wait_for(lambda: waiting_on_the_lock() == 2, "both revokes to wait")
            # Cancelled while stuck: the operation still runs to its end (its statement
            # times out, its transaction rolls back), and the timeout bounds that wait.
            started = time.monotonic()
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(cancelled, DOES_NOT_HANG)
            assert time.monotonic() - started < 10  # command_timeout is 2 s
            # Not cancelled: a StorageError instead of waiting forever.
            with pytest.raises(StorageError, match="did not answer in time") as info:
                await asyncio.wait_for(stuck, DOES_NOT_HANG)
            assert isinstance(info.value.__cause__, TimeoutError)
            assert waiting_on_the_lock() == 0
        # Neither revoke changed anything, and the connections they used are fine.
        assert (await store.validate(token)).user_id == "u"
        assert await store.revoke(token) is True
        assert_no_checked_out(engine)
        states = {state for _, state, _ in _backends(postgres_server, postgres_database)}
        assert states <= {"idle"}, states
    finally:
        assert await dispose_engine(blocker)
        assert await dispose_engine(engine)


# -- the server goes away and comes back -------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server for this module alone: stopping it disturbs no other test."""
    require_postgres()
    with PostgresServer() as server:
        yield server


async def test_server_stopped_and_started_again(own_server: PostgresServer) -> None:
    url = own_server.create_database("restart")
    engine = create_engine(url)
    try:
        await create_schema(engine)
        store = SessionStore(engine, touch_interval=timedelta(microseconds=1))
        committed: list[str] = list(
            await asyncio.gather(*(store.create_session("u") for _ in range(50)))
        )
        failures: list[StorageError] = []
        running = True

        async def load() -> None:
            # Keeps creating and validating through the outage; anything but a
            # StorageError escapes and fails the test.
            while running:
                try:
                    token = await store.create_session("load")
                    committed.append(token)  # create returned: the row is committed
                    await store.validate(token)
                except StorageError as exc:
                    failures.append(exc)
                    await asyncio.sleep(0.01)  # pace the retries while the server is down

        workers = [asyncio.create_task(load()) for _ in range(4)]
        try:
            before = len(committed)
            await _wait_for(lambda: len(committed) > before + 20, "the load to run")
            await asyncio.to_thread(own_server.stop_server)

            # Down: every kind of operation fails with StorageError, promptly.
            for call in _store_calls(store)[1:]:
                started = time.monotonic()
                with pytest.raises(StorageError) as info:
                    await call()
                assert info.value.__cause__ is not None
                assert time.monotonic() - started < DOES_NOT_HANG
            with pytest.raises(StorageError):
                await store.revoke(committed[0])
            down_failures = len(failures)
            await _wait_for(lambda: len(failures) > down_failures, "the load to fail")
            assert not own_server.running

            await asyncio.to_thread(own_server.start_server)
            # Up again: the very next operation succeeds, on a new connection.
            assert (await store.validate(committed[0])).user_id == "u"
            after = len(committed)
            await _wait_for(lambda: len(committed) > after + 20, "the load to resume")
        finally:
            running = False
            await asyncio.wait_for(asyncio.gather(*workers), DOES_NOT_HANG)

        # Nothing committed was lost, and the revoke attempted while down did not happen.
        assert failures
        assert len(set(committed)) == len(committed)
        for start in range(0, len(committed), 200):
            batch = committed[start : start + 200]
            sessions = await asyncio.gather(*(store.validate(token) for token in batch))
            assert len(sessions) == len(batch)
        assert await _row_count(engine) >= len(committed)
        assert_no_checked_out(engine)
    finally:
        assert await dispose_engine(engine)


# -- cancellation storms -------------------------------------------------------------


async def _storm(store: SessionStore, rng: random.Random, seeds: list[str]) -> list[object]:
    """Hundreds of operations, each cancelled (or timed out) at a random point."""
    ops: list[Callable[[], Awaitable[object]]] = []
    for n in range(300):
        token = seeds[n % len(seeds)]
        user = f"user{n % 20}"
        ops.append(
            rng.choice(
                [
                    lambda: store.create_session("storm", data={"n": 1}),
                    lambda t=token: store.validate(t),  # type: ignore[misc]
                    lambda t=token: store.rotate(t),  # type: ignore[misc]
                    lambda t=token: store.revoke(t),  # type: ignore[misc]
                    lambda u=user: store.revoke_all(u),  # type: ignore[misc]
                    lambda u=user: store.list_sessions(u),  # type: ignore[misc]
                    lambda: store.purge_expired(),
                ]
            )
        )

    async def cancel_later(task: asyncio.Task[object], how: int) -> None:
        if how == 0:  # after a few scheduler ticks: before or while checking out
            for _ in range(rng.randrange(0, 30)):
                await asyncio.sleep(0)
        else:  # after some milliseconds: usually in the middle of network I/O
            await asyncio.sleep(rng.uniform(0, 0.1))
        task.cancel()

    tasks: list[asyncio.Task[object]] = []
    cancellers = []
    for op in ops:
        how = rng.randrange(4)
        if how == 2:  # cancelled by a timeout, as a request deadline would
            task = asyncio.create_task(asyncio.wait_for(op(), rng.uniform(0, 0.1)))
        else:
            task = asyncio.create_task(op())  # type: ignore[arg-type]
            if how < 2:
                cancellers.append(cancel_later(task, how))
            # how == 3: left alone, competing with the cancelled ones for connections
        tasks.append(task)
    await asyncio.wait_for(asyncio.gather(*cancellers), DOES_NOT_HANG)
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DOES_NOT_HANG * 2)


@pytest.mark.parametrize("pool", ["default", "pool_size=1"])
async def test_cancellation_storm(
    postgres_database: str,
    postgres_server: PostgresServer,
    pool: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if pool == "pool_size=1" else {}
    engine = create_engine(postgres_database, **options)
    try:
        await create_schema(engine)
        store = SessionStore(engine, touch_interval=timedelta(microseconds=1))
        seeds = [await store.create_session(f"user{n % 20}") for n in range(40)]
        events: Counter[str] = Counter()
        for name in ("connect", "invalidate", "soft_invalidate"):
            event.listen(engine.sync_engine, name, lambda *_, name=name: events.update([name]))
        with caplog.at_level(logging.WARNING):
            outcomes = await _storm(store, random.Random(f"storm-{pool}"), seeds)

        cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError | TimeoutError)]
        finished = [o for o in outcomes if not isinstance(o, asyncio.CancelledError | TimeoutError)]
        assert len(cancelled) >= 50, "the storm should cancel many operations"
        assert len(finished) >= 50, "and let others finish"
        unexpected = [
            o
            for o in outcomes
            if isinstance(o, BaseException)
            and not isinstance(o, asyncio.CancelledError | TimeoutError | InvalidTokenError)
        ]
        assert unexpected == []
        assert "another operation is in progress" not in caplog.text
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

        # No cancellation cost a connection: none was invalidated, as happens when a
        # driver call is interrupted half-way. (Overflow connections come and go, so
        # only the pool of one has a fixed number of connects: at most one.)
        assert events["invalidate"] == events["soft_invalidate"] == 0
        if pool == "pool_size=1":
            assert events["connect"] <= 1
        # Every connection is back in the pool, and none sits in an open transaction.
        pool_status = engine.sync_engine.pool
        assert pool_status.checkedout() == 0  # type: ignore[attr-defined]
        assert_no_checked_out(engine)
        states = {state for _, state, _ in _backends(postgres_server, postgres_database)}
        assert states <= {"idle"}, states
        if pool == "pool_size=1":
            assert len(_backends(postgres_server, postgres_database)) <= 1

        # The next hundred operations succeed.
        fresh = await asyncio.gather(*(store.create_session("after") for _ in range(50)))
        await asyncio.gather(*(store.validate(token) for token in fresh))
        assert len(await store.list_sessions("after")) == 50
        assert_no_checked_out(engine)
    finally:
        assert await dispose_engine(engine)
