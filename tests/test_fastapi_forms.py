"""Browser flows through TestClient: forms, 303s to local paths only, page_user, transports."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from authcore import User
from authcore.fastapi import AuthCore
from authcore.fastapi._forms import local_path, with_query
from authcore.testing import FakeClock, fast_hasher

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"
ACCOUNT = {"username": "alice", "password": PASSWORD}
USER_FIELDS = {"id", "username", "email", "is_active", "is_verified"}
CROSS_SITE = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}

#: ``next`` values that must never be followed, from the open-redirect cheat sheets.
OFF_SITE = [
    "https://evil.example/",
    "http:evil.example",
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example",
    "/\tevil",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\nLocation: https://evil.example",
    "/%0d%0aSet-Cookie:x=1",
    "/%09/evil.example",
    " //evil.example",
    "//evil.example/%2F..",
    "/..//evil.example",
    "/./evil",
    "/%2e%2e/%2e%2e/x",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "",
    "/\u202e/evil",
    "/\x00/evil",
    "/%ff",
    "/" + "a" * 3000,
]
LOCAL = ["/", "/devices", "/a/b?c=d&e=%2F#top", "/café", "/search?q=//x"]


def test_the_local_path_check() -> None:
    for value in OFF_SITE:
        assert local_path(value) is None, value
    for value in LOCAL:
        assert local_path(value) == value
    assert local_path(None) is None
    assert local_path(["/"]) is None
    assert with_query("/login", next="/x", error=None) == "/login?next=%2Fx"
    assert with_query("/login?a=1", next=None) == "/login?a=1"
    assert with_query("/login?a=1", error="invalid") == "/login?a=1&error=invalid"


def make_app(auth: AuthCore) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    if auth.browser.login_page_url is None:
        return app

    @app.get("/page")
    async def page(user: Annotated[User, Depends(auth.page_user)]) -> dict[str, str]:
        return {"user": user.username}

    return app


def make_auth(**kw: Any) -> AuthCore:
    kw.setdefault("login_page_url", "/login")
    return AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        cookie_secure=False,
        clock=FakeClock(),
        **kw,
    )


@pytest.fixture
def auth() -> AuthCore:
    return make_auth()


@pytest.fixture
def client(auth: AuthCore) -> Iterator[TestClient]:
    with TestClient(make_app(auth), follow_redirects=False) as client:
        yield client


def register(client: TestClient) -> None:
    assert client.post("/auth/register", json=ACCOUNT).status_code == 201


def form_login(client: TestClient, next_page: str = "/devices", **fields: str) -> Any:
    return client.post(
        "/auth/login", data={**ACCOUNT, **fields, "next": next_page}, headers=SAME_ORIGIN
    )


# -- login -------------------------------------------------------------------------


def test_form_login_with_next_answers_303_and_sets_the_cookie(
    client: TestClient, auth: AuthCore
) -> None:
    register(client)
    response = form_login(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/devices"
    assert auth.cookie_name in response.cookies
    assert "token_" not in response.text
    assert client.get("/page").json() == {"user": "alice"}


@pytest.mark.parametrize("next_page", OFF_SITE)
def test_form_login_never_redirects_off_site(client: TestClient, next_page: str) -> None:
    register(client)
    response = form_login(client, next_page)
    assert (response.status_code, response.headers["location"]) == (303, "/")


def test_next_as_a_query_parameter(client: TestClient) -> None:
    register(client)
    response = client.post("/auth/login?next=/devices", data=ACCOUNT, headers=SAME_ORIGIN)
    assert (response.status_code, response.headers["location"]) == (303, "/devices")
    response = client.post("/auth/login?next=//evil.example", data=ACCOUNT)
    assert response.headers["location"] == "/"


def test_redirect_default_is_configurable_and_checked() -> None:
    auth = make_auth(redirect_default="/home")
    with TestClient(make_app(auth), follow_redirects=False) as client:
        register(client)
        assert form_login(client, "https://evil.example").headers["location"] == "/home"
    for bad in ("https://evil.example", "//evil", "home"):
        with pytest.raises(ValueError, match="redirect_default"):
            make_auth(redirect_default=bad)


def test_failed_form_login_goes_back_to_the_login_page(client: TestClient) -> None:
    register(client)
    response = form_login(client, "/devices?tab=1", password="wrong")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?error=invalid&next=%2Fdevices%3Ftab%3D1"
    assert "set-cookie" not in response.headers
    response = form_login(client, "//evil.example", password="wrong")
    assert response.headers["location"] == "/login?error=invalid"


def test_failed_form_login_without_a_login_page_is_a_401() -> None:
    with TestClient(make_app(make_auth(login_page_url=None)), follow_redirects=False) as client:
        register(client)
        response = form_login(client, password="wrong")
        assert response.status_code == 401
        assert response.json() == {"detail": "Incorrect username or password"}


def test_login_takes_json_and_the_oauth2_form(client: TestClient) -> None:
    register(client)
    by_json = client.post("/auth/login", json=ACCOUNT)
    assert by_json.status_code == 200
    assert set(by_json.json()) == {"access_token", "token_type", "expires_in", "refresh_token"}
    oauth2 = {**ACCOUNT, "grant_type": "password", "scope": "", "client_id": "swagger"}
    by_form = client.post("/auth/login", data=oauth2)
    assert by_form.status_code == 200  # no next: an OAuth2 client, answered with JSON
    assert by_form.json()["token_type"] == "bearer"
    assert client.post("/auth/login", json={**ACCOUNT, "password": "no"}).status_code == 401


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        ("not json", {"Content-Type": "application/json"}),
        ('["alice"]', {"Content-Type": "application/json"}),
        ('{"username": "alice"}', {"Content-Type": "application/json"}),
        ("username=alice", {"Content-Type": "application/x-www-form-urlencoded"}),
        ('{"username": 1, "password": 2}', {"Content-Type": "application/json"}),
    ],
)
def test_bad_login_bodies_are_422(client: TestClient, content: str, headers: Any) -> None:
    response = client.post("/auth/login", content=content, headers=headers)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


# -- the CSRF check on every form post -------------------------------------------


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
def test_cross_site_forms_without_a_session_are_refused(client: TestClient, path: str) -> None:
    if path == "/auth/login":
        register(client)
    response = client.post(path, data={**ACCOUNT, "next": "/"}, headers=CROSS_SITE)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    if path == "/auth/register":  # nothing was created: the name is still free
        register(client)


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/auth/logout", {}),
        ("/auth/logout-all", {}),
        ("/auth/password", {"current_password": PASSWORD, "new_password": "new pass phrase!"}),
        ("/auth/refresh", {}),
    ],
)
def test_cross_site_forms_with_the_cookie_change_nothing(
    client: TestClient, auth: AuthCore, path: str, fields: dict[str, str]
) -> None:
    register(client)
    form_login(client)
    other = TestClient(client.app, follow_redirects=False)
    other.post("/auth/login", data=ACCOUNT)  # a second device
    response = client.post(path, data={**fields, "next": "/"}, headers=CROSS_SITE)
    assert response.status_code in {403, 422}  # refresh takes JSON: refused before anything
    assert client.get("/page").status_code == 200
    assert len(client.get("/auth/sessions").json()) == 2
    assert client.post("/auth/login", json=ACCOUNT).status_code == 200  # password unchanged


def test_cross_site_revoke_form_is_refused(client: TestClient) -> None:
    register(client)
    form_login(client)
    other = TestClient(client.app, follow_redirects=False)
    other.post("/auth/login", data=ACCOUNT)
    sessions = client.get("/auth/sessions").json()
    victim = next(s["id"] for s in sessions if not s["current"])
    response = client.post(
        f"/auth/sessions/{victim}/revoke", data={"next": "/"}, headers=CROSS_SITE
    )
    assert response.status_code == 403
    assert len(client.get("/auth/sessions").json()) == 2


# -- logout, logout-all, revoke, password, register by form -------------------------


def test_form_logout_answers_303_and_deletes_the_cookie(client: TestClient, auth: AuthCore) -> None:
    register(client)
    form_login(client)
    response = client.post("/auth/logout", data={"next": "/login"}, headers=SAME_ORIGIN)
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert f'{auth.cookie_name}=""' in response.headers["set-cookie"]
    assert client.get("/page").status_code == 303


def test_json_logout_is_unchanged(client: TestClient) -> None:
    register(client)
    pair = client.post("/auth/login", json=ACCOUNT).json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.post("/auth/logout", headers=headers).status_code == 204
    assert client.post("/auth/logout", headers=headers).status_code == 401


def test_form_logout_all_and_revoke(client: TestClient) -> None:
    register(client)
    form_login(client)
    others = [TestClient(client.app, follow_redirects=False) for _ in range(2)]
    for other in others:
        other.post("/auth/login", data=ACCOUNT)
    sessions = client.get("/auth/sessions").json()
    one = next(s["id"] for s in sessions if not s["current"])
    response = client.post(f"/auth/sessions/{one}/revoke", data={"next": "/devices"})
    assert (response.status_code, response.headers["location"]) == (303, "/devices")
    assert len(client.get("/auth/sessions").json()) == 2
    assert client.post(f"/auth/sessions/{one}/revoke", data={"next": "/"}).status_code == 404
    assert client.post(f"/auth/sessions/{one}/revoke").status_code == 404  # JSON: as DELETE
    response = client.post("/auth/logout-all", data={"next": "/devices"}, headers=SAME_ORIGIN)
    assert (response.status_code, response.headers["location"]) == (303, "/devices")
    assert len(client.get("/auth/sessions").json()) == 1
    assert client.post("/auth/logout-all").json() == {"revoked": 0}  # JSON: unchanged


def test_form_password_change_rotates_the_cookie_and_redirects(
    client: TestClient, auth: AuthCore
) -> None:
    register(client)
    form_login(client)
    old = client.cookies[auth.cookie_name]
    fields = {"current_password": PASSWORD, "new_password": "a new pass phrase", "next": "/?ok"}
    response = client.post("/auth/password", data=fields, headers=SAME_ORIGIN)
    assert (response.status_code, response.headers["location"]) == (303, "/?ok")
    assert client.cookies[auth.cookie_name] != old
    assert client.get("/page").status_code == 200
    wrong = client.post("/auth/password", data={**fields, "current_password": "nope"})
    assert wrong.status_code == 400  # errors are not redirected


def test_form_register_logs_in_when_asked() -> None:
    auth = make_auth(login_after_register=True)
    with TestClient(make_app(auth), follow_redirects=False) as client:
        response = client.post(
            "/auth/register", data={**ACCOUNT, "next": "/welcome"}, headers=SAME_ORIGIN
        )
        assert (response.status_code, response.headers["location"]) == (303, "/welcome")
        assert client.get("/page").json() == {"user": "alice"}
        taken = client.post("/auth/register", data={**ACCOUNT, "next": "/"})
        assert taken.status_code == 409


def test_json_register_with_login_after_register_returns_tokens() -> None:
    auth = make_auth(login_after_register=True)
    with TestClient(make_app(auth)) as client:
        body = client.post("/auth/register", json=ACCOUNT).json()
        assert body["username"] == "alice"
        assert body["refresh_token"].startswith("token_")
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert client.get("/auth/me", headers=headers).status_code == 200


def test_register_without_login_after_register_sets_nothing(client: TestClient) -> None:
    response = client.post("/auth/register", data={**ACCOUNT, "next": "/"})
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert "set-cookie" not in response.headers
    bob = client.post("/auth/register", json={**ACCOUNT, "username": "bob"}).json()
    assert set(bob) == USER_FIELDS


# -- page_user ---------------------------------------------------------------------


def test_page_user_sends_anonymous_browsers_to_the_login_page(client: TestClient) -> None:
    response = client.get("/page?tab=devices&x=%2F")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fpage%3Ftab%3Ddevices%26x%3D%252F"
    client.cookies.set("authcore_session", "token_stale_1_" + "0" * 64)
    assert client.get("/page").headers["location"] == "/login?next=%2Fpage"
    register(client)
    form_login(client)
    assert client.get("/page").json() == {"user": "alice"}


def test_page_user_needs_a_login_page() -> None:
    auth = make_auth(login_page_url=None)
    with pytest.raises(ValueError, match="login_page_url"):
        auth.page_user  # noqa: B018
    for bad in ("login", "ftp://x/login", "//evil/login"):
        with pytest.raises(ValueError, match="login_page_url"):
            make_auth(login_page_url=bad)
    assert make_auth(login_page_url="https://accounts.example.com/login").page_user
    # Taken past AuthCore's guard, the dependency still refuses to guess a page.
    unguarded = make_auth(login_page_url=None)
    app = FastAPI(lifespan=unguarded.lifespan)

    @app.get("/page")
    async def page(user: Annotated[User, Depends(unguarded.credentials.page_user)]) -> str:
        return user.username

    with (
        TestClient(app) as client,
        pytest.raises(RuntimeError, match="login_page_url"),
    ):
        client.get("/page")


# -- transports --------------------------------------------------------------------


def test_cookie_transport_keeps_tokens_out_of_bodies() -> None:
    auth = make_auth(transport="cookie", login_after_register=True)
    with TestClient(make_app(auth)) as client:
        registered = client.post("/auth/register", json=ACCOUNT)
        assert set(registered.json()) == USER_FIELDS
        response = client.post("/auth/login", json=ACCOUNT)
        assert set(response.json()) == USER_FIELDS
        assert "token" not in response.text
        assert client.get("/auth/me").status_code == 200  # by the cookie
        old = client.cookies[auth.cookie_name]
        refreshed = client.post("/auth/refresh")
        assert (refreshed.status_code, refreshed.content) == (204, b"")
        assert client.cookies[auth.cookie_name] != old
        jwt = auth.jwt.issue(registered.json()["id"], session_id="whatever")
        bare = TestClient(client.app)
        assert bare.get("/auth/me", headers={"Authorization": f"Bearer {jwt}"}).status_code == 401
        assert bare.post("/auth/refresh").status_code == 401  # no cookie
        cross = client.post("/auth/refresh", headers=CROSS_SITE)
        assert cross.status_code == 403


def test_bearer_transport_sets_and_reads_no_cookie() -> None:
    auth = make_auth(transport="bearer")
    with TestClient(make_app(auth)) as client:
        register(client)
        response = client.post("/auth/login", json=ACCOUNT)
        assert "set-cookie" not in response.headers
        token = response.json()["refresh_token"]
        client.cookies.set(auth.cookie_name, token)
        assert client.get("/auth/me").status_code == 401  # the cookie is not read
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        assert client.get("/auth/me", headers=headers).status_code == 200
        logout = client.post("/auth/logout", headers=headers)
        assert (logout.status_code, "set-cookie" in logout.headers) == (204, False)


def test_transport_is_checked() -> None:
    with pytest.raises(ValueError, match="transport"):
        make_auth(transport="header")
    assert "transport='both'" in repr(make_auth())
