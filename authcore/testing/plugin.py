"""authcore's pytest plugin, registered through the ``pytest11`` entry point.

It only defines fixtures, all named ``authcore_*`` and none autouse: a test
suite that does not ask for them sees no change. Async fixtures are
function-scoped, so they work under pytest-asyncio's default event loop.

==========================  =====================================================
fixture                     what it gives
==========================  =====================================================
``authcore_clock``          a fresh :class:`~authcore.testing.FakeClock`
``authcore_hasher``         :func:`~authcore.testing.fast_hasher` (bcrypt cost 4)
``authcore_engine``         in-memory SQLite engine with the schema, disposed after
``authcore_store``          a ``SessionStore`` on ``authcore_engine`` and ``authcore_clock``
``authcore_users``          a ``UserStore`` on ``authcore_engine``, fast hasher, clock
``authcore_sqlite_path``    a database file path unique to the test and xdist worker,
                            removed (with its -wal/-shm/-journal) after the test
==========================  =====================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from authcore.db import create_engine, create_schema, dispose_engine
from authcore.files import remove_sqlite_database
from authcore.passwords import PasswordHasher
from authcore.sessions import SessionStore
from authcore.testing import FakeClock, fast_hasher

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from authcore.users import UserStore

__all__ = [
    "authcore_clock",
    "authcore_engine",
    "authcore_hasher",
    "authcore_sqlite_path",
    "authcore_store",
    "authcore_users",
]


@pytest.fixture
def authcore_clock() -> FakeClock:
    """A :class:`~authcore.testing.FakeClock` starting at 2030-01-01T00:00:00Z."""
    return FakeClock()


@pytest.fixture
def authcore_hasher() -> PasswordHasher:
    """A password hasher at bcrypt's minimum cost: fast, for tests only."""
    return fast_hasher()


@pytest_asyncio.fixture
async def authcore_engine() -> AsyncIterator[AsyncEngine]:
    """An in-memory SQLite engine with authcore's schema, disposed after the test."""
    engine = create_engine("sqlite+aiosqlite://")
    try:
        await create_schema(engine)
        yield engine
    finally:
        await dispose_engine(engine)


@pytest_asyncio.fixture
async def authcore_store(authcore_engine: AsyncEngine, authcore_clock: FakeClock) -> SessionStore:
    """A :class:`~authcore.SessionStore` on ``authcore_engine``, driven by ``authcore_clock``."""
    return SessionStore(authcore_engine, clock=authcore_clock)


@pytest_asyncio.fixture
async def authcore_users(
    authcore_engine: AsyncEngine, authcore_hasher: PasswordHasher, authcore_clock: FakeClock
) -> UserStore:
    """A ``UserStore`` on ``authcore_engine`` with the fast hasher and ``authcore_clock``."""
    from authcore.users import UserStore

    return UserStore(authcore_engine, hasher=authcore_hasher, clock=authcore_clock)


@pytest.fixture
def authcore_sqlite_path(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A SQLite file path unique to this test and pytest-xdist worker.

    The file does not exist yet. After the test (once the test's own
    fixtures have disposed their engines) the database and its ``-wal``,
    ``-shm`` and ``-journal`` companions are removed with retries, so Windows
    file locks held a moment longer do not fail the test.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    path = tmp_path / f"authcore-{worker}-{name}.db"
    yield path
    remove_sqlite_database(path)
