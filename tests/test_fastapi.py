"""The FastAPI integration through FastAPI's TestClient: routes, dependencies, CSRF, errors."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from authcore import (
    AuthSession,
    InvalidTokenError,
    TokenReuseError,
    TokenRevokedError,
    User,
    create_engine,
    dispose_engine,
    parse_token,
)
from authcore.fastapi import AuthCore
from authcore.testing import FakeClock, fast_hasher

from .pgserver import PostgresServer

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"
NOT_AUTHENTICATED = {"detail": "Not authenticated"}


def make_app(auth: AuthCore) -> FastAPI:
    """An app with authcore's router and a few routes of its own."""
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)

    @app.get("/private")
    async def private(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, str]:
        return {"user": user.username}

    @app.post("/private")
    async def private_post(
        session: Annotated[AuthSession, Depends(auth.current_session)],
    ) -> dict[str, str]:
        return {"session": session.id}

    @app.get("/maybe")
    async def maybe(
        session: Annotated[AuthSession | None, Depends(auth.optional_session)],
    ) -> dict[str, str | None]:
        return {"session": None if session is None else session.id}

    return app


def make_auth(clock: FakeClock, database_url: str = "sqlite+aiosqlite://", **kw: Any) -> AuthCore:
    kw.setdefault("cookie_secure", False)
    kw.setdefault("idle_timeout", timedelta(hours=1))
    return AuthCore(
        database_url=database_url, secret_key=SECRET, hasher=fast_hasher(), clock=clock, **kw
    )


@pytest.fixture
def auth(clock: FakeClock) -> AuthCore:
    return make_auth(clock)


@pytest.fixture
def client(auth: AuthCore) -> Iterator[TestClient]:
    with TestClient(make_app(auth)) as client:
        yield client


def register(client: TestClient, username: str = "alice", password: str = PASSWORD) -> str:
    response = client.post("/auth/register", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def login(client: TestClient, username: str = "alice", password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/login", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def call(client: TestClient, fn: Any, *args: Any) -> Any:
    """Run a store coroutine on the app's event loop."""
    assert client.portal is not None
    return client.portal.call(fn, *args)


def set_cookie_header(response: Any) -> str:
    return str(response.headers["set-cookie"])


# -- register ------------------------------------------------------------------


def test_register_creates_a_user(client: TestClient) -> None:
    response = client.post("/auth/register", json={"username": "Alice", "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "username": "Alice",
        "email": None,
        "is_active": True,
        "is_verified": False,
    }
    assert PASSWORD not in response.text


def test_register_taken_username_is_409_case_insensitively(client: TestClient) -> None:
    register(client, "alice")
    response = client.post("/auth/register", json={"username": "ALICE", "password": PASSWORD})
    assert response.status_code == 409
    assert PASSWORD not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"username": "bob", "password": ""},
        {"username": "bob", "password": "x" * 1025},
        {"username": "", "password": PASSWORD},
        {"username": "b" * 151, "password": PASSWORD},
        {"username": "bob"},
        {"password": PASSWORD},
        {"username": 5, "password": PASSWORD},
    ],
    ids=["empty-pw", "long-pw", "empty-name", "long-name", "no-pw", "no-name", "int-name"],
)
def test_register_refuses_bad_input_with_422(
    client: TestClient, auth: AuthCore, body: dict[str, Any]
) -> None:
    response = client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert call(client, auth.users.get_user_by_username, "bob") is None


# -- login ---------------------------------------------------------------------


def test_login_returns_a_jwt_for_the_session_and_the_refresh_token(
    client: TestClient, auth: AuthCore
) -> None:
    user_id = register(client)
    pair = login(client)
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 15 * 60
    assert parse_token(pair["refresh_token"]).user_id == user_id
    session = call(client, auth.sessions.validate, pair["refresh_token"])
    claims = auth.jwt.verify(pair["access_token"])
    assert claims["sub"] == user_id
    assert claims["sid"] == session.id


def test_login_records_ip_and_user_agent(auth: AuthCore) -> None:
    with TestClient(make_app(auth), client=("2001:db8::7", 50000)) as client:
        user_id = register(client)
        client.post(
            "/auth/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"User-Agent": "Firefox/140 " + "x" * 600},
        )
        [session] = call(client, auth.sessions.list_sessions, user_id)
    assert session.ip == "2001:db8::7"
    assert session.user_agent.startswith("Firefox/140")
    assert len(session.user_agent) == 512  # cut, not refused


@pytest.mark.parametrize(
    "host", ["testclient", "<script>", "1" * 65, "x" * 5000, "::1%" + "z" * 80]
)
def test_a_client_address_that_is_no_ip_is_not_stored(auth: AuthCore, host: str) -> None:
    # What the server gives as the peer (uvicorn takes it from X-Forwarded-For
    # behind a trusted proxy) is never a reason for a 5xx, nor shown as an IP.
    with TestClient(make_app(auth), client=(host, 1)) as client:
        user_id = register(client)
        response = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
        assert response.status_code == 200, response.text
        [session] = call(client, auth.sessions.list_sessions, user_id)
    assert session.ip is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://[::1"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "\x00" * 3},
        {"Authorization": "Bearer " + "a" * 9000},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Cookie": "authcore_session=" + "token_" + "9" * 600},
        {"Cookie": "authcore_session=token_~_1_" + "0" * 64},
        {"Cookie": 'authcore_session="\\";'},
        {"User-Agent": b"\xe9" * 5000},
        {"User-Agent": "\u00e9".encode() * 300, "Origin": b"http://\xc3\xa9"},
    ],
)
def test_nothing_a_client_sends_in_headers_is_a_5xx(
    client: TestClient, headers: dict[str, str | bytes]
) -> None:
    register(client)
    pair = login(client)
    client.cookies.clear()
    calls = [
        ("POST", "/auth/login", {"data": {"username": "alice", "password": PASSWORD}}),
        ("POST", "/auth/refresh", {"json": {"refresh_token": pair["refresh_token"]}}),
        ("POST", "/auth/logout", {}),
        ("POST", "/auth/logout-all", {}),
        ("GET", "/auth/sessions", {}),
        ("DELETE", "/auth/sessions/" + "x" * 5000, {}),
        ("GET", "/maybe", {}),
        ("POST", "/private", {}),
    ]
    for method, path, kwargs in calls:
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 500, (method, path, response.text)


def test_login_sets_a_safe_session_cookie(client: TestClient) -> None:
    register(client)
    response = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    cookie = set_cookie_header(response)
    assert cookie.startswith(f"authcore_session={response.json()['refresh_token']};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/", f"max-age={14 * 24 * 3600}"} <= attributes
    assert "secure" not in attributes  # cookie_secure=False in these tests


def test_cookie_is_secure_by_default(clock: FakeClock) -> None:
    auth = make_auth(clock, cookie_secure=True)
    with TestClient(make_app(auth), base_url="https://testserver") as client:
        register(client)
        response = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
        assert "secure" in {p.strip().lower() for p in set_cookie_header(response).split(";")}
        assert client.get("/private").json() == {"user": "alice"}  # sent back over HTTPS


def test_failed_logins_are_indistinguishable(client: TestClient, auth: AuthCore) -> None:
    user_id = register(client)
    register(client, "carol")
    call(client, auth.users.set_active, user_id, False)
    answers = [
        client.post("/auth/login", data={"username": name, "password": password})
        for name, password in [
            ("alice", PASSWORD),  # inactive
            ("carol", "wrong password"),
            ("nobody", PASSWORD),
            ("carol", "x" * 2000),  # over the password policy's limit
        ]
    ]
    assert {r.status_code for r in answers} == {401}
    assert {r.text for r in answers} == {'{"detail":"Incorrect username or password"}'}
    assert {r.headers["www-authenticate"] for r in answers} == {"Bearer"}
    assert all("set-cookie" not in r.headers for r in answers)


def test_login_revokes_the_session_it_was_sent_with(client: TestClient, auth: AuthCore) -> None:
    register(client)
    first = login(client)  # the client now holds first's cookie
    second = login(client)
    with pytest.raises(TokenRevokedError):
        call(client, auth.sessions.validate, first["refresh_token"])
    call(client, auth.sessions.validate, second["refresh_token"])
    client.cookies.clear()
    third = client.post(
        "/auth/login", data={"username": "alice", "password": PASSWORD}, headers=bearer(second)
    )
    assert third.status_code == 200
    with pytest.raises(TokenRevokedError):
        call(client, auth.sessions.validate, second["refresh_token"])


def test_a_failed_login_revokes_nothing(client: TestClient, auth: AuthCore) -> None:
    register(client)
    pair = login(client)
    response = client.post("/auth/login", data={"username": "alice", "password": "wrong"})
    assert response.status_code == 401
    call(client, auth.sessions.validate, pair["refresh_token"])


# -- refresh -------------------------------------------------------------------


def test_refresh_rotates_and_sets_the_new_cookie(client: TestClient, auth: AuthCore) -> None:
    register(client)
    old = login(client)
    response = client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert response.status_code == 200
    new = response.json()
    assert new["refresh_token"] != old["refresh_token"]
    assert set_cookie_header(response).startswith(f"authcore_session={new['refresh_token']};")
    assert client.get("/private", headers=bearer(new)).status_code == 200
    assert client.get("/private", headers=bearer(old)).status_code == 401


def test_replayed_refresh_token_revokes_the_family(client: TestClient, auth: AuthCore) -> None:
    register(client)
    old = login(client)
    new = client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]}).json()
    replay = client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json() == NOT_AUTHENTICATED
    with pytest.raises(TokenRevokedError):  # revoked with its whole family
        call(client, auth.sessions.validate, new["refresh_token"])
    with pytest.raises(TokenReuseError):
        call(client, auth.sessions.validate, old["refresh_token"])
    assert client.get("/private", headers=bearer(new)).status_code == 401


@pytest.mark.parametrize(
    "token", ["", "garbage", "token_alice_1_" + "0" * 64, "x" * 100_000], ids=str.__len__
)
def test_refresh_refuses_bad_tokens(client: TestClient, token: str) -> None:
    response = client.post("/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED


def test_refresh_for_an_inactive_user_is_401(client: TestClient, auth: AuthCore) -> None:
    user_id = register(client)
    pair = login(client)
    call(client, auth.users.set_active, user_id, False)
    response = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401
    assert call(client, auth.sessions.list_sessions, user_id) == []


# -- logout, sessions ----------------------------------------------------------


def test_logout_acts_at_once_and_clears_the_cookie(client: TestClient, auth: AuthCore) -> None:
    register(client)
    pair = login(client)
    response = client.post("/auth/logout", headers=bearer(pair))
    assert response.status_code == 204
    assert "max-age=0" in set_cookie_header(response).lower()
    assert client.get("/private", headers=bearer(pair)).status_code == 401
    with pytest.raises(TokenRevokedError):
        call(client, auth.sessions.validate, pair["refresh_token"])


@pytest.mark.parametrize("grace", [timedelta(0), timedelta(seconds=30)], ids=["no-grace", "grace"])
def test_logout_of_a_cookie_a_concurrent_refresh_rotated_away_ends_the_successor(
    clock: FakeClock, grace: timedelta
) -> None:
    auth = make_auth(clock, rotation_grace=grace)
    with TestClient(make_app(auth)) as client:
        user_id = register(client)
        pair = login(client)
        client.cookies.clear()
        call(client, auth.sessions.rotate, pair["refresh_token"])  # the refresh won the race
        response = client.post(
            "/auth/logout", headers={"Cookie": f"authcore_session={pair['refresh_token']}"}
        )
        assert response.status_code == 204
        assert call(client, auth.sessions.list_sessions, user_id) == []


def test_logout_with_an_access_token_whose_session_was_rotated_away_ends_the_successor(
    client: TestClient, auth: AuthCore
) -> None:
    user_id = register(client)
    pair = login(client)
    client.cookies.clear()
    new = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    client.cookies.clear()
    # The refresh won a race with this logout, made with the old access token.
    assert client.post("/auth/logout", headers=bearer(pair)).status_code == 204
    assert call(client, auth.sessions.list_sessions, user_id) == []
    assert client.get("/private", headers=bearer(new)).status_code == 401
    assert client.post("/auth/logout", headers=bearer(new)).status_code == 401
    assert client.post("/auth/logout", headers=bearer(pair)).status_code == 401


def test_logout_without_credentials_is_401(client: TestClient) -> None:
    assert client.post("/auth/logout").status_code == 401
    assert client.post("/auth/logout", headers={"Authorization": "Bearer x"}).status_code == 401
    garbage = {"Cookie": "authcore_session=token_u_1_" + "0" * 64}
    assert client.post("/auth/logout", headers=garbage).status_code == 401


def test_logout_with_the_cookie(client: TestClient) -> None:
    register(client)
    login(client)
    assert client.post("/auth/logout").status_code == 204
    assert not client.cookies
    assert client.get("/private").status_code == 401


def test_logout_all_keeps_only_the_current_session(client: TestClient) -> None:
    register(client)
    others = []
    for _ in range(3):
        others.append(login(client))
        client.cookies.clear()  # else each login revokes the one before (fixation)
    mine = login(client)
    response = client.post("/auth/logout-all", headers=bearer(mine))
    assert response.json() == {"revoked": 3}
    assert client.get("/private", headers=bearer(mine)).status_code == 200
    assert {client.get("/private", headers=bearer(p)).status_code for p in others} == {401}


def test_sessions_lists_devices_without_tokens(client: TestClient, clock: FakeClock) -> None:
    register(client)
    first = login(client)
    clock.advance(seconds=5)
    client.cookies.clear()
    second = login(client)
    response = client.get("/auth/sessions", headers=bearer(second))
    assert response.status_code == 200
    listed = response.json()
    assert [s["current"] for s in listed] == [True, False]  # newest first
    assert set(listed[0]) == {
        "id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "user_agent",
        "current",
    }
    assert listed[0]["created_at"].endswith("+00:00")
    for pair in (first, second):
        assert pair["refresh_token"] not in response.text
        assert parse_token(pair["refresh_token"]).secret not in response.text


def test_delete_session_by_id(client: TestClient, auth: AuthCore) -> None:
    register(client)
    register(client, "mallory")
    victim = login(client)
    client.cookies.clear()
    mine = login(client)
    client.cookies.clear()
    mallory = login(client, "mallory")
    victim_sid = auth.jwt.verify(victim["access_token"])["sid"]
    # Someone else's session: 404, and it stays valid.
    refused = client.delete(f"/auth/sessions/{victim_sid}", headers=bearer(mallory))
    assert refused.status_code == 404
    assert client.get("/private", headers=bearer(victim)).status_code == 200
    for unknown in ["nope", "x" * 200, "%00"]:
        assert client.delete(f"/auth/sessions/{unknown}", headers=bearer(mine)).status_code == 404
    assert client.delete(f"/auth/sessions/{victim_sid}", headers=bearer(mine)).status_code == 204
    assert client.get("/private", headers=bearer(victim)).status_code == 401
    assert client.delete(f"/auth/sessions/{victim_sid}", headers=bearer(mine)).status_code == 404


def test_deleting_the_current_cookie_session_clears_the_cookie(
    client: TestClient, auth: AuthCore
) -> None:
    register(client)
    pair = login(client)
    sid = auth.jwt.verify(pair["access_token"])["sid"]
    response = client.delete(f"/auth/sessions/{sid}")
    assert response.status_code == 204
    assert "max-age=0" in set_cookie_header(response).lower()


def test_me(client: TestClient) -> None:
    user_id = register(client, "Alice")
    pair = login(client, "alice")
    assert client.get("/auth/me", headers=bearer(pair)).json() == {
        "id": user_id,
        "username": "Alice",
        "email": None,
        "is_active": True,
        "is_verified": False,
    }


# -- password ------------------------------------------------------------------


def test_password_change_with_the_cookie_rotates_it(client: TestClient, auth: AuthCore) -> None:
    register(client)
    other = login(client)
    client.cookies.clear()
    mine = login(client)
    response = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": "a new passphrase"}
    )
    assert response.status_code == 200
    assert response.json() == {"revoked": 1, "rotated": True}
    new_cookie = client.cookies["authcore_session"]
    assert new_cookie != mine["refresh_token"]
    assert client.get("/private").status_code == 200  # the new cookie works
    # Only the rotated session is left (presenting the old token would be reuse).
    [left] = call(client, auth.sessions.list_sessions, parse_token(new_cookie).user_id)
    assert left.id != auth.jwt.verify(mine["access_token"])["sid"]
    assert client.get("/private", headers=bearer(other)).status_code == 401
    client.cookies.clear()
    assert (
        client.post("/auth/login", data={"username": "alice", "password": PASSWORD}).status_code
        == 401
    )
    login(client, password="a new passphrase")


def test_password_change_with_a_bearer_keeps_the_session(client: TestClient) -> None:
    register(client)
    pair = login(client)
    client.cookies.clear()
    response = client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "a new passphrase"},
        headers=bearer(pair),
    )
    assert response.json() == {"revoked": 0, "rotated": False}
    assert "set-cookie" not in response.headers
    assert client.get("/private", headers=bearer(pair)).status_code == 200


@pytest.mark.parametrize(
    ("current", "new", "status"),
    [("wrong", "a new passphrase", 400), ("", "a new passphrase", 400), (PASSWORD, "", 422)],
)
def test_password_change_refusals_change_nothing(
    client: TestClient, current: str, new: str, status: int
) -> None:
    register(client)
    pair = login(client)
    response = client.post(
        "/auth/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(pair),
    )
    assert response.status_code == status
    assert client.get("/private", headers=bearer(pair)).status_code == 200
    client.cookies.clear()
    login(client)  # the old password still works


# -- dependencies --------------------------------------------------------------


def test_dependencies_refuse_every_bad_credential_alike(
    client: TestClient, auth: AuthCore, clock: FakeClock
) -> None:
    user_id = register(client)
    register(client, "bob")
    pair = login(client)
    client.cookies.clear()
    bob = login(client, "bob")
    client.cookies.clear()
    sid = auth.jwt.verify(pair["access_token"])["sid"]
    no_sid = auth.jwt.issue(user_id)
    wrong_sub = auth.jwt.issue(auth.jwt.verify(bob["access_token"])["sub"], session_id=sid)
    other_key = AuthCore(secret_key="another-key-that-is-also-long-enough!!").jwt.issue(
        user_id, session_id=sid
    )
    headers = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {pair['refresh_token']}"},  # the opaque token is no JWT
        {"Authorization": f"Bearer {no_sid}"},
        {"Authorization": f"Bearer {wrong_sub}"},
        {"Authorization": f"Bearer {other_key}"},
    ]
    answers = [client.get("/private", headers=h) for h in headers]
    answers.append(client.get(f"/private?access_token={pair['access_token']}"))
    answers.append(client.get(f"/private?token={pair['refresh_token']}"))
    clock.advance(minutes=16)  # past the JWT's exp
    answers.append(client.get("/private", headers=bearer(pair)))
    for response in answers:
        assert response.status_code == 401
        assert response.json() == NOT_AUTHENTICATED
        assert response.headers["www-authenticate"] == "Bearer"


def test_idle_sessions_end_for_jwts_too(client: TestClient, clock: FakeClock) -> None:
    register(client)
    pair = login(client)
    client.cookies.clear()
    clock.advance(minutes=61)  # idle_timeout is an hour; the JWT's exp is 15 minutes
    fresh = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert fresh.status_code == 401


def test_an_inactive_user_is_refused_even_with_live_sessions(
    client: TestClient, auth: AuthCore
) -> None:
    user_id = register(client)
    pair = login(client)
    call(client, auth.users.set_active, user_id, False)  # the store alone: sessions remain
    assert client.get("/private", headers=bearer(pair)).status_code == 401
    assert client.get("/private").status_code == 401  # cookie
    assert client.post("/private", headers=bearer(pair)).status_code == 401


def test_the_header_wins_over_the_cookie(client: TestClient) -> None:
    register(client)
    login(client)
    assert client.get("/private").status_code == 200
    assert client.get("/private", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_optional_session(client: TestClient, auth: AuthCore) -> None:
    assert client.get("/maybe").json() == {"session": None}
    register(client)
    pair = login(client)
    sid = auth.jwt.verify(pair["access_token"])["sid"]
    assert client.get("/maybe").json() == {"session": sid}
    assert client.get("/maybe", headers=bearer(pair)).json() == {"session": sid}
    call(client, auth.sessions.revoke, pair["refresh_token"])
    assert client.get("/maybe").json() == {"session": None}  # a stale cookie: anonymous
    assert client.get("/maybe", headers=bearer(pair)).status_code == 401  # a bad bearer: 401


def test_dependency_overrides_work(auth: AuthCore) -> None:
    app = make_app(auth)
    fake = User(id="u1", username="stub", is_active=True, created_at=None, last_login_at=None)  # type: ignore[arg-type]
    app.dependency_overrides[auth.current_user] = lambda: fake
    with TestClient(app) as client:
        assert client.get("/private").json() == {"user": "stub"}


# -- CSRF ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),  # not a browser
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "none"}, True),
        ({"Origin": "http://testserver"}, True),
        ({"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-site"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, False),
    ],
)
def test_csrf_check_on_cookie_requests(
    clock: FakeClock, headers: dict[str, str], allowed: bool
) -> None:
    auth = make_auth(clock, trusted_origins=["https://APP.example.com/"])
    with TestClient(make_app(auth)) as client:
        register(client)
        pair = login(client)
        response = client.post("/private", headers=headers)
        assert response.status_code == (200 if allowed else 403)
        assert client.get("/private", headers=headers).status_code == 200  # safe method
        # Bearer requests need no CSRF check.
        assert client.post("/private", headers={**headers, **bearer(pair)}).status_code == 200
        login_response = client.post(
            "/auth/login", data={"username": "alice", "password": PASSWORD}, headers=headers
        )
        assert login_response.status_code == (200 if allowed else 403)


def test_refused_csrf_changes_nothing(client: TestClient, auth: AuthCore) -> None:
    register(client)
    pair = login(client)
    evil = {"Origin": "https://evil.example"}
    assert client.post("/auth/logout", headers=evil).status_code == 403
    call(client, auth.sessions.validate, pair["refresh_token"])


# -- errors and lifecycle ------------------------------------------------------


def test_storage_failure_is_503(client: TestClient, auth: AuthCore) -> None:
    register(client)
    pair = login(client)

    async def break_the_database() -> None:
        async with auth.engine.begin() as conn:
            await conn.execute(text("DROP TABLE authcore_sessions"))

    call(client, break_the_database)
    for response in [
        client.get("/private", headers=bearer(pair)),
        client.get("/maybe"),
        client.post("/auth/login", data={"username": "alice", "password": PASSWORD}),
        client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
    ]:
        assert response.status_code == 503
        assert response.json() == {"detail": "Authentication is temporarily unavailable"}


def test_lifespan_creates_the_schema_and_disposes_its_engine(
    tmp_path: Path, clock: FakeClock
) -> None:
    auth = make_auth(clock, f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    with TestClient(make_app(auth)) as client:
        register(client)
        pool = auth.engine.sync_engine.pool
        assert pool.checkedin() >= 1  # type: ignore[attr-defined]
    assert auth.engine.sync_engine.pool.checkedin() == 0  # type: ignore[attr-defined]


async def test_an_engine_passed_in_is_left_to_its_owner(tmp_path: Path, clock: FakeClock) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        auth = make_auth(clock, engine=engine)
        assert auth.engine is engine
        async with auth.lifespan(FastAPI()):
            user = await auth.users.create_user("alice", PASSWORD)
        assert (await auth.users.get_user(user.id)) == user  # still usable
    finally:
        assert await dispose_engine(engine)


async def test_admin_changes_revoke_sessions(auth: AuthCore) -> None:
    async with auth.lifespan(FastAPI()):
        user = await auth.users.create_user("alice", PASSWORD)
        tokens = [await auth.sessions.create_session(user.id) for _ in range(2)]
        assert await auth.set_password(user.id, "another passphrase") == 2
        token = await auth.sessions.create_session(user.id)
        assert await auth.set_active(user.id, False) == 1
        assert await auth.set_active(user.id, True) == 0
        for t in [*tokens, token]:
            with pytest.raises(InvalidTokenError):
                await auth.sessions.validate(t)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"secret_key": "short"}, ValueError),
        ({"prefix": "auth"}, ValueError),
        ({"prefix": "/auth/"}, ValueError),
        ({"cookie_name": ""}, ValueError),
        ({"cookie_name": "a b\n"}, ValueError),
        ({"trusted_origins": "https://a.example"}, TypeError),
        ({"trusted_origins": ["a.example"]}, ValueError),
        ({"trusted_origins": ["https://a.example/path"]}, ValueError),
    ],
)
def test_constructor_refuses_bad_settings(kwargs: dict[str, Any], error: type[Exception]) -> None:
    settings: dict[str, Any] = {"secret_key": SECRET, **kwargs}
    with pytest.raises(error):
        AuthCore(**settings)


def test_repr_shows_no_secret() -> None:
    auth = AuthCore(database_url="postgresql+asyncpg://u:pw-123@db/app", secret_key=SECRET)
    assert SECRET not in repr(auth)
    assert "pw-123" not in repr(auth)
    assert "prefix='/auth'" in repr(auth)


def test_the_session_list_is_capped_newest_first(
    client: TestClient, auth: AuthCore, clock: FakeClock
) -> None:
    user_id = register(client)
    for _ in range(120):
        call(client, auth.sessions.create_session, user_id)
    clock.advance(seconds=1)
    pair = login(client)
    client.cookies.clear()
    listed = client.get("/auth/sessions", headers=bearer(pair)).json()
    assert len(listed) == 50
    assert listed[0]["current"]  # the newest: this login
    assert len(client.get("/auth/sessions?limit=100", headers=bearer(pair)).json()) == 100
    assert len(client.get("/auth/sessions?limit=3", headers=bearer(pair)).json()) == 3
    for bad in ("0", "101", "-1", "x"):
        response = client.get(f"/auth/sessions?limit={bad}", headers=bearer(pair))
        assert response.status_code == 422, bad
    schema = client.get("/openapi.json").json()
    [limit] = schema["paths"]["/auth/sessions"]["get"]["parameters"]
    assert limit["name"] == "limit"
    assert (limit["schema"]["maximum"], limit["schema"]["default"]) == (100, 50)


def test_openapi_documents_the_routes_and_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/logout-all",
        "/auth/sessions",
        "/auth/sessions/{session_id}",
        "/auth/password",
        "/auth/me",
    } <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["authcore"]["type"] == "oauth2"


def test_no_secret_reaches_the_logs(
    client: TestClient, auth: AuthCore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register(client)
    pair = login(client)
    new = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    client.post("/auth/login", data={"username": "alice", "password": "wrong " + PASSWORD})
    secrets = [PASSWORD, SECRET, pair["refresh_token"], pair["access_token"], new["access_token"]]
    for record in caplog.records:
        message = record.getMessage()
        assert not any(secret in message for secret in secrets), message


# -- the same flow on every SQL backend ------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite-file", "postgres"])
def test_full_flow_on_each_backend(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> None:
    if backend == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"fastapi_{uuid.uuid4().hex[:12]}")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    auth = make_auth(clock, url)
    with TestClient(make_app(auth)) as client:
        user_id = register(client)
        pair = login(client)
        client.cookies.clear()
        assert client.get("/private", headers=bearer(pair)).json() == {"user": "alice"}
        new = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
        assert (
            client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code
            == 401
        )
        assert client.get("/private", headers=bearer(new)).status_code == 401  # family revoked
        again = login(client)
        client.cookies.clear()
        assert [
            s["current"] for s in client.get("/auth/sessions", headers=bearer(again)).json()
        ] == [True]
        assert client.post("/auth/logout", headers=bearer(again)).status_code == 204
        assert call(client, auth.sessions.list_sessions, user_id) == []
