"""Tests of the throwaway PostgreSQL helper the suite runs its postgres tests on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from . import pgserver
from .pgserver import PostgresServer, find_pg_bin

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        find_pg_bin() is None,
        reason="NO POSTGRESQL SERVER BINARIES (initdb/pg_ctl/postgres) FOUND: postgres tests "
        "are NOT being run; install them (apt-get install postgresql)",
    ),
]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


async def _scalar(url: str, sql: str) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


def _postmaster_pid(server: PostgresServer) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])


async def test_connects_with_asyncpg(pg: PostgresServer) -> None:
    assert pg.running
    assert pg.url().startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    assert await _scalar(pg.url(), "select 1") == 1
    assert pg.psql("select 1") == "1"
    assert pg.startup_seconds is not None
    assert pg.startup_seconds < 10


async def test_create_database(pg: PostgresServer) -> None:
    url = pg.create_database("created by test")
    assert url == pg.url("created by test")
    assert await _scalar(url, "select current_database()") == "created by test"


def test_listens_on_loopback_only(pg: PostgresServer) -> None:
    assert pg.psql("show listen_addresses") == "127.0.0.1"
    assert pg.psql("show fsync") == "off"
    assert pg.root is not None
    assert pg.psql("show unix_socket_directories") == str(pg.root)
    assert (pg.root.stat().st_mode & 0o777) == 0o700


async def test_stop_and_start_server_keep_data_and_port() -> None:
    with PostgresServer() as server:
        server.psql("create table kept (v int); insert into kept values (42)")
        port, first_pid = server.port, _postmaster_pid(server)
        server.stop_server()
        assert not server.running
        assert not pgserver._alive(first_pid)
        assert server.data_dir.is_dir()
        server.start_server()
        assert server.port == port
        assert await _scalar(server.url(), "select v from kept") == 42
        server.restart()
        assert server.psql("select v from kept") == "42"


def test_stop_removes_folder_and_server() -> None:
    server = PostgresServer().start()
    root, pid = server.root, _postmaster_pid(server)
    assert root is not None
    assert root.is_dir()
    assert pgserver._alive(pid)
    server.stop()
    assert not root.exists()
    assert not pgserver._alive(pid)
    assert not server.running
    assert server not in pgserver._live
    server.stop()  # twice is fine


def test_retries_on_a_taken_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1]]
        real = pgserver._free_port
        monkeypatch.setattr(pgserver, "_free_port", lambda: ports.pop() if ports else real())
        with PostgresServer() as server:
            assert server.port != taken.getsockname()[1]
            assert server.psql("select 1") == "1"


def test_watchdog_stops_server_when_owner_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(pgserver.__file__).parent)!r})\n"
        "from pgserver import PostgresServer\n"
        "pg = PostgresServer().start()\n"
        "pid = (pg.data_dir / 'postmaster.pid').read_text().split()[0]\n"
        "print(pg.root, pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        root, pid = owner.stdout.readline().split()
    finally:
        owner.kill()  # SIGKILL: no atexit, no finally
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (Path(root).exists() or pgserver._alive(int(pid))):
        time.sleep(0.1)
    assert not pgserver._alive(int(pid))
    assert not Path(root).exists()


def test_find_pg_bin_has_server_tools() -> None:
    bindir = find_pg_bin()
    assert bindir is not None
    for tool in ("initdb", "pg_ctl", "postgres", "psql"):
        assert os.access(bindir / tool, os.X_OK)
