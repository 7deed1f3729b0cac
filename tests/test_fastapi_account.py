"""Account security in the router: the password policy, reset and verification routes."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from authcore import User
from authcore.fastapi import AuthCore
from authcore.testing import FakeClock, fast_hasher

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new pass phrase"
RESET_SENT = {
    "detail": "If the account exists and is active, a password reset message is on its way"
}
USER_FIELDS = {"id", "username", "email", "is_active", "is_verified"}


class Mailbox:
    """The app's mail hooks: what would have been sent, by kind."""

    def __init__(self) -> None:
        self.resets: list[tuple[User, str]] = []
        self.verifications: list[tuple[User, str]] = []

    def on_password_reset(self, user: User, token: str, request: Request) -> None:
        assert isinstance(request, Request)
        self.resets.append((user, token))

    async def on_verify_email(self, user: User, token: str, request: Request) -> None:
        await asyncio.sleep(0)  # a coroutine hook
        self.verifications.append((user, token))


def make_auth(clock: FakeClock, **kw: Any) -> AuthCore:
    kw.setdefault("cookie_secure", False)
    return AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        clock=clock,
        **kw,
    )


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def auth(clock: FakeClock, mailbox: Mailbox) -> AuthCore:
    return make_auth(
        clock,
        on_password_reset=mailbox.on_password_reset,
        on_verify_email=mailbox.on_verify_email,
    )


def serve(auth: AuthCore) -> TestClient:
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def client(auth: AuthCore) -> Iterator[TestClient]:
    with serve(auth) as client:
        yield client


def register(client: TestClient, username: str = "alice", **extra: str) -> dict[str, Any]:
    body = {"username": username, "password": PASSWORD, **extra}
    response = client.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def login(client: TestClient, username: str = "alice", password: str = PASSWORD) -> Any:
    return client.post("/auth/login", json={"username": username, "password": password})


# -- the password policy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "reasons"),
    [
        ("pw", ["too_short"]),
        ("iloveyou", ["too_common"]),
        ("xalicex9", ["similar_to_username"]),
        ("Alice-1", ["too_short", "similar_to_username"]),
        ("x" * 1025, ["too_long"]),
    ],
)
def test_register_refuses_what_the_policy_refuses(
    client: TestClient, password: str, reasons: list[str]
) -> None:
    response = client.post("/auth/register", json={"username": "alice", "password": password})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert set(detail) == {"message", "reasons"}
    assert detail["reasons"] == reasons
    assert password not in response.text
    assert login(client, password=password).status_code == 401  # nothing was created


def test_password_policy_none_lets_a_weak_password_in(clock: FakeClock) -> None:
    with serve(make_auth(clock, password_policy=None)) as client:
        response = client.post("/auth/register", json={"username": "alice", "password": "pw"})
        assert response.status_code == 201


def test_a_custom_policy_applies_to_password_changes(clock: FakeClock) -> None:
    from authcore import PasswordPolicy

    with serve(make_auth(clock, password_policy=PasswordPolicy(min_length=30))) as client:
        response = client.post("/auth/register", json={"username": "al", "password": PASSWORD})
        assert response.json()["detail"]["reasons"] == ["too_short"]
        long = PASSWORD + " and more words"
        assert client.post("/auth/register", json={"username": "al", "password": long}).is_success
        token = login(client, "al", long).json()["access_token"]
        change = {"current_password": long, "new_password": "short"}
        headers = {"Authorization": f"Bearer {token}"}
        response = client.post("/auth/password", json=change, headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"]["reasons"] == ["too_short"]


def test_register_takes_an_optional_email(client: TestClient) -> None:
    user = register(client, email="Alice@Example.com")
    assert set(user) == USER_FIELDS
    assert (user["email"], user["is_active"], user["is_verified"]) == (
        "Alice@Example.com",
        True,
        False,
    )
    taken = client.post(
        "/auth/register",
        json={"username": "bob", "password": PASSWORD, "email": "alice@example.com"},
    )
    assert taken.status_code == 409
    bad = client.post(
        "/auth/register", json={"username": "carol", "password": PASSWORD, "email": "x"}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"]["reasons"] == []


# -- password reset ------------------------------------------------------------------


def test_forgot_password_answers_alike_for_every_account(
    client: TestClient, auth: AuthCore, mailbox: Mailbox
) -> None:
    register(client, "alice", email="alice@example.com")
    register(client, "bob")
    bob = client.portal.call(auth.users.get_user_by_username, "bob")  # type: ignore[union-attr]
    client.portal.call(auth.users.set_active, bob.id, False)  # type: ignore[union-attr]
    answers = [
        client.post("/auth/forgot-password", json=body)
        for body in (
            {"username": "ALICE"},
            {"email": "alice@example.com"},
            {"username": "nobody"},
            {"email": "nobody@example.com"},
            {"username": "bob"},  # inactive: no mail
        )
    ]
    assert {(r.status_code, r.text) for r in answers} == {(202, answers[0].text)}
    assert answers[0].json() == RESET_SENT
    assert [user.username for user, _ in mailbox.resets] == ["alice", "alice"]


def test_forgot_password_needs_a_username_or_an_email(client: TestClient) -> None:
    for body in ({}, {"username": "a", "email": "a@example.com"}):
        assert client.post("/auth/forgot-password", json=body).status_code == 422


def test_reset_password_sets_the_password_and_ends_every_session(
    client: TestClient, auth: AuthCore, mailbox: Mailbox
) -> None:
    user = register(client)
    first = login(client).json()
    client.post("/auth/forgot-password", json={"username": "alice"})
    [(_, token)] = mailbox.resets
    response = client.post("/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert client.portal.call(auth.sessions.list_sessions, user["id"]) == []  # type: ignore[union-attr]
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert me.status_code == 401
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200
    # A token works once.
    again = client.post("/auth/reset-password", json={"token": token, "password": PASSWORD})
    assert again.status_code == 400
    assert token not in again.text


def test_a_refused_password_keeps_the_reset_token_usable(
    client: TestClient, mailbox: Mailbox
) -> None:
    register(client)
    client.post("/auth/forgot-password", json={"username": "alice"})
    [(_, token)] = mailbox.resets
    weak = client.post("/auth/reset-password", json={"token": token, "password": "iloveyou"})
    assert (weak.status_code, weak.json()["detail"]["reasons"]) == (422, ["too_common"])
    ok = client.post("/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert ok.status_code == 204


@pytest.mark.parametrize("token", ["", "nonsense", "reset_" + "0" * 64, "verify_" + "0" * 64])
def test_reset_password_refuses_a_bad_token(client: TestClient, token: str) -> None:
    response = client.post("/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400
    assert response.json() == {"detail": "The link is invalid or has expired"}


def test_a_reset_token_expires(client: TestClient, clock: FakeClock, mailbox: Mailbox) -> None:
    register(client)
    client.post("/auth/forgot-password", json={"username": "alice"})
    [(_, token)] = mailbox.resets
    clock.advance(minutes=31)
    response = client.post("/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400


def test_a_password_change_kills_the_reset_token(client: TestClient, mailbox: Mailbox) -> None:
    register(client)
    client.post("/auth/forgot-password", json={"username": "alice"})
    [(_, token)] = mailbox.resets
    access = login(client).json()["access_token"]
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    headers = {"Authorization": f"Bearer {access}"}
    assert client.post("/auth/password", json=change, headers=headers).status_code == 200
    response = client.post("/auth/reset-password", json={"token": token, "password": PASSWORD})
    assert response.status_code == 400


def test_reset_by_browser_form_goes_on_to_next(client: TestClient, mailbox: Mailbox) -> None:
    register(client)
    sent = client.post("/auth/forgot-password", data={"username": "alice", "next": "/sent"})
    assert (sent.status_code, sent.headers["location"]) == (303, "/sent")
    [(_, token)] = mailbox.resets
    form = {"token": token, "password": NEW_PASSWORD, "next": "/login?reset=1"}
    done = client.post("/auth/reset-password", data=form, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/login?reset=1")
    cross_site = client.post(
        "/auth/forgot-password",
        data={"username": "alice"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403


def test_a_failing_reset_hook_changes_nothing(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(user: User, token: str, request: Request) -> None:
        raise RuntimeError(f"smtp down, token was {token}")

    with serve(make_auth(clock, on_password_reset=broken)) as client:
        register(client)
        response = client.post("/auth/forgot-password", json={"username": "alice"})
    assert (response.status_code, response.json()) == (202, RESET_SENT)
    failures = [r for r in caplog.records if "on_password_reset" in r.getMessage()]
    assert len(failures) == 1
    assert "reset_" not in failures[0].getMessage()  # neither the token nor its message


def test_without_a_reset_hook_no_token_is_made(clock: FakeClock) -> None:
    auth = make_auth(clock)
    with serve(auth) as client:
        register(client)
        response = client.post("/auth/forgot-password", json={"username": "alice"})
        assert response.status_code == 202


# -- email verification --------------------------------------------------------------


def test_verify_email_flow(client: TestClient, mailbox: Mailbox) -> None:
    register(client, email="alice@example.com")
    headers = {"Authorization": f"Bearer {login(client).json()['access_token']}"}
    response = client.post("/auth/request-verify", headers=headers)
    assert response.status_code == 202
    [(user, token)] = mailbox.verifications
    assert user.email == "alice@example.com"
    verified = client.post("/auth/verify", json={"token": token})
    assert verified.status_code == 200
    body = verified.json()
    assert set(body) == USER_FIELDS
    assert body["is_verified"] is True
    assert client.get("/auth/me", headers=headers).json()["is_verified"] is True
    assert client.post("/auth/verify", json={"token": token}).status_code == 400  # used


def test_request_verify_needs_a_login_and_an_address(client: TestClient) -> None:
    assert client.post("/auth/request-verify").status_code == 401
    register(client)
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {login(client).json()['access_token']}"}
    response = client.post("/auth/request-verify", headers=headers)
    assert response.status_code == 409
    assert response.json() == {"detail": "The account has no email address to verify"}


def test_verify_refuses_a_reset_token(client: TestClient, mailbox: Mailbox) -> None:
    register(client)
    client.post("/auth/forgot-password", json={"username": "alice"})
    [(_, token)] = mailbox.resets
    assert client.post("/auth/verify", json={"token": token}).status_code == 400


def test_verify_by_browser_form(client: TestClient, mailbox: Mailbox) -> None:
    register(client, email="alice@example.com")
    headers = {"Authorization": f"Bearer {login(client).json()['access_token']}"}
    client.post("/auth/request-verify", headers=headers)
    [(_, token)] = mailbox.verifications
    done = client.post("/auth/verify", data={"token": token, "next": "/account"})
    assert (done.status_code, done.headers["location"]) == (303, "/account")


# -- issuer and audience -------------------------------------------------------------


def test_issuer_and_audience_bind_the_access_tokens(clock: FakeClock) -> None:
    from authcore import InvalidTokenError

    auth = make_auth(clock, issuer="https://app.example", audience="app")
    with serve(auth) as client:
        register(client)
        access = login(client).json()["access_token"]
        claims = auth.jwt.verify(access)
        assert (claims["iss"], claims["aud"]) == ("https://app.example", "app")
        other = make_auth(clock, issuer="https://other.example", audience="app")
        with pytest.raises(InvalidTokenError):
            other.jwt.verify(access)


def test_the_routes_log_no_token(
    client: TestClient, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register(client, email="alice@example.com")
    client.post("/auth/forgot-password", json={"username": "alice"})
    headers = {"Authorization": f"Bearer {login(client).json()['access_token']}"}
    client.post("/auth/request-verify", headers=headers)
    [(_, reset)] = mailbox.resets
    [(_, verify)] = mailbox.verifications
    client.post("/auth/reset-password", json={"token": reset, "password": NEW_PASSWORD})
    client.post("/auth/verify", json={"token": verify})
    sentinels = [reset, verify, reset[6:], verify[7:], PASSWORD, NEW_PASSWORD]
    for record in caplog.records:
        line = logging.Formatter("%(name)s %(message)s").format(record)
        assert sum(s in line for s in sentinels) == 0, record.name


def test_reset_ttl_default_is_half_an_hour() -> None:
    from authcore.fastapi._account import AccountOptions
    from authcore.fastapi._events import Events

    options = AccountOptions(Events())
    assert options.reset_ttl == timedelta(minutes=30)
    with pytest.raises(TypeError, match="on_password_reset"):
        AccountOptions(Events(), on_password_reset="mail")  # type: ignore[arg-type]
