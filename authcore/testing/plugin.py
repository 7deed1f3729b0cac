"""authcore's pytest plugin, registered through the ``pytest11`` entry point.

pytest loads it into every run of every project that has authcore installed,
so it is built to be invisible until asked for:

* It only defines fixtures, all named ``authcore_*`` and none autouse.
* Loading it imports neither SQLAlchemy, aiosqlite, passlib, bcrypt nor jose:
  each fixture imports what it needs when it is set up.
* It never requires pytest-asyncio. When pytest-asyncio is active, the async
  fixtures are ``pytest_asyncio.fixture`` fixtures (strict and auto mode);
  otherwise they are plain async fixtures, which anyio's pytest plugin runs
  for tests marked ``@pytest.mark.anyio``.

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
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from authcore.testing._clock import FakeClock

if TYPE_CHECKING:
    from authcore.passwords import PasswordHasher

__all__ = ["authcore_clock", "authcore_hasher", "authcore_sqlite_path"]

ASYNC_FIXTURES = "authcore-async-fixtures"
"""The name under which the async fixtures' plugin module is registered."""


def _pytest_asyncio_is_active(config: pytest.Config) -> bool:
    """Whether pytest-asyncio's plugin takes part in this run.

    True however it was loaded (entry point, ``-p``, ``pytest_plugins``);
    false when it is not installed or is disabled with ``-p no:asyncio``.
    """
    module = sys.modules.get("pytest_asyncio.plugin")
    return module is not None and config.pluginmanager.is_registered(module)


def pytest_configure(config: pytest.Config) -> None:
    """Register the async fixtures, made for pytest-asyncio when it is active."""
    if config.pluginmanager.has_plugin(ASYNC_FIXTURES):
        return
    from authcore.testing._fixtures import async_fixtures

    module = async_fixtures(for_pytest_asyncio=_pytest_asyncio_is_active(config))
    config.pluginmanager.register(module, ASYNC_FIXTURES)


@pytest.fixture
def authcore_clock() -> FakeClock:
    """A :class:`~authcore.testing.FakeClock` starting at 2030-01-01T00:00:00Z."""
    return FakeClock()


@pytest.fixture
def authcore_hasher() -> PasswordHasher:
    """A password hasher at bcrypt's minimum cost: fast, for tests only."""
    from authcore.testing import fast_hasher

    return fast_hasher()


@pytest.fixture
def authcore_sqlite_path(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A SQLite file path unique to this test and pytest-xdist worker.

    The file does not exist yet. After the test (once the test's own
    fixtures have disposed their engines) the database and its ``-wal``,
    ``-shm`` and ``-journal`` companions are removed with retries, so Windows
    file locks held a moment longer do not fail the test.
    """
    from authcore.files import remove_sqlite_database

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    path = tmp_path / f"authcore-{worker}-{name}.db"
    yield path
    remove_sqlite_database(path)
