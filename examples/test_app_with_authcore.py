"""How an application's own test suite uses authcore's pytest plugin.

Installing authcore registers the plugin: the ``authcore_*`` fixtures are
simply there, and none of them is autouse. Run with
``pytest examples/test_app_with_authcore.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio

from authcore import SessionStore, TokenExpiredError, create_engine, create_schema, dispose_engine
from authcore.testing import InMemorySessionStore

pytestmark = pytest.mark.asyncio  # works in pytest-asyncio's strict mode too


async def current_user_id(store: SessionStore | InMemorySessionStore, token: str) -> str | None:
    """The app code under test: who is logged in with this token?"""
    session = await store.get_session(token)
    return None if session is None else session.user_id


async def test_login_survives_until_idle_timeout(authcore_engine, authcore_clock) -> None:
    store = SessionStore(authcore_engine, idle_timeout=timedelta(minutes=30), clock=authcore_clock)
    token = await store.create_session("alice")
    authcore_clock.advance(minutes=29)
    assert await current_user_id(store, token) == "alice"
    authcore_clock.advance(minutes=31)
    assert await current_user_id(store, token) is None
    with pytest.raises(TokenExpiredError):
        await store.validate(token)


async def test_with_the_ready_made_store(authcore_store) -> None:
    token = await authcore_store.create_session("bob")
    assert await current_user_id(authcore_store, token) == "bob"


async def test_users_with_the_fast_hasher(authcore_users) -> None:
    user = await authcore_users.create_user("carol", "correct horse battery staple")
    assert (await authcore_users.authenticate("Carol", "correct horse battery staple")) is not None
    assert await authcore_users.authenticate("carol", "wrong") is None
    assert user.username == "carol"


async def test_no_database_at_all() -> None:
    store = InMemorySessionStore()
    token = await store.create_session("dave")
    assert await current_user_id(store, token) == "dave"


@pytest_asyncio.fixture  # async fixtures need pytest-asyncio's decorator in strict mode
async def file_engine(authcore_sqlite_path):
    """A real SQLite file, unique to this test and xdist worker, removed afterwards."""
    engine = create_engine(f"sqlite+aiosqlite:///{authcore_sqlite_path}")
    await create_schema(engine)
    yield engine
    await dispose_engine(engine)  # before authcore_sqlite_path removes the file


async def test_on_a_real_file(file_engine) -> None:
    store = SessionStore(file_engine)
    token = await store.create_session("erin")
    assert await current_user_id(store, token) == "erin"
