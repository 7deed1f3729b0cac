"""Concurrent refresh, logout, logout-all and password changes over real HTTP (uvicorn).

A client that fires its requests at once must never see a 5xx, and after it
logs out, no session of that client may survive: every try ends by checking
the store for the user's active sessions.
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import pytest_asyncio

from authcore import SessionStore, create_engine, dispose_engine

from .pgserver import PostgresServer
from .test_fastapi_server import free_port

SECRET = "a-race-test-secret-key-of-sufficient-length-0123"
COOKIE = "authcore_session"
WORKERS = 20  # users, each running its tries one after the other
# Tries in all, spread over the four scenarios: each scenario runs 100 times on SQLite and
# 30 on PostgreSQL, 20 users at once, so every interleaving still meets the others.
# (It was 1000 and 300: over a minute of the suite's two workers.)
TRIES = 400  # SQLite file
TRIES_POSTGRES = 120  # PostgreSQL: no write lock, so races overlap more; slower here

APP = textwrap.dedent(
    """
    import os

    from fastapi import FastAPI

    from authcore.fastapi import AuthCore
    from authcore.testing import fast_hasher

    auth = AuthCore(
        database_url=os.environ["RACE_DATABASE_URL"],
        secret_key=os.environ["RACE_SECRET_KEY"],
        hasher=fast_hasher(),
        cookie_secure=False,
    )
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    """
)


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database(f"races_{uuid.uuid4().hex[:12]}")
    return f"sqlite+aiosqlite:///{tmp_path / 'races.db'}"


@pytest.fixture
def base_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A real ``uvicorn`` serving a minimal authcore app on a free local port."""
    (tmp_path / "race_app.py").write_text(APP, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHCORE_", "RACE_"))}
    env.update(RACE_DATABASE_URL=database_url, RACE_SECRET_KEY=SECRET)
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "race_app:app", "--app-dir", str(tmp_path)),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"uvicorn exited early:\n{log.read_text()}")
            try:
                with httpx.Client() as probe:
                    probe.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("uvicorn did not start listening")
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        stderr = log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in stderr, stderr[-5000:]


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[SessionStore]:
    """The server's session store, read from the test process."""
    engine = create_engine(database_url)
    try:
        yield SessionStore(engine)
    finally:
        await dispose_engine(engine)


class Client:
    """One user of the app: tracks every token it ever received."""

    def __init__(self, http: httpx.AsyncClient, outcomes: collections.Counter[str]) -> None:
        self.http = http
        self.outcomes = outcomes
        self.username = f"user-{secrets.token_hex(6)}"
        self.password = secrets.token_urlsafe(18)
        self.user_id = ""

    async def send(self, label: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError:  # the server dropped the connection (after a 500)
            response = httpx.Response(599)
        self.outcomes[f"{label} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.outcomes["5xx"] += 1
        return response

    async def register(self) -> None:
        body = {"username": self.username, "password": self.password}
        response = await self.send("register", "POST", "/auth/register", json=body)
        assert response.status_code == 201, response.text
        self.user_id = response.json()["id"]

    async def login(self, password: str | None = None) -> dict[str, Any] | None:
        form = {"username": self.username, "password": password or self.password}
        response = await self.send("login", "POST", "/auth/login", data=form)
        return dict(response.json()) if response.status_code == 200 else None

    async def refresh(self, token: str) -> dict[str, Any] | None:
        body = {"refresh_token": token}
        response = await self.send("refresh", "POST", "/auth/refresh", json=body)
        return dict(response.json()) if response.status_code == 200 else None

    async def logout(self, pair: dict[str, Any], via: str) -> int:
        response = await self.send(f"logout-{via}", "POST", "/auth/logout", **auth(pair, via))
        return response.status_code

    async def logout_all(self, pair: dict[str, Any]) -> int:
        response = await self.send("logout-all", "POST", "/auth/logout-all", **auth(pair, "bearer"))
        return response.status_code

    async def change_password(self, pair: dict[str, Any], new: str) -> httpx.Response:
        body = {"current_password": self.password, "new_password": new}
        return await self.send(
            "password", "POST", "/auth/password", json=body, **auth(pair, "cookie")
        )


def auth(pair: dict[str, Any], via: str) -> dict[str, Any]:
    if via == "cookie":
        return {"headers": {"Cookie": f"{COOKIE}={pair['refresh_token']}"}}
    return {"headers": {"Authorization": f"Bearer {pair['access_token']}"}}


async def end_all(client: Client, live: list[dict[str, Any]], store: SessionStore) -> None:
    """Log out every session the client believes live, then none may remain."""
    for pair in live:
        await client.logout(pair, "cookie")
    await check_none_left(client, store, "after logging out")


async def check_none_left(client: Client, store: SessionStore, when: str) -> None:
    left = await store.list_sessions(client.user_id)
    if left:  # a session the client no longer knows of, or could not end
        client.outcomes[f"survivor {when}"] += 1
        await store.revoke_all(client.user_id)  # the next try starts clean


async def refresh_refresh(client: Client, store: SessionStore, n: int) -> None:
    pair = await client.login()
    if pair is None:
        return
    results = await asyncio.gather(
        client.refresh(pair["refresh_token"]), client.refresh(pair["refresh_token"])
    )
    fresh = [r for r in results if r is not None]
    await end_all(client, fresh or [pair], store)


async def refresh_logout(client: Client, store: SessionStore, n: int) -> None:
    pair = await client.login()
    if pair is None:
        return
    via = "cookie" if n // len(SCENARIOS) % 2 else "bearer"
    fresh, status = await asyncio.gather(
        client.refresh(pair["refresh_token"]), client.logout(pair, via)
    )
    if status == 204:  # logged out: the refresh's successor, if any, is over too
        await check_none_left(client, store, f"logout-{via} 204")
    else:
        await end_all(client, [fresh] if fresh else [], store)


async def login_logout_all(client: Client, store: SessionStore, n: int) -> None:
    kept = await client.login()
    if kept is None:
        return
    *pairs, _ = await asyncio.gather(client.login(), client.login(), client.logout_all(kept))
    await end_all(client, [kept, *(p for p in pairs if p is not None)], store)


async def password_race(client: Client, store: SessionStore, n: int) -> None:
    first, second = await client.login(), await client.login()
    if first is None or second is None:
        return
    new = secrets.token_urlsafe(18)
    changed, fresh, late = await asyncio.gather(
        client.change_password(first, new),
        client.refresh(second["refresh_token"]),
        client.login(),
    )
    live = [p for p in (fresh, late) if p is not None]
    if changed.status_code == 200:
        client.password = new
        if changed.json()["rotated"]:
            live.append({"refresh_token": cookie_of(changed)})
    else:
        live.append(first)
    await end_all(client, live, store)


def cookie_of(response: httpx.Response) -> str:
    """The session token a response sets (the client's jar stores none)."""
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    return header.split(";", 1)[0].split("=", 1)[1]


SCENARIOS = [refresh_refresh, refresh_logout, login_logout_all, password_race]


@pytest.mark.slow
async def test_no_5xx_and_no_surviving_session_under_races(
    base_url: str, store: SessionStore, database_url: str
) -> None:
    tries = TRIES if database_url.startswith("sqlite") else TRIES_POSTGRES
    outcomes: collections.Counter[str] = collections.Counter()
    limits = httpx.Limits(max_connections=WORKERS * 4)

    async def worker(index: int, http: httpx.AsyncClient) -> None:
        client = Client(http, outcomes)
        await client.register()
        for n in range(index, tries, WORKERS):
            await SCENARIOS[n % len(SCENARIOS)](client, store, n)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # cookies: by hand
        await asyncio.gather(*(worker(i, http) for i in range(WORKERS)))
    print(sorted(outcomes.items()))
    assert outcomes["5xx"] == 0, sorted(outcomes.items())
    assert not [k for k in outcomes if k.startswith("survivor")], sorted(outcomes.items())


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite-file"], indirect=True)
async def test_forwarded_for_from_a_trusted_proxy_is_stored_only_when_an_ip(
    base_url: str, store: SessionStore
) -> None:
    # uvicorn's --proxy-headers (on by default) trust 127.0.0.1, so this test
    # is the proxy: request.client.host is whatever X-Forwarded-For says.
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        client = Client(http, collections.Counter())
        await client.register()
        form = {"username": client.username, "password": client.password}
        forwarded = ["203.0.113.9", "1" * 65, "<script>", "2001:db8::1, 10.0.0.1", "x" * 4000]
        for value in forwarded:
            response = await http.post("/auth/login", data=form, headers={"X-Forwarded-For": value})
            assert response.status_code == 200, (value, response.text)
    ips = sorted(str(s.ip) for s in await store.list_sessions(client.user_id))
    assert ips == ["10.0.0.1", "203.0.113.9", "None", "None", "None"]
