"""The hot read's dedicated asyncpg connection, against a real PostgreSQL.

Batching (exact statement counts), revocation seen on the next lookup, a
killed backend replaced without an error, a stopped server, a statement
timing out, cancellation storms, and disposal from the same loop, another
loop or after the loop has closed (no leaked connection, no warning).
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authcore import (
    InvalidTokenError,
    SessionStore,
    StorageError,
    create_engine,
    create_schema,
    dispose_engine,
)
from authcore.db import _pgread

from .conftest import assert_no_checked_out, require_postgres
from .pgserver import PostgresServer

pytestmark = pytest.mark.postgres

DOES_NOT_HANG = 30.0  # seconds: a generous bound for "finishes", never a timing claim


class Statements:
    """The statements every asyncpg connection runs (the pool's and the hot read's)."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def reads(self) -> list[str]:
        return [q for q in self.queries if "JOIN authcore_users" in q]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    seen = Statements()
    connect = asyncpg.connect

    async def logged(*args: Any, **kwargs: Any) -> Any:
        connection = await connect(*args, **kwargs)
        connection.add_query_logger(lambda record: seen.queries.append(record.query))
        return connection

    monkeypatch.setattr(asyncpg, "connect", logged)
    return seen


@pytest_asyncio.fixture
async def engine(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database)
    await create_schema(engine)  # a pooled connection: the hot read knows how to connect
    try:
        yield engine
    finally:
        assert await dispose_engine(engine)


def _dbname(engine: AsyncEngine) -> str:
    name = make_url(str(engine.url)).database
    assert name
    return name


def backends(server: PostgresServer, engine: AsyncEngine) -> int:
    out = server.psql(
        "select count(*) from pg_stat_activity where backend_type = 'client backend' "
        f"and datname = '{_dbname(engine)}' and pid <> pg_backend_pid()"
    )
    return int(out)


def dedicated(engine: AsyncEngine) -> Any:
    """The running loop's dedicated connection of *engine* (None: not open)."""
    reader = _pgread.batched_reader(engine)
    assert reader is not None
    return reader.connection


async def test_lookups_waiting_together_are_one_statement(
    engine: AsyncEngine, statements: Statements
) -> None:
    store = SessionStore(engine, touch_interval=timedelta(hours=1))
    issued = [await store.issue_session(f"user{n}") for n in range(20)]
    await store.revoke(issued[3].token)
    statements.queries.clear()
    tokens = [i.token for i in issued] + [issued[0].token, "not-a-token-at-all"]
    results = await asyncio.gather(
        *(store.validate_with_user(token) for token in tokens), return_exceptions=True
    )
    assert len(statements.reads()) == 1, statements.queries  # 22 lookups, one statement
    assert "= ANY" in statements.reads()[0]
    for n, result in enumerate(results[:20]):
        if n == 3:
            assert isinstance(result, InvalidTokenError)
        else:
            assert not isinstance(result, BaseException)
            assert result[0].user_id == f"user{n}"
    assert not isinstance(results[20], BaseException)
    assert results[20][0].id == issued[0].session.id  # the same key twice: both answered
    assert isinstance(results[21], InvalidTokenError)

    statements.queries.clear()  # one lookup alone: one statement
    session = await store.session_with_user(issued[5].session.id)
    assert session is not None
    assert session[0].user_id == "user5"
    assert len(statements.queries) == 1, statements.queries
    assert_no_checked_out(engine)


async def test_a_revocation_is_seen_by_the_next_lookup(
    engine: AsyncEngine, postgres_database: str
) -> None:
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
    other = create_engine(postgres_database)
    try:
        assert await SessionStore(other).revoke_all("alice") == 1
    finally:
        assert await dispose_engine(other)
    with pytest.raises(InvalidTokenError):
        await store.validate_with_user(issued.token)
    assert await store.session_with_user(issued.session.id) is None


async def test_a_lookup_asked_while_a_batch_runs_waits_for_the_next_batch(
    engine: AsyncEngine, statements: Statements
) -> None:
    """It must see a revocation committed after the running batch was sent."""
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    await store.validate_with_user(issued.token)
    reader = _pgread.batched_reader(engine)
    assert reader is not None
    first = asyncio.create_task(store.validate_with_user(issued.token))
    while reader.worker is None or reader.pending:  # until the first batch is sent
        await asyncio.sleep(0)
    await SessionStore(engine).revoke(issued.token)  # through the pool, committed
    with pytest.raises(InvalidTokenError):
        await store.validate_with_user(issued.token)
    await asyncio.gather(first, return_exceptions=True)  # read before or after: either


async def test_killed_backend_is_replaced_without_an_error(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    await store.validate_with_user(issued.token)
    old = dedicated(engine)
    pid = old.get_server_pid()
    postgres_server.psql(f"select pg_terminate_backend({pid})")
    # Whether or not the driver has noticed yet: the next lookup succeeds, on a new one.
    session, _ = await store.validate_with_user(issued.token)
    assert session.user_id == "alice"
    assert dedicated(engine) is not old
    assert dedicated(engine).get_server_pid() != pid


async def test_a_connection_lost_mid_statement_is_read_again_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    await store.validate_with_user(issued.token)
    connection = dedicated(engine)
    fetch = asyncpg.Connection.fetch
    calls = 0

    async def dying(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if self is connection:
            calls += 1
            connection.terminate()  # gone while the statement runs
        return await fetch(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "fetch", dying)
    assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
    assert calls == 1
    assert dedicated(engine) is not connection


async def test_a_statement_past_command_timeout_is_a_storage_error(
    postgres_database: str,
) -> None:
    engine = create_engine(postgres_database, connect_args={"command_timeout": 0.5})
    blocker = create_engine(postgres_database)
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        issued = await store.issue_session("alice")
        async with blocker.begin() as conn:  # blocks every read of the table
            await conn.execute(text("LOCK TABLE authcore_sessions IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(StorageError, match="did not answer in time") as info:
                await asyncio.wait_for(store.validate_with_user(issued.token), DOES_NOT_HANG)
            assert isinstance(info.value.__cause__, TimeoutError)
            assert issued.token not in str(info.value)
        assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
        assert_no_checked_out(engine)
    finally:
        assert await dispose_engine(blocker)
        assert await dispose_engine(engine)


async def test_a_server_error_is_a_storage_error_and_keeps_the_connection(
    postgres_database: str,
) -> None:
    engine = create_engine(postgres_database)
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        issued = await store.issue_session("alice")
        await store.validate_with_user(issued.token)
        connection = dedicated(engine)
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE authcore_sessions RENAME TO moved"))
        with pytest.raises(StorageError, match="UndefinedTableError") as info:
            await store.validate_with_user(issued.token)
        assert isinstance(info.value.__cause__, asyncpg.PostgresError)
        assert dedicated(engine) is connection
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE moved RENAME TO authcore_sessions"))
        assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
    finally:
        assert await dispose_engine(engine)


async def test_an_engine_of_its_own_reads_through_the_pool_with_the_same_errors(
    postgres_database: str,
) -> None:
    """An engine not made by ``create_engine`` has no dedicated connection: the read goes
    through the pool, and a server error reads as it does on the dedicated connection."""
    engine = create_async_engine(postgres_database)
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        issued = await store.issue_session("alice")
        assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
        assert _pgread.batched_reader(engine) is None
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE authcore_sessions RENAME TO moved"))
        with pytest.raises(StorageError) as info:
            await store.validate_with_user(issued.token)
        message = "database error while validating a session: UndefinedTableError"
        assert str(info.value) == message
        assert isinstance(info.value.__cause__, asyncpg.PostgresError)
        assert_no_checked_out(engine)
    finally:
        assert await dispose_engine(engine)


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server for this module alone: stopping it disturbs no other test."""
    require_postgres()
    with PostgresServer() as server:
        yield server


async def test_server_stopped_and_started_again(own_server: PostgresServer) -> None:
    engine = create_engine(own_server.create_database("pgread_restart"))
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        issued = await store.issue_session("alice")
        await store.validate_with_user(issued.token)
        await asyncio.to_thread(own_server.stop_server)
        for lookup in (
            lambda: store.validate_with_user(issued.token),
            lambda: store.session_with_user(issued.session.id),
        ):
            with pytest.raises(StorageError) as info:
                await asyncio.wait_for(lookup(), DOES_NOT_HANG)
            assert info.value.__cause__ is not None
        await asyncio.to_thread(own_server.start_server)
        assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
        assert_no_checked_out(engine)
    finally:
        assert await dispose_engine(engine)


async def test_cancellation_storm(engine: AsyncEngine, postgres_server: PostgresServer) -> None:
    store = SessionStore(engine, touch_interval=timedelta(microseconds=1))  # touches too
    issued = [await store.issue_session(f"user{n}") for n in range(20)]
    await store.validate_with_user(issued[0].token)
    rng = random.Random("pgread-storm")
    tasks: list[asyncio.Task[Any]] = []
    for n in range(300):
        one = issued[n % len(issued)]
        if n % 2:
            tasks.append(asyncio.create_task(store.validate_with_user(one.token)))
        else:
            tasks.append(asyncio.create_task(store.session_with_user(one.session.id)))
    for task in tasks:
        if rng.random() < 0.6:
            for _ in range(rng.randrange(0, 20)):
                await asyncio.sleep(0)
            task.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DOES_NOT_HANG)
    cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError)]
    errors = [
        o
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
    ]
    assert cancelled
    assert len(cancelled) < len(outcomes)
    assert errors == []
    # Nothing was broken: the same connection serves the next lookups.
    connection = dedicated(engine)
    results = await asyncio.gather(*(store.validate_with_user(i.token) for i in issued))
    assert [s.user_id for s, _ in results] == [f"user{n}" for n in range(20)]
    assert dedicated(engine) is connection
    assert_no_checked_out(engine)


async def test_dispose_closes_the_dedicated_connection_and_the_engine_reads_again(
    engine: AsyncEngine, postgres_server: PostgresServer
) -> None:
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    await store.validate_with_user(issued.token)
    connection = dedicated(engine)
    assert await dispose_engine(engine)
    assert connection.is_closed()
    assert backends(postgres_server, engine) == 0
    assert (await store.validate_with_user(issued.token))[0].user_id == "alice"
    assert dedicated(engine) is not connection


async def test_dispose_while_a_batch_runs_closes_it_when_the_batch_returns(
    engine: AsyncEngine,
) -> None:
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    await store.validate_with_user(issued.token)
    connection = dedicated(engine)
    lookup = asyncio.create_task(store.validate_with_user(issued.token))
    reader = _pgread.batched_reader(engine)
    assert reader is not None
    while reader.worker is None or reader.pending:  # until the batch is sent
        await asyncio.sleep(0)
    assert await dispose_engine(engine)
    assert (await lookup)[0].user_id == "alice"  # the batch in flight finishes
    while reader.worker is not None:
        await asyncio.sleep(0.01)
    assert connection.is_closed()


def test_dispose_from_another_loop_after_the_loop_closed(
    postgres_database: str, postgres_server: PostgresServer
) -> None:
    """No ResourceWarning, no "Event loop is closed": the socket is closed directly."""
    engine = create_engine(postgres_database)

    async def use() -> str:
        await create_schema(engine)
        store = SessionStore(engine)
        issued = await store.issue_session("alice")
        await store.validate_with_user(issued.token)
        assert dedicated(engine) is not None
        return issued.token

    token = asyncio.run(use())  # its loop is closed now, the connections still open

    async def dispose_and_read() -> None:
        assert await dispose_engine(engine)
        assert await asyncio.to_thread(backends, postgres_server, engine) == 0
        assert (await SessionStore(engine).validate_with_user(token))[0].user_id == "alice"
        assert await dispose_engine(engine)

    asyncio.run(dispose_and_read())
    gc.collect()  # a leaked connection would warn here (warnings are errors)


def test_a_loop_closed_without_dispose_is_cleaned_up_by_the_next_loop(
    postgres_database: str, postgres_server: PostgresServer
) -> None:
    engine = create_engine(postgres_database)

    async def read(token: str | None) -> str:
        store = SessionStore(engine)
        if token is None:
            await create_schema(engine)
            token = (await store.issue_session("alice")).token
        assert (await store.validate_with_user(token))[0].user_id == "alice"
        return token

    token = asyncio.run(read(None))
    asyncio.run(read(token))  # a reader of its own; the first loop's is closed on the way
    gc.collect()

    async def dispose() -> None:
        assert await dispose_engine(engine)
        assert await asyncio.to_thread(backends, postgres_server, engine) == 0

    asyncio.run(dispose())


def test_dispose_from_another_thread_while_the_readers_loop_runs(
    postgres_database: str, postgres_server: PostgresServer
) -> None:
    """Closed politely on its own loop (which keeps running), from the caller's loop."""
    import threading

    engine = create_engine(postgres_database)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        async def use() -> Any:
            await create_schema(engine)
            store = SessionStore(engine)
            issued = await store.issue_session("alice")
            await store.validate_with_user(issued.token)
            return dedicated(engine)

        connection = asyncio.run_coroutine_threadsafe(use(), loop).result(DOES_NOT_HANG)

        async def dispose() -> None:
            assert await dispose_engine(engine)
            assert await asyncio.to_thread(backends, postgres_server, engine) == 0

        asyncio.run(dispose())
        assert connection.is_closed()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(DOES_NOT_HANG)
        loop.close()
