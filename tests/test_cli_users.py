"""``authcore users ...`` as an operator runs it: in a subprocess and on a terminal.

What the commands do to the database and what they say is checked in this process
(``users``, through ``authcore.cli.main``): one Python start-up less per call.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from authcore import SessionStore, UserStore, create_engine, create_schema, dispose_engine
from authcore.testing import fast_hasher

from .test_cli import assert_one_line_error, authcore, authcore_here, clean_env, sqlite_url

PASSWORD = "sentinel passphrase ünïcode 7"
NEW_PASSWORD = "sentinel replacement passphrase 8"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"

    async def run() -> None:
        engine = create_engine(sqlite_url(path))
        try:
            await create_schema(engine)
        finally:
            await dispose_engine(engine)

    asyncio.run(run())
    return path


def users(
    db: Path, *args: str, stdin: str | None = None, in_subprocess: bool = False
) -> subprocess.CompletedProcess[str]:
    """``authcore users ARGS`` on *db*, fast bcrypt, the password (if any) on stdin.

    In this process unless *in_subprocess*.
    """
    env = clean_env(AUTHCORE_DATABASE_URL=sqlite_url(db), AUTHCORE_BCRYPT_ROUNDS="4")
    extra = ["--allow-test-rounds"]
    data = None if stdin is None else stdin.encode()
    run = authcore if in_subprocess else authcore_here
    return run("users", *args, *extra, cwd=db.parent, env=env, stdin=data)


def check(db: Path, username: str, password: str) -> tuple[bool, int]:
    """(can log in, active sessions) for *username*, in-process."""

    async def run() -> tuple[bool, int]:
        engine = create_engine(sqlite_url(db))
        try:
            store = UserStore(engine, hasher=fast_hasher())
            user = await store.authenticate(username, password)
            found = await store.get_user_by_username(username)
            assert found is not None
            return user is not None, len(await SessionStore(engine).list_sessions(found.id))
        finally:
            await dispose_engine(engine)

    return asyncio.run(run())


def log_in(db: Path, username: str, times: int = 2) -> None:
    async def run() -> None:
        engine = create_engine(sqlite_url(db))
        try:
            user = await UserStore(engine).get_user_by_username(username)
            assert user is not None
            for _ in range(times):
                await SessionStore(engine).create_session(user.id)
        finally:
            await dispose_engine(engine)

    asyncio.run(run())


def assert_no_password(result: subprocess.CompletedProcess[str], *passwords: str) -> None:
    for password in passwords or (PASSWORD, NEW_PASSWORD):
        assert password not in result.stdout
        assert password not in result.stderr
        assert password.split()[1] not in result.stdout + result.stderr


def test_create_with_password_stdin(db: Path) -> None:
    result = users(
        db,
        "create",
        "Admin",
        "--email",
        "admin@example.com",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        in_subprocess=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created user 'Admin' (id ")
    assert result.stderr == ""
    assert_no_password(result)
    assert check(db, "admin", PASSWORD) == (True, 0)
    again = users(db, "create", "ADMIN", "--password-stdin", stdin=PASSWORD, in_subprocess=True)
    assert "already taken" in assert_one_line_error(again, 1)
    assert_no_password(again)


def test_the_password_policy_applies(db: Path) -> None:
    for weak in ("password", "short", "bobby"):
        result = users(db, "create", "bobby", "--password-stdin", stdin=weak + "\n")
        error = assert_one_line_error(result, 1)
        assert "password refused" in error
        assert weak not in result.stdout
    listed = users(db, "list", "--json")
    assert json.loads(listed.stdout) == []


def test_usage_errors_exit_2_and_change_nothing(db: Path) -> None:
    cases = [
        (["create", "alice"], None, "use --password-stdin"),  # no terminal, no flag
        (["create", "", "--password-stdin"], PASSWORD, "not a valid username"),
        (["create", "a" * 151, "--password-stdin"], PASSWORD, "not a valid username"),
        (["create", "alice", "--email", "nope", "--password-stdin"], PASSWORD, "email"),
        (["create", "alice", "--password-stdin"], "two\nlines", "one line"),
        (["create", "alice", "--password-stdin"], "\udcff", "UTF-8"),
        (["create", "alice", PASSWORD], None, "unrecognized arguments"),
        (["set-password", "alice"], None, "use --password-stdin"),
        (["frobnicate"], None, "invalid choice"),
        ([], None, "required"),
    ]
    for args, stdin, words in cases:
        env = clean_env(AUTHCORE_DATABASE_URL=sqlite_url(db))
        data = None if stdin is None else stdin.encode("utf-8", "surrogateescape")
        result = authcore_here("users", *args, cwd=db.parent, env=env, stdin=data)
        assert words in assert_one_line_error(result, 2), args
    assert json.loads(users(db, "list", "--json").stdout) == []


def test_a_password_typed_as_an_argument_is_never_repeated(db: Path) -> None:
    """Usage errors name unknown options but never echo a value: it may be a password."""
    env = clean_env(AUTHCORE_DATABASE_URL=sqlite_url(db))
    cases = [
        ["users", "create", "alice", PASSWORD],
        ["users", "set-password", "alice", "--password", PASSWORD],
        ["users", "create", f"--password-stdin={PASSWORD}", "alice"],
        ["hash-password", PASSWORD],
        ["stats", f"--password={PASSWORD}"],
    ]
    for args in cases:
        error = assert_one_line_error(authcore_here(*args, cwd=db.parent, env=env), 2)
        assert "not shown" in error, args
        assert PASSWORD.split()[0] not in error, args  # not even a word of it
    error = assert_one_line_error(authcore_here("stats", "--frob", cwd=db.parent, env=env), 2)
    assert "unrecognized arguments: --frob (see" in error
    assert json.loads(users(db, "list", "--json").stdout) == []


def test_set_password_revokes_sessions(db: Path) -> None:
    assert users(db, "create", "alice", "--password-stdin", stdin=PASSWORD).returncode == 0
    log_in(db, "alice", times=3)
    result = users(db, "set-password", "ALICE", "--password-stdin", stdin=NEW_PASSWORD + "\r\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "password changed for 'alice'; revoked 3 sessions\n"
    assert_no_password(result)
    assert check(db, "alice", NEW_PASSWORD) == (True, 0)
    assert check(db, "alice", PASSWORD)[0] is False
    weak = users(db, "set-password", "alice", "--password-stdin", stdin="alice123")
    assert "password refused" in assert_one_line_error(weak, 1)
    assert check(db, "alice", NEW_PASSWORD) == (True, 0)


def test_deactivate_activate_and_revoke_sessions(db: Path) -> None:
    assert users(db, "create", "alice", "--password-stdin", stdin=PASSWORD).returncode == 0
    log_in(db, "alice", times=2)
    result = users(db, "deactivate", "alice")
    assert result.stdout == "deactivated 'alice'; revoked 2 sessions\n"
    assert check(db, "alice", PASSWORD) == (False, 0)
    assert users(db, "activate", "alice").stdout == "activated 'alice'\n"
    assert check(db, "alice", PASSWORD) == (True, 0)
    log_in(db, "alice", times=1)
    assert users(db, "revoke-sessions", "alice").stdout == "revoked 1 session of 'alice'\n"
    assert check(db, "alice", PASSWORD) == (True, 0)
    for action in ("deactivate", "activate", "revoke-sessions"):
        missing = users(db, action, "nobody")
        assert "no user named 'nobody'" in assert_one_line_error(missing, 1)


def test_list(db: Path) -> None:
    assert users(db, "list").stdout == "no users\n"
    users(db, "create", "carol", "--email", "carol@example.com", "--password-stdin", stdin=PASSWORD)
    users(db, "create", "al", "--password-stdin", stdin=PASSWORD)
    users(db, "deactivate", "al")
    table = users(db, "list").stdout.splitlines()
    assert table[0].split() == ["USERNAME", "ACTIVE", "VERIFIED", "CREATED", "EMAIL"]
    assert table[1].split()[:3] == ["carol", "yes", "no"]
    assert table[1].split()[-1] == "carol@example.com"
    assert table[2].split()[:3] == ["al", "no", "no"]
    listed = json.loads(users(db, "list", "--json").stdout)
    assert [u["username"] for u in listed] == ["carol", "al"]
    assert set(listed[0]) == {
        "id",
        "username",
        "email",
        "is_active",
        "is_verified",
        "created_at",
        "last_login_at",
    }
    assert listed[0]["created_at"].endswith("+00:00")
    assert all("hash" not in key for key in listed[0])


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    result = users(tmp_path / "missing.db", "list", in_subprocess=True)
    assert "does not exist" in assert_one_line_error(result, 1)
    assert not (tmp_path / "missing.db").exists()


def test_options_after_the_action(db: Path) -> None:
    env = clean_env()
    result = authcore(
        "users", "list", "--json", "--database-url", sqlite_url(db), cwd=db.parent, env=env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# -- on a terminal -------------------------------------------------------------------

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX-only")


class Terminal:
    """A child process on a pseudo-terminal: what it prints and what the terminal echoes."""

    def __init__(self, db: Path, *args: str) -> None:
        import pty

        self.master, slave = pty.openpty()
        env = clean_env(AUTHCORE_DATABASE_URL=sqlite_url(db), AUTHCORE_BCRYPT_ROUNDS="4")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "error",
                "-m",
                "authcore",
                "users",
                *args,
                "--allow-test-rounds",
            ],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=db.parent,
            env=env,
            start_new_session=True,  # no controlling terminal: getpass uses stdin, the pty
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} on the terminal; saw {self.screen!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {text!r}; saw {self.screen!r}"
                self.screen += chunk

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self) -> int:
        status = self.process.wait(timeout=60)
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk
        os.close(self.master)
        return status


@needs_pty
def test_the_prompt_does_not_echo(db: Path) -> None:
    terminal = Terminal(db, "create", "alice")
    terminal.read_until(b"Password: ")
    terminal.type(PASSWORD)
    terminal.read_until(b"Repeat it: ")
    terminal.type(PASSWORD)
    assert terminal.finish() == 0, terminal.screen
    screen = terminal.screen.decode()
    assert "created user 'alice'" in screen
    assert PASSWORD not in screen
    assert PASSWORD.split()[1] not in screen
    assert check(db, "alice", PASSWORD) == (True, 0)


@needs_pty
def test_two_different_passwords_change_nothing(db: Path) -> None:
    terminal = Terminal(db, "create", "alice")
    terminal.read_until(b"Password: ")
    terminal.type(PASSWORD)
    terminal.read_until(b"Repeat it: ")
    terminal.type(NEW_PASSWORD)
    assert terminal.finish() == 1
    screen = terminal.screen.decode()
    assert "authcore: error: the two passwords differ; nothing changed" in screen
    assert PASSWORD not in screen
    assert NEW_PASSWORD not in screen
    assert json.loads(users(db, "list", "--json").stdout) == []
