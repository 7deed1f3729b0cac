"""``force_login`` and ``async_force_login`` against a real AuthCore app."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import asyncio
from collections.abc import Iterator
from datetime import timedelta
from http.cookiejar import Cookie
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from authcore import IssuedSession, User, create_schema, dispose_engine
from authcore.fastapi import AuthCore
from authcore.testing import FakeClock, async_force_login, fast_hasher, force_login

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "plum-kettle-88-orbit"


def make_auth(clock: FakeClock, **kw: Any) -> AuthCore:
    return AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        clock=clock,
        **kw,
    )


def make_app(auth: AuthCore) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)

    @app.get("/private")
    async def private(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, str]:
        return {"user": user.username}

    return app


@pytest.fixture
def auth(clock: FakeClock) -> AuthCore:
    return make_auth(clock)  # the default cookie: Secure


@pytest.fixture
def client(auth: AuthCore) -> Iterator[TestClient]:
    with TestClient(make_app(auth)) as client:
        yield client


def add_user(client: TestClient, auth: AuthCore, name: str = "alice") -> User:
    assert client.portal is not None
    return client.portal.call(auth.users.create_user, name, PASSWORD)


def only_cookie(client: Any) -> Cookie:
    cookies = list(client.cookies.jar)
    assert len(cookies) == 1, cookies
    return cookies[0]


def assert_session_cookie(cookie: Cookie, auth: AuthCore, token: str, *, secure: bool) -> None:
    assert (cookie.name, cookie.value) == (auth.cookie_name, token)
    assert (cookie.domain, cookie.domain_specified) == ("testserver.local", False)
    assert (cookie.path, cookie.secure) == ("/", secure)
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "lax"
    assert cookie.expires is None  # the server decides (with its clock) when it ends


def record_loops(
    auth: AuthCore, monkeypatch: pytest.MonkeyPatch
) -> list[asyncio.AbstractEventLoop]:
    """The event loop of each ``issue_session`` call, from now on."""
    loops: list[asyncio.AbstractEventLoop] = []
    issue = auth.sessions.issue_session

    async def recording(*args: Any, **kwargs: Any) -> IssuedSession:
        loops.append(asyncio.get_running_loop())
        return await issue(*args, **kwargs)

    monkeypatch.setattr(auth.sessions, "issue_session", recording)
    return loops


def test_inside_the_with_block(
    client: TestClient, auth: AuthCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = add_user(client, auth)
    assert client.get("/auth/me").status_code == 401
    loops = record_loops(auth, monkeypatch)
    token = force_login(client, auth, user)
    assert client.portal is not None
    assert loops == [client.portal.call(asyncio.get_running_loop)]  # the app's loop
    me = client.get("/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert client.get("/private").json() == {"user": "alice"}
    assert client.portal.call(auth.sessions.validate, token).user_id == user.id
    # The app's cookie is Secure, the client's base URL http: sent anyway.
    assert_session_cookie(only_cookie(client), auth, token, secure=False)


def test_outside_the_with_block(auth: AuthCore) -> None:
    async def prepare() -> User:
        await create_schema(auth.engine)
        return await auth.users.create_user("alice", PASSWORD)

    user = asyncio.run(prepare())
    client = TestClient(make_app(auth))  # never entered: no portal, no lifespan
    try:
        assert client.portal is None
        token = force_login(client, auth, user)
        assert client.get("/auth/me").json()["username"] == "alice"
        assert_session_cookie(only_cookie(client), auth, token, secure=False)
    finally:
        assert asyncio.run(dispose_engine(auth.engine))


async def test_outside_the_with_block_from_an_async_test(
    auth: AuthCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the test's loop running, the session is made on a fresh loop in a worker thread."""
    await create_schema(auth.engine)
    user = await auth.users.create_user("alice", PASSWORD)
    client = TestClient(make_app(auth))
    loops = record_loops(auth, monkeypatch)
    try:
        token = force_login(client, auth, user.id)
        assert len(loops) == 1
        assert loops[0] is not asyncio.get_running_loop()
        assert loops[0].is_closed()
        assert (await auth.sessions.validate(token)).user_id == user.id
        assert client.get("/auth/me").json()["username"] == "alice"
    finally:
        assert await dispose_engine(auth.engine)


def test_a_user_id_and_session_keywords(
    client: TestClient, auth: AuthCore, clock: FakeClock
) -> None:
    user = add_user(client, auth)
    token = force_login(
        client, auth, user.id, ttl=timedelta(hours=1), data={"role": "admin"}, ip="10.0.0.1"
    )
    assert client.portal is not None
    session = client.portal.call(auth.sessions.validate, token)
    assert (session.user_id, session.data, session.ip) == (user.id, {"role": "admin"}, "10.0.0.1")
    assert session.expires_at == clock() + timedelta(hours=1)
    clock.advance(hours=1)
    assert client.get("/auth/me").status_code == 401


@pytest.mark.parametrize("cookie_secure", [True, False])
def test_an_https_client(clock: FakeClock, cookie_secure: bool) -> None:
    auth = make_auth(clock, cookie_secure=cookie_secure)
    with TestClient(make_app(auth), base_url="https://testserver") as client:
        user = add_user(client, auth)
        token = force_login(client, auth, user)
        assert client.get("/auth/me").status_code == 200
        assert_session_cookie(only_cookie(client), auth, token, secure=cookie_secure)


def test_it_replaces_the_cookie_of_a_real_login(client: TestClient, auth: AuthCore) -> None:
    """Same name, domain and path as the app's own cookie: one cookie, the latest."""
    add_user(client, auth, "alice")
    bob = add_user(client, auth, "bob")
    response = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert only_cookie(client).secure  # the app's own cookie, Secure: not sent over http
    force_login(client, auth, bob)
    assert client.get("/auth/me").json()["username"] == "bob"
    force_login(client, auth, "nobody-yet")
    assert only_cookie(client).value != ""


def test_logout_deletes_the_cookie(client: TestClient, auth: AuthCore) -> None:
    token = force_login(client, auth, add_user(client, auth))
    assert client.post("/auth/logout").status_code == 204
    assert list(client.cookies.jar) == []
    assert client.get("/auth/me").status_code == 401
    client.cookies.set(auth.cookie_name, token)
    assert client.get("/auth/me").status_code == 401  # revoked, not just forgotten


def test_the_dependencies_still_check_the_user(client: TestClient, auth: AuthCore) -> None:
    force_login(client, auth, "no-such-user")
    assert client.get("/auth/me").status_code == 401
    user = add_user(client, auth)
    assert client.portal is not None
    client.portal.call(auth.users.set_active, user.id, False)
    force_login(client, auth, user)
    assert client.get("/auth/me").status_code == 401


@pytest.mark.parametrize(
    ("user", "keywords"),
    [(42, {}), (None, {}), ("alice", {"colour": "red"}), ("alice", {"data": object()})],
)
def test_bad_arguments_change_nothing(
    client: TestClient, auth: AuthCore, user: Any, keywords: dict[str, Any]
) -> None:
    alice = add_user(client, auth)
    if user == "alice":
        user = alice
    with pytest.raises((TypeError, ValueError)):
        force_login(client, auth, user, **keywords)
    assert list(client.cookies.jar) == []
    assert client.portal is not None
    assert client.portal.call(auth.sessions.list_sessions, alice.id) == []


async def test_async_force_login(auth: AuthCore) -> None:
    app = make_app(auth)
    async with auth.lifespan(app):
        user = await auth.users.create_user("alice", PASSWORD)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/auth/me")).status_code == 401
            token = await async_force_login(client, auth, user, user_agent="pytest")
            me = await client.get("/auth/me")
            assert me.status_code == 200
            assert me.json()["username"] == "alice"
            assert (await auth.sessions.validate(token)).user_agent == "pytest"
            assert_session_cookie(only_cookie(client), auth, token, secure=False)
            with pytest.raises(TypeError):
                await async_force_login(client, auth, 42)
