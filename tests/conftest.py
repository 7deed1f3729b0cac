"""Shared fixtures: every session store backend, a PostgreSQL server, leak checks."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import create_engine, create_schema, dispose_engine, metadata
from authcore.sessions import BaseSessionStore, SessionStore
from authcore.testing import FakeClock, InMemorySessionStore

from .pgserver import PostgresServer, find_pg_bin

pytest_plugins = ["pytester"]

BACKENDS = ["sqlite-memory", "sqlite-file", "postgres", "fake"]
SQL_BACKENDS = ["sqlite-memory", "sqlite-file", "postgres"]

# The longest tests (10-30 s each under coverage on two cores), longest first. They start
# the run, so that none of them is left running alone at the end: xdist's work stealing
# (the noxfile's ``--dist worksteal``) hands each worker a contiguous share of this order
# and lets idle workers steal from the *tail* of a busy worker's queue, so these stay at
# the head of the first worker's queue and run first. Any other order is unchanged.
LONGEST_FIRST = (
    "test_fastapi_races.py::test_no_5xx_and_no_surviving_session_under_races",
    "test_openapi_schemathesis.py::",
    "test_plugin.py::test_a_fresh_virtualenv_with_the_wheel_and_pytest_only",
    "test_timeouts.py::test_a_hanging_test",
    "test_plugin.py::test_fixtures_under_xdist",
    "test_browser.py::",
)


def _start_rank(item: pytest.Item) -> int:
    return next(
        (n for n, part in enumerate(LONGEST_FIRST) if part in item.nodeid), len(LONGEST_FIRST)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: each group keeps its collection order


def require_postgres() -> None:
    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing: CI must run the PostgreSQL tests")
        pytest.skip("no PostgreSQL server binaries on this machine (install postgresql)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL per test session (per xdist worker)."""
    require_postgres()
    server = PostgresServer()
    server.start()
    server.create_database("authcore_test")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url("authcore_test")


async def _fresh_postgres_engine(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await create_schema(engine)
    async with engine.begin() as conn:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names}"))
    return engine


def assert_no_checked_out(engine: AsyncEngine) -> None:
    """Fail when a test left a pooled connection checked out."""
    checked_out = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
    assert checked_out == 0, f"{checked_out} connection(s) still checked out"


async def new_engine(backend: str, request: pytest.FixtureRequest, folder: Path) -> AsyncEngine:
    """A fresh engine with an empty schema for one of ``SQL_BACKENDS``."""
    if backend == "sqlite-memory":
        engine = create_engine("sqlite+aiosqlite://")
    elif backend == "sqlite-file":
        engine = create_engine(f"sqlite+aiosqlite:///{folder / 'authcore.db'}")
    else:
        require_postgres()
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return await _fresh_postgres_engine(server.url("authcore_test"))
    await create_schema(engine)
    return engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine with the schema for the backend named by ``request.param``."""
    engine = await new_engine(request.param, request, tmp_path)
    try:
        yield engine
    finally:
        assert await dispose_engine(engine)


StoreFactory = Callable[..., Awaitable[BaseSessionStore]]


@pytest_asyncio.fixture(params=BACKENDS)
async def make_store(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Build stores of one backend with any options; the clock defaults to ``clock``."""
    async with backend_factory(request, tmp_path, InMemorySessionStore, SessionStore) as make:

        async def factory(**options: Any) -> BaseSessionStore:
            options.setdefault("clock", clock)
            store: BaseSessionStore = await make(**options)
            return store

        yield factory


@asynccontextmanager
async def backend_factory(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake: Callable[..., Any],
    sql: Callable[..., Any],
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A factory of stores on ``request.param``'s backend: *fake* for ``"fake"``, else
    *sql* on one engine that all of them share, disposed (and checked) at the end."""
    backend: str = request.param
    engines: list[AsyncEngine] = []

    async def factory(**options: Any) -> Any:
        if backend == "fake":
            return fake(**options)
        if not engines:
            engines.append(await new_engine(backend, request, tmp_path))
        return sql(engines[0], **options)

    try:
        yield factory
    finally:
        for engine in engines:
            assert await dispose_engine(engine)


@pytest_asyncio.fixture
async def store(make_store: StoreFactory) -> BaseSessionStore:
    return await make_store()


@pytest.fixture(autouse=True)
def _no_connection_left_checked_out() -> Iterator[None]:
    """Fail any test that leaves a connection of an authcore engine checked out.

    Our own suite's guard (authcore's pytest plugin has no autouse fixtures).
    """
    from authcore.db._dispose import _trackers

    yield
    leaked = sum(len(tracker.checked_out) for tracker in list(_trackers.values()))
    assert leaked == 0, f"{leaked} connection(s) left checked out by this test"


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database of the session's PostgreSQL, for this test only.

    For tests that inspect or disturb the server (``pg_stat_activity``,
    ``pg_terminate_backend``, schema comparisons) without touching other tests' data.
    """
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
