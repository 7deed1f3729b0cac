"""dispose_engine from any event loop, on SQLite and PostgreSQL, never hanging."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authcore import SessionStore, create_engine, create_schema, dispose_engine

from .pgserver import PostgresServer

SCENARIO = textwrap.dedent(
    """
    import asyncio, logging, sys
    from sqlalchemy import text
    from authcore import SessionStore, create_engine, create_schema, dispose_engine

    logging.basicConfig(level=logging.WARNING)  # any warning or error would reach stderr
    # ...except -X dev's "Executing <Task> took 0.2 seconds", which only says the
    # machine is busy; errors such as "Event loop is closed" are still shown.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    url, scenario = sys.argv[1], sys.argv[2]
    engine = create_engine(url)
    leaked = []

    async def use():
        await create_schema(engine)
        store = SessionStore(engine)
        await store.validate(await store.create_session("u"))
        if scenario == "checked-out":
            conn = await engine.connect()  # still checked out when this loop closes
            await conn.execute(text("select 1"))
            leaked.append(conn)

    asyncio.run(use())  # loop A, closed from here on
    print(asyncio.run(dispose_engine(engine, timeout=5)))  # loop B
    print(asyncio.run(dispose_engine(engine, timeout=5)))  # twice

    async def reuse():
        store = SessionStore(engine)
        await store.validate(await store.create_session("again"))
        return await dispose_engine(engine)

    print(asyncio.run(reuse()))
    """
)


async def test_dispose_twice_and_reuse(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await create_schema(engine)
    assert await dispose_engine(engine)
    assert await dispose_engine(engine)
    store = SessionStore(engine)
    await store.create_session("u")
    assert await dispose_engine(engine)


async def test_dispose_timeout_must_be_positive() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    with pytest.raises(ValueError, match="timeout"):
        await dispose_engine(engine, timeout=0)
    await dispose_engine(engine)


def _run_scenario(url: str, scenario: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", SCENARIO, url, scenario],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("scenario", ["idle", "checked-out"])
def test_dispose_from_another_loop_sqlite(tmp_path: Path, scenario: str) -> None:
    result = _run_scenario(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", scenario)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.split() == ["True", "True", "True"]


def _client_backends(server: PostgresServer, url: str | None = None) -> int:
    """Client backends of the server, or of *url*'s database only."""
    only = f" and datname = '{make_url(url).database}'" if url is not None else ""
    return int(
        server.psql(
            "select count(*) from pg_stat_activity "
            f"where backend_type = 'client backend' and pid <> pg_backend_pid(){only}"
        )
    )


def _wait_backends(server: PostgresServer, url: str, expected: int) -> None:
    """Wait until *url*'s database has *expected* client backends (they exit asynchronously)."""
    deadline = time.monotonic() + 30
    while (count := _client_backends(server, url)) != expected:
        assert time.monotonic() < deadline, f"{count} backends, expected {expected}"
        time.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.parametrize("scenario", ["idle", "checked-out"])
def test_dispose_from_another_loop_postgres(postgres_server: PostgresServer, scenario: str) -> None:
    url = postgres_server.create_database(f"dispose_{scenario.replace('-', '_')}")
    result = _run_scenario(url, scenario)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.split() == ["True", "True", "True"]
    assert _client_backends(postgres_server) == 0


@pytest.mark.postgres
async def test_dispose_closes_server_connections(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    engine = create_engine(postgres_url)
    await create_schema(engine)
    store = SessionStore(engine)
    await asyncio.gather(*(store.create_session("u") for _ in range(20)))
    assert _client_backends(postgres_server) > 0
    assert await dispose_engine(engine)
    assert _client_backends(postgres_server) == 0


async def test_dispose_gives_up_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hang.db'}")
    await create_schema(engine)
    real_close = aiosqlite.Connection.close

    async def hanging_close(self: aiosqlite.Connection) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(aiosqlite.Connection, "close", hanging_close)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="authcore.db"):
        assert await dispose_engine(engine, timeout=0.3) is False
    assert loop.time() - started < 5  # generous: "does not hang"
    assert "force-closing" in caplog.text
    monkeypatch.setattr(aiosqlite.Connection, "close", real_close)
    # Force-closed, and the engine still works.
    store = SessionStore(engine)
    await store.validate(await store.create_session("u"))
    assert await dispose_engine(engine)


async def test_untracked_engines_are_disposed_politely(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}")
    async with engine.connect() as conn:
        await conn.execute(text("select 1"))
    assert await dispose_engine(engine)
    assert await dispose_engine(engine)


SESSION_FIXTURE_SUITE = """
import asyncio
import pytest
from sqlalchemy import text
from authcore import create_engine, dispose_engine

@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    engine = create_engine("sqlite+aiosqlite:///" + str(tmp_path_factory.mktemp("db") / "s.db"))
    yield engine
    assert asyncio.run(dispose_engine(engine))  # a new loop: the test loops are closed

async def test_leaks_a_connection(engine):
    conn = await engine.connect()
    await conn.execute(text("select 1"))
    test_leaks_a_connection.leaked = conn  # still checked out when this loop closes

async def test_uses_engine(engine):
    async with engine.connect() as conn:
        assert (await conn.execute(text("select 1"))).scalar() == 1
"""


def test_session_scoped_engine_in_a_pytest_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SESSION_FIXTURE_SUITE)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "Event loop is closed" not in result.stdout.str() + result.stderr.str()


async def _use(engine: AsyncEngine, *, hold: bool = False) -> AsyncConnection | None:
    """Open a few connections on the running loop; with *hold*, keep one checked out."""
    await create_schema(engine)
    store = SessionStore(engine)
    tokens = await asyncio.gather(*(store.create_session("u") for _ in range(5)))
    await asyncio.gather(*(store.validate(token) for token in tokens))
    if not hold:
        return None
    conn = await engine.connect()
    await conn.execute(text("select 1"))
    return conn


@pytest.mark.postgres
def test_dispose_asyncpg_opened_on_an_idle_loop(
    postgres_database: str, postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Loop A stays open but idle (an asyncio.Runner between two runs); loop B disposes.
    engine = create_engine(postgres_database)
    with asyncio.Runner() as first, caplog.at_level(logging.WARNING):
        first.run(_use(engine))
        assert _client_backends(postgres_server, postgres_database) > 0
        with asyncio.Runner() as second:
            assert second.run(dispose_engine(engine, timeout=5)) is True
            _wait_backends(postgres_server, postgres_database, 0)
            second.run(_use(engine))  # usable again, from the other loop
            assert second.run(dispose_engine(engine, timeout=5)) is True
        first.run(asyncio.sleep(0))  # loop A runs again: nothing left to report
    assert caplog.records == []
    _wait_backends(postgres_server, postgres_database, 0)


@pytest.mark.postgres
async def test_dispose_asyncpg_opened_on_a_loop_in_another_thread(
    postgres_database: str, postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Loop A runs in another thread, with one connection still checked out there.
    engine = create_engine(postgres_database)
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, name="loop-a")
    thread.start()
    try:
        with caplog.at_level(logging.WARNING):
            held = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(_use(engine, hold=True), other)
            )
            assert held is not None
            assert _client_backends(postgres_server, postgres_database) > 1
            # Closed politely on loop A; the checked-out one is left to its user.
            assert await dispose_engine(engine, timeout=5) is True
            _wait_backends(postgres_server, postgres_database, 1)
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(held.close(), other))
            # Returned to the disposed pool: closed then, on its own loop.
            _wait_backends(postgres_server, postgres_database, 0)
            # The engine still works, here.
            await _use(engine)
            assert await dispose_engine(engine, timeout=5) is True
        assert caplog.records == []
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(10)
        other.close()
    _wait_backends(postgres_server, postgres_database, 0)
