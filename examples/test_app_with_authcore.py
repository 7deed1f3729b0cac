"""How an application's own test suite uses authcore's testing kit.

Installing authcore registers its pytest plugin: the ``authcore_*`` fixtures
are simply there, and none of them is autouse. This suite uses
pytest-asyncio in its default strict mode (every async test is marked);
run it with ``pytest examples/test_app_with_authcore.py`` after
``pip install "authcore[fastapi]" pytest pytest-asyncio httpx2``.
"""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated

import httpx2
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from authcore import (
    SessionStore,
    TokenExpiredError,
    User,
    create_engine,
    create_schema,
    dispose_engine,
)
from authcore.fastapi import AuthCore
from authcore.testing import InMemorySessionStore, async_force_login, fast_hasher, force_login


async def current_user_id(store: SessionStore | InMemorySessionStore, token: str) -> str | None:
    """The app code under test: who is logged in with this token?"""
    session = await store.get_session(token)
    return None if session is None else session.user_id


@pytest.mark.asyncio
async def test_login_survives_until_idle_timeout(authcore_engine, authcore_clock) -> None:
    store = SessionStore(authcore_engine, idle_timeout=timedelta(minutes=30), clock=authcore_clock)
    token = await store.create_session("alice")
    authcore_clock.advance(minutes=29)
    assert await current_user_id(store, token) == "alice"
    authcore_clock.advance(minutes=31)
    assert await current_user_id(store, token) is None
    with pytest.raises(TokenExpiredError):
        await store.validate(token)


@pytest.mark.asyncio
async def test_with_the_ready_made_store(authcore_store) -> None:
    token = await authcore_store.create_session("bob")
    assert await current_user_id(authcore_store, token) == "bob"


@pytest.mark.asyncio
async def test_users_with_the_fast_hasher(authcore_users) -> None:
    user = await authcore_users.create_user("carol", "plum-kettle-88-orbit")
    assert (await authcore_users.authenticate("Carol", "plum-kettle-88-orbit")) is not None
    assert await authcore_users.authenticate("carol", "wrong") is None
    assert user.username == "carol"


@pytest.mark.asyncio
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


@pytest.mark.asyncio
async def test_on_a_real_file(file_engine) -> None:
    store = SessionStore(file_engine)
    token = await store.create_session("erin")
    assert await current_user_id(store, token) == "erin"


# -- an app's own routes, logged in without a password ------------------------

auth = AuthCore(
    database_url="sqlite+aiosqlite://", secret_key="example-secret-" * 3, hasher=fast_hasher()
)
app = FastAPI(lifespan=auth.lifespan)
app.include_router(auth.router)


@app.get("/notes")
async def notes(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, str]:
    return {"owner": user.username}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as client:  # runs the lifespan: a fresh in-memory database
        yield client


def test_force_login(client: TestClient) -> None:
    assert client.get("/notes").status_code == 401
    assert client.portal is not None
    user = client.portal.call(auth.users.create_user, "frank", "plum-kettle-88-orbit")
    force_login(client, auth, user)  # no password, no /login round trip
    assert client.get("/notes").json() == {"owner": "frank"}


@pytest.mark.asyncio
async def test_async_force_login() -> None:
    async with auth.lifespan(app):  # ASGITransport does not run the lifespan
        user = await auth.users.create_user("grace", "plum-kettle-88-orbit")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await async_force_login(client, auth, user)
            response = await client.get("/notes")
    assert response.json() == {"owner": "grace"}
