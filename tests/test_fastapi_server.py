"""The example app under a real uvicorn process on 127.0.0.1, stopped with Ctrl+C."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .pgserver import PostgresServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECRET = "a-server-test-secret-key-of-sufficient-length"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    method: str, url: str, *, form: dict[str, str] | None = None, token: str = "", body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


class Server:
    """``uvicorn fastapi_app:app`` in a child process, as a user would start it."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
        env.update(AUTHCORE_DATABASE_URL=database_url, AUTHCORE_SECRET_KEY=SECRET)
        env["PYTHONDEVMODE"] = "1"  # ResourceWarnings and asyncio debug checks are shown
        extra: dict[str, Any] = {}
        if sys.platform == "win32":  # Ctrl+Break is how a console app is interrupted there
            extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fastapi_app:app",
                "--app-dir",
                str(EXAMPLES),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **extra,
        )

    def wait_until_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited early:\n{self.process.communicate()[1]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        pytest.fail("uvicorn did not start listening")

    def interrupt(self) -> tuple[int, str]:
        """Ctrl+C (Ctrl+Break on Windows); the exit status and everything it logged."""
        if sys.platform == "win32":
            self.process.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture(params=["sqlite-file", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database(f"uvicorn_{uuid.uuid4().hex[:12]}")
    return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(database_url, tmp_path)
    try:
        server.wait_until_listening()
        yield server
    finally:
        server.kill()


@pytest.mark.slow
def test_full_flow_over_http_then_a_clean_ctrl_c(server: Server) -> None:
    base = server.base
    account = {"username": "alice", "password": "correct horse battery staple"}
    status, user = request("POST", f"{base}/auth/register", body=account)
    assert status == 201
    status, pair = request("POST", f"{base}/auth/login", form=account)
    assert status == 200
    assert pair["token_type"] == "bearer"
    status, notes = request("GET", f"{base}/notes", token=pair["access_token"])
    assert (status, notes["owner"]) == (200, "alice")
    status, me = request("GET", f"{base}/auth/me", token=pair["access_token"])
    assert me == user
    assert request("GET", f"{base}/notes")[0] == 401
    status, fresh = request(
        "POST", f"{base}/auth/refresh", body={"refresh_token": pair["refresh_token"]}
    )
    assert status == 200
    assert request("GET", f"{base}/notes", token=pair["access_token"])[0] == 401  # rotated away
    assert request("POST", f"{base}/auth/logout", token=fresh["access_token"])[0] == 204
    assert request("GET", f"{base}/notes", token=fresh["access_token"])[0] == 401

    started = time.monotonic()
    returncode, log = server.interrupt()
    assert time.monotonic() - started < 15  # generous: shutting down must not hang
    # uvicorn re-raises the signal after its graceful shutdown: SIGINT ends in a
    # KeyboardInterrupt it handles (exit 0); Windows' default Ctrl+Break handler
    # exits with STATUS_CONTROL_C_EXIT.
    assert returncode in ((0, 0xC000013A) if sys.platform == "win32" else (0,)), log
    assert "Application shutdown complete" in log
    for bad in ("Traceback", "ResourceWarning", "Event loop is closed", "was never awaited"):
        assert bad not in log, log
    for secret in (SECRET, account["password"], pair["refresh_token"], pair["access_token"]):
        assert secret not in log


def test_the_example_flow_logs_no_secret_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG on the root logger (aiosqlite's SQL parameters included): no password,
    hash, token, token digest or key in any record, formatted as a handler would."""
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy import text

    from authcore import hash_token, parse_token

    spec = importlib.util.spec_from_file_location(
        "fastapi_app_example", EXAMPLES / "fastapi_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    database = tmp_path / "app.db"
    password = "correct horse battery staple"
    account = {"username": "alice", "password": password}
    caplog.set_level(logging.DEBUG)
    with TestClient(example.create_app(f"sqlite+aiosqlite:///{database}", SECRET)) as client:
        assert client.post("/auth/register", json=account).status_code == 201
        pair = client.post("/auth/login", data=account).json()
        client.cookies.clear()
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.get("/notes", headers=headers).status_code == 200
        fresh = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
        client.cookies.clear()
        headers = {"Authorization": f"Bearer {fresh['access_token']}"}
        assert client.post("/auth/logout", headers=headers).status_code == 204
    engine = create_sync_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            [hashed] = conn.execute(text("SELECT password_hash FROM authcore_users")).scalars()
    finally:
        engine.dispose()
    tokens = [pair["refresh_token"], fresh["refresh_token"]]
    sentinels = [password, SECRET, hashed, pair["access_token"], fresh["access_token"], *tokens]
    sentinels += [hash_token(t) for t in tokens] + [parse_token(t).secret for t in tokens]
    sentinels += [hashed.rsplit("$", 1)[-1]]  # the hash's digest part alone
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert len(caplog.records) > 10  # DEBUG really was on
    for record in caplog.records:
        line = formatter.format(record)
        leaked = sum(s in line for s in sentinels)  # a count: never show the secret itself
        assert leaked == 0, f"{record.name}: {leaked} secret(s) in a log line"
