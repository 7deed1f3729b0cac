"""A login that verified the old password while the password changed leaves no session.

``POST /auth/login`` verifies the password (bcrypt, a quarter of a second in
production), then creates a session. A password change that sets the new
hash and revokes the user's sessions in between must not leave the old
password holding the session made just after. Each test stops the login at a
gate (no sleeps): during the verification, or after ``authenticate`` has
returned; runs the change while it waits; then lets it go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from authcore import PasswordHasher, User, UserStore, create_engine, dispose_engine
from authcore.fastapi import AuthCore
from authcore.testing import InMemorySessionStore, InMemoryUserStore, fast_hasher
from authcore.users import BaseUserStore
from authcore.users._receipt import watch_logins

SECRET = "a-login-race-secret-key-of-sufficient-length-0123"
OLD = "plum-kettle-88-orbit"
NEW = "quartz-lantern-19-meadow"
BAD_LOGIN = {"detail": "Incorrect username or password"}
STUCK = 30  # seconds: only a bound on a hang, never reached when the code is right


class Gate:
    """Stops the first call to :meth:`pause` after :meth:`arm` until :meth:`open`."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = asyncio.Event()
        self.released = asyncio.Event()

    def arm(self) -> None:
        self.armed = True

    def open(self) -> None:
        self.released.set()

    async def pause(self) -> None:
        if self.armed:
            self.armed = False
            self.reached.set()
            await self.released.wait()


class GatedHasher(PasswordHasher):
    """Stops a login between its bcrypt verification and its recording."""

    def __init__(self, gate: Gate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        result = await super().verify_and_update(password, hashed)
        await self.gate.pause()
        return result


class Gated(BaseUserStore):
    """Stops a login after ``authenticate`` returned, before its session exists (a mixin)."""

    gate: Gate

    async def authenticate(self, username: str, password: str) -> User | None:
        user = await super().authenticate(username, password)
        await self.gate.pause()
        return user


class GatedUserStore(Gated, UserStore):
    """:class:`Gated` on the database."""


class GatedInMemoryUserStore(Gated, InMemoryUserStore):
    """:class:`Gated` in memory."""


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"]


def database_url(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database for *store*: a SQLite file, or a fresh PostgreSQL database."""
    if store == "postgres":
        return str(request.getfixturevalue("postgres_database"))
    return f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"


def build(store: str, where: str, gate: Gate, url: str, **kw: Any) -> AuthCore:
    """An app on *store* (``sqlite``, ``postgres`` or ``memory``) that stops logins at *where*."""
    kw.update(secret_key=SECRET, cookie_secure=False)
    hasher = GatedHasher(gate, rounds=4) if where == "verify" else fast_hasher()
    if where == "verify":
        if store != "memory":
            return AuthCore(database_url=url, hasher=hasher, **kw)
        users: Any = InMemoryUserStore(hasher=hasher)
        return AuthCore(sessions=InMemorySessionStore(), users=users, **kw)
    if store != "memory":
        engine = create_engine(url)
        users = GatedUserStore(engine, hasher=hasher)
        users.gate = gate
        return AuthCore(engine=engine, hasher=hasher, users=users, **kw)
    users = GatedInMemoryUserStore(hasher=hasher)
    users.gate = gate
    return AuthCore(sessions=InMemorySessionStore(), users=users, **kw)


@asynccontextmanager
async def serving(auth: AuthCore) -> AsyncIterator[Callable[[], httpx2.AsyncClient]]:
    """The app running (lifespan entered); makes clients with a cookie jar each.

    Disposes the app's engine at the end, also one the test made (the lifespan
    disposes only an engine it created; disposing twice is safe).
    """
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    try:
        async with auth.lifespan(app):
            transport = httpx2.ASGITransport(app=app)

            def client() -> httpx2.AsyncClient:
                return httpx2.AsyncClient(transport=transport, base_url="http://testserver")

            yield client
    finally:
        if auth.engine is not None:
            assert await dispose_engine(auth.engine)


async def login(client: httpx2.AsyncClient, password: str) -> httpx2.Response:
    return await client.post("/auth/login", data={"username": "alice", "password": password})


Change = Callable[[AuthCore, User, httpx2.AsyncClient, str], Awaitable[int]]


async def by_auth(auth: AuthCore, user: User, victim: httpx2.AsyncClient, token: str) -> int:
    """``AuthCore.set_password`` (sets the hash, revokes every session); sessions left."""
    await auth.set_password(user.id, NEW)
    return 0


async def by_route(auth: AuthCore, user: User, victim: httpx2.AsyncClient, token: str) -> int:
    """``POST /auth/password`` from the victim's session, which stays."""
    body = {"current_password": OLD, "new_password": NEW}
    headers = {"Authorization": f"Bearer {token}"}
    answer = await victim.post("/auth/password", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return 1


async def by_reset(auth: AuthCore, user: User, victim: httpx2.AsyncClient, token: str) -> int:
    """A reset token redeemed over ``POST /auth/reset-password`` ends every session."""
    reset = await auth.users.make_reset_token(user.id)
    body = {"token": reset, "password": NEW}
    answer = await victim.post("/auth/reset-password", json=body)
    assert answer.status_code < 300, answer.text
    return 0


async def by_deactivating(
    auth: AuthCore, user: User, victim: httpx2.AsyncClient, token: str
) -> int:
    """Not a password change: the user deactivated (and logged out) meanwhile."""
    await auth.set_active(user.id, False)
    return 0


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("where", ["verify", "authenticated"])
@pytest.mark.parametrize(
    "change",
    [by_auth, by_route, by_reset, by_deactivating],
    ids=["set_password", "route", "reset", "deactivate"],
)
async def test_a_login_racing_a_password_change_gets_no_session(
    store: str, where: str, change: Change, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gate = Gate()
    auth = build(store, where, gate, database_url(store, request, tmp_path))
    async with serving(auth) as client, client() as attacker, client() as victim:
        user = await auth.users.create_user("alice", OLD)
        mine = await login(victim, OLD)
        assert mine.status_code == 200
        gate.arm()
        racing = asyncio.ensure_future(login(attacker, OLD))
        await asyncio.wait_for(gate.reached.wait(), STUCK)  # the old password was verified
        left = await change(auth, user, victim, mine.json()["access_token"])
        gate.open()
        answer = await asyncio.wait_for(racing, STUCK)
        assert answer.status_code == 401
        assert answer.json() == BAD_LOGIN
        assert "set-cookie" not in answer.headers
        assert len(await auth.sessions.list_sessions(user.id)) == left  # the victim's, if kept
        if change is not by_deactivating:
            assert (await login(attacker, OLD)).status_code == 401
            assert (await login(attacker, NEW)).status_code == 200


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_a_browser_login_racing_a_change_goes_back_to_the_login_page(
    store: str, tmp_path: Any
) -> None:
    gate = Gate()
    url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
    auth = build(store, "verify", gate, url, login_page_url="/sign-in")
    form = {"username": "alice", "password": OLD, "next": "/inbox"}
    async with serving(auth) as client, client() as attacker:
        user = await auth.users.create_user("alice", OLD)
        gate.arm()
        headers = {"Origin": "http://testserver"}
        racing = asyncio.ensure_future(attacker.post("/auth/login", data=form, headers=headers))
        await asyncio.wait_for(gate.reached.wait(), STUCK)
        await auth.set_password(user.id, NEW)
        gate.open()
        answer = await asyncio.wait_for(racing, STUCK)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/sign-in?error=invalid&next=%2Finbox"
        assert "set-cookie" not in answer.headers
        assert await auth.sessions.list_sessions(user.id) == []
        form["password"] = NEW
        answer = await attacker.post("/auth/login", data=form, headers=headers)
        assert (answer.status_code, answer.headers["location"]) == (303, "/inbox")


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_a_login_without_a_race_keeps_its_session(store: str, tmp_path: Any) -> None:
    gate = Gate()  # never armed
    auth = build(store, "authenticated", gate, f"sqlite+aiosqlite:///{tmp_path / 'race.db'}")
    async with serving(auth) as client, client() as alice:
        user = await auth.users.create_user("alice", OLD)
        answer = await login(alice, OLD)
        assert answer.status_code == 200
        assert "authcore_session" in answer.headers["set-cookie"]
        [session] = await auth.sessions.list_sessions(user.id)
        assert (await auth.sessions.validate(answer.json()["refresh_token"])).id == session.id
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        assert (await alice.get("/auth/me", headers=headers)).status_code == 200
        assert (await login(alice, "not-the-password")).status_code == 401


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_a_login_that_upgrades_the_hash_keeps_its_session(store: str, tmp_path: Any) -> None:
    gate = Gate()
    auth = build(store, "authenticated", gate, f"sqlite+aiosqlite:///{tmp_path / 'race.db'}")
    async with serving(auth) as client, client() as alice:
        users: Any = auth.users
        user = await users.create_user("alice", OLD)  # 4 rounds
        before = (await users._load("id", user.id)).password_hash
        users.hasher = PasswordHasher(rounds=5)  # now 4 rounds is outdated
        answer = await login(alice, OLD)
        assert answer.status_code == 200
        after = (await users._load("id", user.id)).password_hash
        assert after != before  # upgraded by the login itself, which still kept its session
        assert len(await auth.sessions.list_sessions(user.id)) == 1
        assert (await login(alice, OLD)).status_code == 200  # and the upgrade verifies


async def test_the_receipt_notes_only_a_watched_authenticate() -> None:
    users = InMemoryUserStore(hasher=fast_hasher())
    user = await users.create_user("alice", OLD)
    assert await users.authenticate("alice", OLD) is not None  # unwatched: nothing to note
    with watch_logins() as receipt:
        assert repr(receipt) == "LoginReceipt(noted=False)"
        assert await receipt.still_current(user.id)  # nothing noted: nothing to re-check
        assert await users.authenticate("alice", "not-the-password") is None
        assert repr(receipt) == "LoginReceipt(noted=False)"
        assert await users.authenticate("alice", OLD) is not None
    assert repr(receipt) == "LoginReceipt(noted=True)"  # the fingerprint stays out
    assert await receipt.still_current(user.id)
    assert await receipt.still_current("0" * 32)  # another user: not what was noted
    await users.set_password(user.id, NEW)
    assert not await receipt.still_current(user.id)
