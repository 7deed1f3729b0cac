"""Audit events: ``AuthCore(on_event=...)`` and the ``authcore.audit`` logger."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import text

from authcore import User
from authcore.fastapi import AuthCore, AuthEvent
from authcore.fastapi._events import EVENT_KINDS
from authcore.testing import FakeClock, fast_hasher

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new pass phrase"
ACCOUNT = {"username": "alice", "password": PASSWORD}


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuthEvent] = []
        self.tokens: list[str] = []

    async def on_event(self, event: AuthEvent) -> None:
        await asyncio.sleep(0)
        self.events.append(event)

    def on_token(self, user: User, token: str, request: Request) -> None:
        self.tokens.append(token)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def make_auth(clock: FakeClock, recorder: Recorder, **kw: Any) -> AuthCore:
    return AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        clock=clock,
        cookie_secure=False,
        on_event=recorder.on_event,
        on_password_reset=recorder.on_token,
        on_verify_email=recorder.on_token,
        **kw,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def auth(clock: FakeClock, recorder: Recorder) -> AuthCore:
    return make_auth(clock, recorder)


@pytest.fixture
def client(auth: AuthCore) -> Iterator[TestClient]:
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    with TestClient(app, headers={"User-Agent": "pytest-agent"}) as client:
        yield client


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def walk_through_every_event(client: TestClient, recorder: Recorder) -> dict[str, Any]:
    """Each kind of event once (twice for logins); what was handed out, for sentinels."""
    secrets: dict[str, Any] = {}
    user = client.post("/auth/register", json={**ACCOUNT, "email": "a@example.com"}).json()
    assert client.post("/auth/login", json={**ACCOUNT, "password": "wrong one"}).status_code == 401
    first = client.post("/auth/login", json=ACCOUNT).json()
    client.cookies.clear()  # else the next login ends this session (fixation)
    second = client.post("/auth/login", json=ACCOUNT).json()
    client.cookies.clear()
    fresh = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    reused = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401  # token_reuse: the family of `first` is revoked
    third = client.post("/auth/login", json=ACCOUNT).json()
    client.cookies.clear()
    sessions = client.get("/auth/sessions", headers=bearer(third)).json()
    other = next(s["id"] for s in sessions if not s["current"])
    assert client.delete(f"/auth/sessions/{other}", headers=bearer(third)).status_code == 204
    assert client.post("/auth/logout-all", headers=bearer(third)).status_code == 200
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert client.post("/auth/password", json=change, headers=bearer(third)).status_code == 200
    assert client.post("/auth/request-verify", headers=bearer(third)).status_code == 202
    assert client.post("/auth/verify", json={"token": recorder.tokens[-1]}).status_code == 200
    assert client.post("/auth/logout", headers=bearer(third)).status_code == 204
    client.post("/auth/forgot-password", json={"username": "alice"})
    reset = {"token": recorder.tokens[-1], "password": PASSWORD}
    assert client.post("/auth/reset-password", json=reset).status_code == 204
    secrets.update(user=user, pairs=[first, second, fresh, third])
    return secrets


def test_every_kind_is_reported(client: TestClient, recorder: Recorder) -> None:
    walk_through_every_event(client, recorder)
    kinds = recorder.kinds()
    assert kinds == [
        "registered",
        "login_failed",
        "login",
        "login",
        "token_reuse",
        "login",
        "session_revoked",
        "logout_all",
        "password_changed",
        "email_verified",
        "logout",
        "password_reset_requested",
        "password_reset",
    ]
    assert set(EVENT_KINDS) - set(kinds) == {"login_throttled"}  # in the throttle tests


def test_events_name_the_user_session_and_client(
    client: TestClient, recorder: Recorder, clock: FakeClock
) -> None:
    secrets = walk_through_every_event(client, recorder)
    user_id = secrets["user"]["id"]
    by_kind = {e.kind: e for e in recorder.events}
    assert by_kind["registered"].user_id == user_id
    assert by_kind["login_failed"].user_id is None  # a failed login names no account
    login = recorder.events[2]
    assert (login.user_id, login.ip, login.user_agent) == (user_id, "testclient", "pytest-agent")
    assert login.session_id is not None
    assert login.at == clock()
    reuse = by_kind["token_reuse"]
    assert (reuse.user_id, reuse.session_id) == (user_id, login.session_id)
    assert by_kind["logout"].session_id is not None
    assert all(isinstance(e, AuthEvent) for e in recorder.events)


def test_token_reuse_is_a_warning_with_the_ids(
    client: TestClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authcore.audit")
    walk_through_every_event(client, recorder)
    audit = [r for r in caplog.records if r.name == "authcore.audit"]
    assert len(audit) == len(recorder.events)
    [warning] = [r for r in audit if r.levelno == logging.WARNING]
    reuse = next(e for e in recorder.events if e.kind == "token_reuse")
    assert warning.getMessage().startswith("token_reuse ")
    assert f"user={reuse.user_id}" in warning.getMessage()
    assert f"session={reuse.session_id}" in warning.getMessage()
    assert {r.levelno for r in audit if r is not warning} == {logging.INFO}


@pytest.mark.parametrize("route", ["/auth/me", "/auth/sessions"])
def test_a_rotated_away_cookie_on_a_protected_route_is_a_token_reuse_event(
    client: TestClient, recorder: Recorder, route: str
) -> None:
    """Not only /refresh: a stolen cookie replayed on any protected route is reported."""
    client.post("/auth/register", json=ACCOUNT)
    pair = client.post("/auth/login", json=ACCOUNT).json()
    user_id = client.get("/auth/me").json()["id"]
    session_id = next(s["id"] for s in client.get("/auth/sessions").json() if s["current"])
    stolen = client.cookies["authcore_session"]
    assert client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).is_success
    client.cookies.clear()
    recorder.events.clear()
    client.cookies["authcore_session"] = stolen
    assert client.get(route).status_code == 401
    [event] = recorder.events
    assert (event.kind, event.user_id, event.session_id) == ("token_reuse", user_id, session_id)


def test_no_event_or_audit_line_carries_a_secret(
    client: TestClient, auth: AuthCore, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = walk_through_every_event(client, recorder)
    engine = auth.engine
    assert engine is not None

    async def hashes() -> list[str]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT password_hash FROM authcore_users"))
            return [str(h) for h in rows.scalars()]

    assert client.portal is not None
    sentinels = [PASSWORD, NEW_PASSWORD, "wrong one", SECRET, *recorder.tokens]
    sentinels += client.portal.call(hashes)
    for pair in secrets["pairs"]:
        sentinels += [pair["access_token"], pair["refresh_token"]]
    shown = [repr(e) for e in recorder.events]
    shown += [logging.Formatter("%(name)s %(message)s").format(r) for r in caplog.records]
    for line in shown:
        assert sum(s in line for s in sentinels) == 0  # a count: never print the secret


@pytest.mark.parametrize("broken", ["sync", "async"])
def test_a_failing_on_event_never_fails_the_request(
    clock: FakeClock, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_hook(event: AuthEvent) -> None:
        raise ValueError("audit sink down")

    async def async_hook(event: AuthEvent) -> None:
        raise ValueError("audit sink down")

    auth = AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        clock=clock,
        on_event=sync_hook if broken == "sync" else async_hook,
    )
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    with TestClient(app) as client:
        assert client.post("/auth/register", json=ACCOUNT).status_code == 201
        assert client.post("/auth/login", json=ACCOUNT).status_code == 200
    failures = [r for r in caplog.records if "on_event hook failed" in r.getMessage()]
    assert len(failures) == 2


def test_a_sync_on_event_works_too(clock: FakeClock) -> None:
    seen: list[str] = []
    auth = AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        clock=clock,
        on_event=lambda event: seen.append(event.kind),
    )
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    with TestClient(app) as client:
        client.post("/auth/register", json=ACCOUNT)
    assert seen == ["registered"]


def test_on_event_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_event"):
        AuthCore(secret_key=SECRET, on_event="log")  # type: ignore[arg-type]


def test_auth_event_is_frozen(clock: FakeClock) -> None:
    event = AuthEvent("login", clock(), "u", "s", None, None)
    with pytest.raises(AttributeError):
        event.kind = "logout"  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sql", "memory"])
async def test_a_reuse_error_names_the_user_and_the_session(backend: str) -> None:
    from authcore import SessionStore, TokenReuseError, create_engine, create_schema
    from authcore import dispose_engine as dispose
    from authcore.testing import InMemorySessionStore

    engine = create_engine("sqlite+aiosqlite://")
    try:
        if backend == "sql":
            await create_schema(engine)
        store = SessionStore(engine) if backend == "sql" else InMemorySessionStore()
        issued = await store.issue_session("alice")
        await store.rotate_session(issued.token)
        with pytest.raises(TokenReuseError) as caught:
            await store.rotate_session(issued.token)
        assert (caught.value.user_id, caught.value.session_id) == ("alice", issued.session.id)
        assert issued.token not in str(caught.value)
    finally:
        await dispose(engine)
