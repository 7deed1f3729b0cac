"""The authenticated request's hot path: exact statement and thread hand-off counts.

One SQL statement per authenticated request (the session joined to its user),
no aiosqlite thread hand-off on SQLite (the inline read-only connection), the
throttled touch write unchanged, and a revocation made by another engine or
another process seen on the very next request.
"""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from fastapi.testclient import TestClient

from authcore import SessionStore, create_engine, dispose_engine
from authcore.db._fast import close_inline_reader
from authcore.testing import FakeClock

from .pgserver import PostgresServer
from .test_fastapi import bearer, login, make_app, make_auth, register

ROOT = Path(__file__).resolve().parent.parent


class Counts:
    """Statements run on every SQLite connection, and hand-offs to aiosqlite's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statements: list[str] = []
        self.handoffs = 0

    def reset(self) -> None:
        with self.lock:
            self.statements.clear()
            self.handoffs = 0

    def sql(self) -> list[str]:
        """The statements, PRAGMAs of newly opened connections left out."""
        with self.lock:
            return [s for s in self.statements if not s.startswith("PRAGMA")]


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    counts = Counts()
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)

        def trace(statement: str) -> None:
            with counts.lock:
                counts.statements.append(statement)

        connection.set_trace_callback(trace)
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced)  # aiosqlite's threads and the inline reader
    execute = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with counts.lock:
            counts.handoffs += 1
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return counts


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hot.db'}"


@pytest.fixture
def file_client(clock: FakeClock, file_url: str, counts: Counts) -> Iterator[TestClient]:
    with TestClient(make_app(make_auth(clock, file_url))) as client:
        yield client


def signed_in(client: TestClient) -> dict[str, Any]:
    register(client)
    pair = login(client)
    client.cookies.clear()  # each request below says how it authenticates
    return pair


def via(pair: dict[str, Any], how: str) -> dict[str, str]:
    if how == "bearer":
        return bearer(pair)
    return {"Cookie": f"authcore_session={pair['refresh_token']}"}


def selects(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_one_statement_and_no_handoff_per_request_on_a_sqlite_file(
    file_client: TestClient, counts: Counts, how: str
) -> None:
    pair = signed_in(file_client)
    for _ in range(3):
        counts.reset()
        response = file_client.get("/private", headers=via(pair, how))
        assert response.status_code == 200, response.text
        statements = counts.sql()
        assert len(statements) == 1, statements
        assert "authcore_sessions" in statements[0]
        assert "JOIN authcore_users" in statements[0]
        assert counts.handoffs == 0


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_one_statement_per_request_in_memory(clock: FakeClock, counts: Counts, how: str) -> None:
    with TestClient(make_app(make_auth(clock))) as client:  # create_engine's shared memdb
        pair = signed_in(client)
        counts.reset()
        assert client.get("/private", headers=via(pair, how)).status_code == 200
        assert len(counts.sql()) == 1, counts.sql()
        assert counts.handoffs == 0


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_the_throttled_touch_is_unchanged(
    file_client: TestClient, counts: Counts, clock: FakeClock, how: str
) -> None:
    pair = signed_in(file_client)
    clock.advance(timedelta(seconds=61))  # past touch_interval (60 s)
    counts.reset()
    assert file_client.get("/private", headers=via(pair, how)).status_code == 200
    updates = [s for s in counts.sql() if s.startswith("UPDATE authcore_sessions")]
    assert len(updates) == 1
    assert "last_seen_at" in updates[0]
    assert len(selects(counts.sql())) == 1
    counts.reset()
    assert file_client.get("/private", headers=via(pair, how)).status_code == 200
    assert len(counts.sql()) == 1  # touched a moment ago: the read alone
    assert counts.handoffs == 0


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_without_the_inline_reader_one_statement_still(
    file_client: TestClient, counts: Counts, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """When the inline read gives up (SQLite busy, say), the ordinary path reads, once."""
    from authcore.db import _fast

    pair = signed_in(file_client)
    monkeypatch.setattr(_fast._InlineReader, "fetch", lambda *_: None)
    counts.reset()
    assert file_client.get("/private", headers=via(pair, how)).status_code == 200
    assert len(counts.sql()) == 1, counts.sql()


def test_the_inline_reader_gives_way_when_sqlite_is_busy(tmp_path: Path) -> None:
    """A writer holding the database (no WAL) makes the inline read give up at once."""
    from authcore.db._fast import _InlineReader

    path = str(tmp_path / "busy.db")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("CREATE TABLE x (a INTEGER)")
        writer.execute("BEGIN EXCLUSIVE")
        reader = _InlineReader(path, uri=False)
        assert reader.fetch("SELECT a FROM x", ()) is None
        writer.execute("COMMIT")
        assert reader.fetch("SELECT a FROM x", ()) == []
        reader.close()
    finally:
        writer.close()


def revoke_in_another_process(url: str, user_id: str) -> None:
    script = (
        "import asyncio, sys\n"
        "from authcore import SessionStore, create_engine, dispose_engine\n"
        "async def main():\n"
        "    engine = create_engine(sys.argv[1])\n"
        "    assert await SessionStore(engine).revoke_all(sys.argv[2]) == 1\n"
        "    await dispose_engine(engine)\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, url, user_id], check=True, timeout=120)


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_a_revoke_in_another_process_is_seen_on_the_very_next_request(
    file_client: TestClient, file_url: str, how: str
) -> None:
    user_id = register(file_client)
    pair = login(file_client)
    file_client.cookies.clear()
    assert file_client.get("/private", headers=via(pair, how)).status_code == 200
    revoke_in_another_process(file_url, user_id)
    assert file_client.get("/private", headers=via(pair, how)).status_code == 401


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_a_revoke_through_another_engine_is_seen_on_the_very_next_request(
    file_client: TestClient, file_url: str, how: str
) -> None:
    user_id = register(file_client)
    pair = login(file_client)
    file_client.cookies.clear()
    assert file_client.get("/private", headers=via(pair, how)).status_code == 200

    async def revoke() -> int:
        engine = create_engine(file_url)
        try:
            return await SessionStore(engine).revoke_all(user_id)
        finally:
            await dispose_engine(engine)

    assert file_client.portal is not None
    assert file_client.portal.call(revoke) == 1
    assert file_client.get("/private", headers=via(pair, how)).status_code == 401


@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_a_deactivated_user_is_refused_on_the_next_request(
    clock: FakeClock, file_url: str, how: str
) -> None:
    auth = make_auth(clock, file_url)
    with TestClient(make_app(auth)) as client:
        user_id = register(client)
        pair = login(client)
        client.cookies.clear()
        assert client.get("/private", headers=via(pair, how)).status_code == 200
        assert client.portal is not None
        client.portal.call(auth.users.set_active, user_id, False)  # sessions left as they are
        assert client.get("/private", headers=via(pair, how)).status_code == 401


async def test_dispose_engine_closes_the_inline_reader(tmp_path: Path) -> None:
    """So the file can be deleted (Windows), and the engine still reads afterwards."""
    from authcore.db._fast import _READERS

    path = tmp_path / "d.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    from authcore import create_schema

    await create_schema(engine)
    store = SessionStore(engine)
    issued = await store.issue_session("alice")
    session, user = await store.validate_with_user(issued.token)
    assert session.user_id == "alice"
    assert user is None  # no such user row
    reader = _READERS[engine.sync_engine]
    assert reader is not None
    assert reader.connection is not None
    await dispose_engine(engine)
    assert reader.connection is None
    session, _ = await store.validate_with_user(issued.token)  # reopened on demand
    assert reader.connection is not None
    close_inline_reader(engine.sync_engine)
    await dispose_engine(engine)


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["bearer", "cookie"])
def test_one_statement_per_request_on_postgres(
    clock: FakeClock, postgres_server: PostgresServer, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly one statement: no pre-ping, no transaction (the dedicated connection)."""
    import asyncpg

    url = postgres_server.create_database("hot_path_" + how)
    queries: list[str] = []
    connect = asyncpg.connect

    async def logged(*args: Any, **kwargs: Any) -> Any:  # the pool's and the hot read's
        connection = await connect(*args, **kwargs)
        connection.add_query_logger(lambda record: queries.append(record.query))
        return connection

    monkeypatch.setattr(asyncpg, "connect", logged)
    with TestClient(make_app(make_auth(clock, url))) as client:
        pair = signed_in(client)
        for _ in range(3):
            queries.clear()
            assert client.get("/private", headers=via(pair, how)).status_code == 200
            assert len(queries) == 1, queries
            assert "JOIN authcore_users" in queries[0]


def test_the_joined_read_returns_every_field_of_a_user() -> None:
    from authcore import User
    from authcore.sessions._sql_joined import USER_FIELDS

    assert set(USER_FIELDS) == set(User.__dataclass_fields__)


def test_the_inline_reader_never_creates_a_database_file(tmp_path: Path) -> None:
    from authcore.db._fast import _InlineReader

    path = tmp_path / "absent.db"
    reader = _InlineReader(str(path), uri=False)
    assert reader.fetch("SELECT 1", ()) is None
    assert not path.exists()


def test_two_event_loops_in_two_threads_read_at_once(tmp_path: Path) -> None:
    """The inline connection is used by one thread at a time; the other reads the ordinary way."""
    import asyncio

    from authcore import create_schema

    url = f"sqlite+aiosqlite:///{tmp_path / 'loops.db'}"

    async def setup() -> str:
        engine = create_engine(url)
        await create_schema(engine)
        token = (await SessionStore(engine).issue_session("alice")).token
        await dispose_engine(engine)
        return token

    token = asyncio.run(setup())
    engine = create_engine(url)
    store = SessionStore(engine, touch_interval=timedelta(days=1))
    results: list[int] = []
    errors: list[BaseException] = []

    async def read_many() -> int:
        found = 0
        for _ in range(300):
            session, _user = await store.validate_with_user(token)
            found += session.user_id == "alice"
        return found

    def in_a_thread() -> None:
        try:
            results.append(asyncio.run(read_many()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=in_a_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert results == [300, 300]
    # Both loops are closed now: one disposal from here closes every connection of
    # either loop, and the inline reader (disposing from each thread while the other
    # still read raced the other loop's shutdown).
    assert asyncio.run(dispose_engine(engine))
