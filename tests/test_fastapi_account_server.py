"""Account security over real HTTP: uvicorn in child processes, on a SQLite file and PostgreSQL.

- the reset and verification flows, with the tokens read from the app's outbox;
- the login throttle shared by two uvicorn processes on one database;
- a flood of junk logins: only 401s and 503s, and a real login still gets in.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import text

from authcore import create_engine, dispose_engine

from .pgserver import PostgresServer
from .test_fastapi_server import free_port

HERE = Path(__file__).resolve().parent
SECRET = "an-account-test-secret-key-of-sufficient-length"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new pass phrase"


class AccountServer:
    """``uvicorn account_app:app`` (tests/account_app.py) in a child process."""

    def __init__(self, folder: Path, database_url: str, **settings: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.outbox = folder / "outbox.txt"
        self.log = folder / f"uvicorn-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHCORE_", "ACCOUNT_"))}
        env.update(
            ACCOUNT_DATABASE_URL=database_url,
            ACCOUNT_SECRET_KEY=SECRET,
            ACCOUNT_OUTBOX=str(self.outbox),
        )
        env.update({f"ACCOUNT_{k.upper()}": v for k, v in settings.items()})
        command = [sys.executable, "-m", "uvicorn", "account_app:app", "--app-dir", str(HERE)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        with self.log.open("wb") as sink:  # a file, not a pipe: a full pipe blocks the server
            self.process = subprocess.Popen(
                command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=sink
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited early:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("uvicorn did not start listening")
                time.sleep(0.05)  # polling for readiness, bounded by the deadline

    def stop(self) -> str:
        """Stop the server (SIGTERM) and return its log."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=20)
        return self.log.read_text(encoding="utf-8", errors="replace")

    def mail(self, kind: str, username: str, count: int = 1) -> str:
        """The *count*-th token the app 'mailed' to *username*.

        The hooks run after the answer was sent, as a mail arrives a moment later.
        """
        deadline = time.monotonic() + 30
        while True:
            text = self.outbox.read_text(encoding="utf-8") if self.outbox.exists() else ""
            lines = [line.split() for line in text.splitlines()]
            tokens = [line[2] for line in lines if len(line) == 3 and line[:2] == [kind, username]]
            if len(tokens) >= count:
                return tokens[count - 1]
            assert time.monotonic() < deadline, f"no {kind} mail for {username}"
            time.sleep(0.02)  # polling the outbox, bounded by the deadline


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database(f"account_{uuid.uuid4().hex[:12]}")
    return f"sqlite+aiosqlite:///{tmp_path / 'account.db'}"


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[AccountServer]:
    server = AccountServer(tmp_path, database_url, rounds="4")
    try:
        yield server
    finally:
        log = server.stop()
        assert "Traceback" not in log, log[-5000:]


async def dump_tokens_table(database_url: str) -> str:
    """Every value of the one-time tokens table, as text."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM authcore_user_tokens"))).all()
    finally:
        await dispose_engine(engine)
    return " ".join(str(value) for row in rows for value in row)


@pytest.mark.slow
def test_reset_and_verify_over_http(server: AccountServer, database_url: str) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        account = {"username": "alice", "password": PASSWORD, "email": "alice@example.com"}
        assert client.post("/auth/register", json=account).status_code == 201
        weak = client.post("/auth/register", json={"username": "bob", "password": "pw"})
        assert (weak.status_code, weak.json()["detail"]["reasons"]) == (422, ["too_short"])
        pair = client.post("/auth/login", json=account).json()
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.post("/auth/request-verify", headers=headers).status_code == 202
        verified = client.post("/auth/verify", json={"token": server.mail("verify", "alice")})
        assert verified.json()["is_verified"] is True

        answers = {
            client.post("/auth/forgot-password", json=body).text
            for body in ({"email": "ALICE@example.com"}, {"username": "nobody"})
        }
        assert len(answers) == 1
        reset = server.mail("reset", "alice")
        done = client.post("/auth/reset-password", json={"token": reset, "password": NEW_PASSWORD})
        assert done.status_code == 204
        assert client.get("/auth/me", headers=headers).status_code == 401  # sessions ended
        again = client.post("/auth/reset-password", json={"token": reset, "password": PASSWORD})
        assert again.status_code == 400
        login = {"username": "alice", "password": NEW_PASSWORD}
        assert client.post("/auth/login", json=login).status_code == 200
        client.post("/auth/forgot-password", json={"username": "alice"})
        pending = server.mail("reset", "alice", count=2)  # outstanding: its row is stored
    stored = asyncio.run(dump_tokens_table(database_url))
    assert stored  # the pending token's row
    for token in (reset, pending):
        assert token not in stored
        assert token.split("_", 1)[1] not in stored  # the raw secret is never stored


@pytest.mark.slow
def test_throttling_holds_across_two_workers(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    first = AccountServer(tmp_path, url, rounds="4", throttle="4,1000")
    second = AccountServer(tmp_path, url, rounds="4", throttle="4,1000")
    try:
        with httpx.Client(timeout=30) as client:
            account = {"username": "alice", "password": PASSWORD}
            wrong = {**account, "password": "not the password"}
            assert client.post(f"{first.base}/auth/register", json=account).status_code == 201
            for base in (first.base, second.base, first.base, second.base):
                assert client.post(f"{base}/auth/login", json=wrong).status_code == 401
            for base in (first.base, second.base):
                throttled = client.post(f"{base}/auth/login", json=account)
                assert throttled.status_code == 429
                assert int(throttled.headers["retry-after"]) >= 1
    finally:
        logs = first.stop() + second.stop()
    assert "Traceback" not in logs, logs[-5000:]


async def flood(base: str, junk: int) -> collections.Counter[str]:
    """*junk* wrong logins at once, one in four from a client that gives up at once."""
    outcomes: collections.Counter[str] = collections.Counter()
    limits = httpx.Limits(max_connections=junk + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def one(i: int) -> None:
            body = {"username": f"junk-{i}", "password": f"wrong password {i}"}
            try:
                timeout = 0.01 if i % 4 == 0 else 120
                response = await client.post("/auth/login", json=body, timeout=timeout)
            except httpx.TimeoutException:
                outcomes["gave up"] += 1
                return
            outcomes[str(response.status_code)] += 1

        await asyncio.gather(*(one(i) for i in range(junk)))
    return outcomes


@pytest.mark.slow
def test_a_login_flood_gets_only_401_and_503_and_a_real_login_gets_in(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'flood.db'}"
    server = AccountServer(tmp_path, url, rounds="10", throttle="off")
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            account = {"username": "alice", "password": PASSWORD}
            assert client.post("/auth/register", json=account).status_code == 201
            outcomes = asyncio.run(flood(server.base, 200))
            assert set(outcomes) <= {"401", "503", "gave up"}, outcomes
            assert outcomes["503"] > 0, outcomes  # the queue's bound did shed load
            deadline = time.monotonic() + 120  # generous: this only must not hang
            statuses = []
            while time.monotonic() < deadline:
                response = client.post("/auth/login", json=account)
                statuses.append(response.status_code)
                if response.status_code != 503:
                    break
                time.sleep(float(response.headers["retry-after"]))  # as a client is told to
            assert statuses[-1] == 200, statuses
            assert set(statuses[:-1]) <= {503}
    finally:
        log = server.stop()
    assert "Traceback" not in log, log[-5000:]
