"""``AuthCore(sessions=..., users=...)``: the testing kit's fakes (or any store) plugged in.

Also the races a route must survive, made deterministic by a store that lets
a "concurrent" request act at the worst moment.
"""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from authcore import (
    IssuedSession,
    User,
    UserExistsError,
    UserStore,
    create_engine,
    create_schema,
    dispose_engine,
)
from authcore.fastapi import AuthCore
from authcore.testing import FakeClock, InMemorySessionStore, fast_hasher

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"


class DictUserStore:
    """A user store in a dict: the smallest object with the contract's methods."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[User, str]] = {}

    async def create_user(self, username: str, password: str) -> User:
        if await self.get_user_by_username(username) is not None:
            raise UserExistsError("taken")
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "username": username,
            "email": None,
            "is_active": True,
            "is_verified": False,
            "created_at": datetime.now(UTC),
            "last_login_at": None,
        }
        # The fields User has in this version (email and is_verified are recent).
        user = User(**{f.name: values[f.name] for f in dataclasses.fields(User)})
        self.users[user.id] = (user, password)
        return user

    async def authenticate(self, username: str, password: str) -> User | None:
        user = await self.get_user_by_username(username)
        return user if user is not None and self.users[user.id][1] == password else None

    async def get_user(self, user_id: Any) -> User | None:
        found = self.users.get(str(user_id))
        return None if found is None else found[0]

    async def get_user_by_username(self, username: str) -> User | None:
        wanted = username.casefold()
        return next((u for u, _ in self.users.values() if u.username.casefold() == wanted), None)

    async def set_password(self, user_id: Any, new_password: str) -> None:
        user, _ = self.users[str(user_id)]
        self.users[user.id] = (user, new_password)

    async def set_active(self, user_id: Any, active: bool) -> None:
        user, password = self.users[str(user_id)]
        self.users[user.id] = (dataclasses.replace(user, is_active=active), password)


def make_app(auth: AuthCore) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)

    @app.get("/private")
    async def private(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, str]:
        return {"user": user.username}

    return app


def flow(client: TestClient) -> None:
    """Register, log in, use, refresh, log out: the app works end to end."""
    account = {"username": "alice", "password": PASSWORD}
    assert client.post("/auth/register", json=account).status_code == 201
    pair = client.post("/auth/login", data=account).json()
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.get("/private", headers=headers).json() == {"user": "alice"}
    new = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    assert client.get("/private", headers=headers).status_code == 401  # rotated away
    headers = {"Authorization": f"Bearer {new['access_token']}"}
    assert client.post("/auth/logout", headers=headers).status_code == 204
    assert client.get("/private", headers=headers).status_code == 401


def test_both_stores_injected_need_no_database(tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    sessions = InMemorySessionStore()
    auth = AuthCore(
        database_url=f"sqlite+aiosqlite:///{database}",
        secret_key=SECRET,
        sessions=sessions,
        users=DictUserStore(),
        cookie_secure=False,
    )
    assert auth.engine is None
    assert auth.sessions is sessions  # an empty store is falsy, still the one given
    assert "engine=None" in repr(auth)
    with TestClient(make_app(auth)) as client:
        flow(client)
    assert not database.exists()
    assert len(sessions) == 2  # the rotated-away session and the logged-out one


async def test_injected_stores_on_an_engine_of_the_app(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        await create_schema(engine)
        users = UserStore(engine, hasher=fast_hasher())
        auth = AuthCore(
            secret_key=SECRET, engine=engine, sessions=InMemorySessionStore(), users=users
        )
        assert auth.engine is engine
        async with auth.lifespan(FastAPI()):
            await users.create_user("alice", PASSWORD)
        # The lifespan disposes only an engine AuthCore created: this one still works.
        assert await users.get_user_by_username("alice") is not None
    finally:
        await dispose_engine(engine)


def test_one_store_injected_the_other_on_the_engine(tmp_path: Path) -> None:
    sessions = InMemorySessionStore()
    auth = AuthCore(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'users.db'}",
        secret_key=SECRET,
        hasher=fast_hasher(),
        sessions=sessions,
        cookie_secure=False,
    )
    assert auth.engine is not None
    assert isinstance(auth.users, UserStore)
    with TestClient(make_app(auth)) as client:
        flow(client)
    assert (tmp_path / "users.db").exists()
    assert len(sessions) == 2


# -- races made deterministic ------------------------------------------------------


class Meddling(InMemorySessionStore):
    """A store where another request acts right after each write returned."""

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.meddle = False

    async def issue_session(self, user_id: Any, **kw: Any) -> IssuedSession:
        issued = await super().issue_session(user_id, **kw)
        if self.meddle:  # a concurrent logout-all
            await self.revoke_all(user_id)
        return issued

    async def rotate_session(self, token: str) -> IssuedSession:
        issued = await super().rotate_session(token)
        if self.meddle:  # a concurrent refresh of the same token: reuse, family revoked
            await self.get_session(token)
        return issued


@pytest.fixture
def meddling() -> Meddling:
    return Meddling()


@pytest.fixture
def client(meddling: Meddling) -> Iterator[TestClient]:
    auth = AuthCore(secret_key=SECRET, sessions=meddling, users=DictUserStore())
    with TestClient(make_app(auth), base_url="https://testserver") as client:
        yield client


def test_a_login_whose_session_is_revoked_at_once_is_no_500(
    client: TestClient, meddling: Meddling
) -> None:
    account = {"username": "alice", "password": PASSWORD}
    client.post("/auth/register", json=account)
    meddling.meddle = True
    response = client.post("/auth/login", data=account)
    assert response.status_code == 200  # the answer is what was written: no re-read
    assert client.get("/private").status_code == 401  # and the session is over


def test_a_refresh_whose_successor_is_revoked_at_once_is_no_500(
    client: TestClient, meddling: Meddling
) -> None:
    account = {"username": "alice", "password": PASSWORD}
    client.post("/auth/register", json=account)
    pair = client.post("/auth/login", data=account).json()
    meddling.meddle = True
    response = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200
    assert client.get("/private").status_code == 401


def test_a_password_change_whose_session_ends_meanwhile_is_no_500(
    client: TestClient, meddling: Meddling
) -> None:
    account = {"username": "alice", "password": PASSWORD}
    client.post("/auth/register", json=account)
    client.post("/auth/login", data=account)
    meddling.meddle = True
    new = "another horse battery staple"
    response = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": new}
    )
    assert response.status_code == 200
    assert response.json() == {"revoked": 0, "rotated": True}
    assert client.post("/auth/login", data={"username": "alice", "password": new}).is_success


# -- store options passed through ----------------------------------------------------


def test_rotation_grace_lets_two_tabs_refresh_at_once() -> None:
    auth = AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        rotation_grace=timedelta(seconds=30),
    )
    with TestClient(make_app(auth), base_url="https://testserver") as client:
        account = {"username": "alice", "password": PASSWORD}
        client.post("/auth/register", json=account)
        pair = client.post("/auth/login", data=account).json()
        client.cookies.clear()
        body = {"refresh_token": pair["refresh_token"]}
        first, second = (client.post("/auth/refresh", json=body) for _ in range(2))
        assert (first.status_code, second.status_code) == (200, 200)
        for answer in (first.json(), second.json()):
            headers = {"Authorization": f"Bearer {answer['access_token']}"}
            assert client.get("/private", headers=headers).status_code == 200


def test_max_sessions_per_user_ends_the_least_recently_seen() -> None:
    auth = AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        max_sessions_per_user=2,
    )
    with TestClient(make_app(auth), base_url="https://testserver") as client:
        account = {"username": "alice", "password": PASSWORD}
        client.post("/auth/register", json=account)
        pairs = []
        for _ in range(3):
            pairs.append(client.post("/auth/login", data=account).json())
            client.cookies.clear()
        alive = [
            client.get("/private", headers={"Authorization": f"Bearer {p['access_token']}"})
            for p in pairs
        ]
        assert [r.status_code for r in alive] == [401, 200, 200]


# -- the package's shape ---------------------------------------------------------------


def test_the_integration_modules_form_no_cycle_and_share_no_private_names() -> None:
    import ast
    import graphlib

    import authcore.fastapi

    folder = Path(authcore.fastapi.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("authcore"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"
                if (node.module or "").startswith("authcore.fastapi."):
                    imported.add(node.module or "")
        graph[f"authcore.fastapi.{path.stem}"] = imported
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle
