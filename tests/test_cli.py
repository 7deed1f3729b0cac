"""The command line, run in a subprocess as a user would (and in-process for finer branches)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from authcore import (
    PasswordHasher,
    SessionStore,
    UserStore,
    create_engine,
    create_schema,
    dispose_engine,
    metadata,
)
from authcore.cli import main
from authcore.testing import fast_hasher

SECRET = "sentinel-secret-0123456789abcdef-0123456789"
PASSWORD = "sentinel password ünïcode"
DB_PASSWORD = "sentinel-db-password"
UNREACHABLE = f"postgresql+asyncpg://app:{DB_PASSWORD}@127.0.0.1:1/app"


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment minus every AUTHCORE_* variable, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env.update(extra)
    return env


def authcore(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "authcore", *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def authcore_here(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`authcore`, run in this process by ``authcore.cli.main``; the same answer.

    The same environment (replaced, not added to), working folder and standard input
    (bytes, not a terminal). For tests about what a command does and says, which would
    otherwise start a Python per call; every command family also has tests that run it
    in a subprocess with :func:`authcore`.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    data = io.TextIOWrapper(io.BytesIO(b"" if stdin is None else stdin), encoding="utf-8")
    with (
        mock.patch.dict(os.environ, clean_env() if env is None else env, clear=True),
        mock.patch.object(sys, "stdin", data),
        contextlib.chdir(cwd),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        status = main(list(args))
    return subprocess.CompletedProcess(
        ["authcore", *args], status, stdout.getvalue(), stderr.getvalue()
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stderr.startswith("authcore: error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    return result.stderr


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def populate(path: Path, *, expired: int = 1) -> None:
    """A database with sessions in every state: see EXPECTED_STATS."""

    async def run() -> None:
        engine = create_engine(sqlite_url(path))
        try:
            await create_schema(engine)
            store = SessionStore(engine)
            await store.create_session("alice")  # active
            for _ in range(expired):
                await store.create_session("alice", ttl=timedelta(microseconds=1))
            await store.revoke(await store.create_session("bob"))  # revoked: purgeable
            await store.rotate(await store.create_session("carol"))  # kept + a new active one
            await UserStore(engine, hasher=fast_hasher()).create_user("alice", PASSWORD)
        finally:
            await dispose_engine(engine)

    asyncio.run(run())


EXPECTED_STATS = {
    "sessions": 5,
    "active_sessions": 2,
    "expired_sessions": 1,
    "revoked_sessions": 2,
    "awaiting_purge": 2,
    "users": 1,
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    populate(path)
    return path


# -- demo, usage, version, help ------------------------------------------------------


def test_demo_runs_twice_in_the_current_folder(tmp_path: Path) -> None:
    first = authcore("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    for words in (
        "Register two users",
        "Validate a token",
        "Rotate",
        "TokenReuseError",
        "revoked 2 session(s)",
        "<- this device",
        "deleted",
    ):
        assert words in first.stdout
    for word in first.stdout.split():  # never a whole token
        if word.startswith("token_"):
            assert word.endswith("…")
            assert len(word.rsplit("_", 1)[1]) < 16
    assert (tmp_path / "authcore-demo.db").exists()
    second = authcore("demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already registered" in second.stdout
    assert "left from an earlier run" in second.stdout


def test_demo_failure_is_one_line(tmp_path: Path) -> None:
    result = authcore("demo", "--database", str(tmp_path / "missing" / "x.db"), cwd=tmp_path)
    assert_one_line_error(result, 1)


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    result = authcore("no-such-command", cwd=tmp_path)
    assert "invalid choice" in assert_one_line_error(result, 2)
    result = authcore("gen-secret", "--bytes", "16", cwd=tmp_path)
    assert "--bytes: must be between 32 and 1024" in assert_one_line_error(result, 2)
    assert "authcore: error: " in authcore(cwd=tmp_path).stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["purge", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["purge", "--batch-size", "x"], "argument --batch-size: not a whole number: 'x'"),
        (["health", "--timeout", "soon"], "argument --timeout: not a number of seconds: 'soon'"),
        (["health", "--timeout", "0"], "argument --timeout: must be between 0 and 3600"),
        (["bench", "--rounds", "x"], "argument --rounds: invalid int value: 'x'"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: Any) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"authcore: error: {message}")
    assert err.endswith(f"(see `authcore {argv[0]} --help`)\n")
    assert err.count("\n") == 1


def test_version(tmp_path: Path) -> None:
    result = authcore("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("authcore ")


HEAVY = ("sqlalchemy", "passlib", "jose", "aiosqlite", "asyncpg", "bcrypt")
HELP_PROBE = """
import sys
{setup}
from authcore.cli import main
for argv in (["--help"], *([name, "--help"] for name in {commands!r})):
    assert main(argv) == 0
print(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}), file=sys.stderr)
"""
COMMANDS = ["demo", "init-db", "purge", "stats", "health", "hash-password", "gen-secret"]
COMMANDS += ["validate", "bench"]


def _help_imports(setup: str) -> str:
    code = HELP_PROBE.format(setup=setup, commands=COMMANDS, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "usage: authcore bench" in result.stdout
    return result.stderr.strip()


def test_the_cli_modules_import_nothing_heavy_for_help() -> None:
    # authcore/__init__.py is replaced by an empty package, so this checks what
    # authcore.cli and authcore.config themselves import.
    setup = (
        "import importlib.util, types\n"
        "spec = importlib.util.find_spec('authcore')\n"
        "package = types.ModuleType('authcore')\n"
        "package.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['authcore'] = package\n"
    )
    assert _help_imports(setup) == "[]"


def test_help_does_not_import_sqlalchemy() -> None:
    assert _help_imports("") == "[]"


# -- init-db, health -----------------------------------------------------------------


def test_init_db_then_health(tmp_path: Path) -> None:
    first = authcore("init-db", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    tables = [table.name for table in metadata.sorted_tables]
    assert f"created {', '.join(tables)} in " in first.stdout
    assert (tmp_path / "authcore.db").exists()
    again = authcore("init-db", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "schema already present" in again.stdout
    health = authcore("health", cwd=tmp_path)
    assert health.returncode == 0, health.stderr
    assert health.stdout.startswith("ok: sqlite+aiosqlite:///authcore.db: schema ok")
    assert "round trip" in health.stdout
    assert health.stderr == ""


def test_health_never_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    for command in ("health", "stats", "purge"):
        result = authcore_here(command, cwd=tmp_path)
        message = assert_one_line_error(result, 1)
        assert f"{tmp_path / 'authcore.db'} does not exist" in message
        assert "authcore init-db" in message
    url = sqlite_url(tmp_path / "elsewhere.db")
    assert_one_line_error(authcore_here("health", "--database-url", url, cwd=tmp_path), 1)
    assert list(tmp_path.iterdir()) == []


def test_health_reports_a_missing_schema(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "authcore.db").close()
    message = assert_one_line_error(authcore("health", cwd=tmp_path), 1)
    missing = ", ".join(f"table {table.name}" for table in metadata.sorted_tables)
    assert f"schema incomplete: missing {missing};" in message


def test_missing_columns_are_reported_not_papered_over(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "authcore.db")
    try:  # (a sqlite3 connection's `with` commits but does not close it)
        conn.execute("CREATE TABLE authcore_users (id TEXT PRIMARY KEY)")
        conn.commit()
    finally:
        conn.close()
    message = assert_one_line_error(authcore("health", cwd=tmp_path), 1)
    assert "column authcore_users.username" in message
    message = assert_one_line_error(authcore("init-db", cwd=tmp_path), 1)
    assert "existing tables lack column authcore_users.username" in message


def test_an_unreachable_database_fails_in_one_line_without_its_password(tmp_path: Path) -> None:
    for command in ("health", "stats", "purge", "init-db"):
        result = authcore_here(command, "--database-url", UNREACHABLE, cwd=tmp_path)
        message = assert_one_line_error(result, 1)
        assert "unreachable" in message
        assert "postgresql+asyncpg://app:***@127.0.0.1:1/app" in message
        assert DB_PASSWORD not in result.stdout + result.stderr


def test_engine_options_in_the_url_are_checked(tmp_path: Path) -> None:
    url = f"{UNREACHABLE}?command_timeout=soon"
    result = authcore("health", "--database-url", url, cwd=tmp_path)
    message = assert_one_line_error(result, 2)
    assert "database_url: command_timeout in the database URL must be" in message
    env = clean_env(AUTHCORE_SECRET_KEY=SECRET)
    result = authcore("validate", "--check-db", "--database-url", url, cwd=tmp_path, env=env)
    assert_one_line_error(result, 2)
    assert "  - database_url: command_timeout in the database URL must be" in result.stdout
    assert DB_PASSWORD not in result.stdout + result.stderr


def test_health_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import authcore.cli._database

    async def never(*_: object) -> tuple[float, float]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(authcore.cli._database, "_round_trips", never)
    sqlite3.connect(tmp_path / "x.db").close()
    status = main(["health", "--timeout", "0.05", "--database-url", sqlite_url(tmp_path / "x.db")])
    assert status == 1
    assert "no answer from sqlite+aiosqlite:///" in capsys.readouterr().err


# -- stats, purge ----------------------------------------------------------------------


def test_stats_table_and_json(db: Path) -> None:
    url = sqlite_url(db)
    table = authcore("stats", "--database-url", url, cwd=db.parent)
    assert table.returncode == 0, table.stderr
    lines = dict(line.rsplit(None, 1) for line in table.stdout.splitlines()[1:])
    assert lines == {
        "sessions stored": "5",
        "  active": "2",
        "  expired": "1",
        "  revoked": "2",
        "awaiting purge": "2",
        "users": "1",
    }
    result = authcore("--database-url", url, "stats", "--json", cwd=db.parent)  # flag first
    report = json.loads(result.stdout)
    assert {key: report[key] for key in EXPECTED_STATS} == EXPECTED_STATS
    assert report["database"] == url


def test_purge_dry_run_then_purge(db: Path) -> None:
    env = clean_env(AUTHCORE_DATABASE_URL=sqlite_url(db))
    dry = authcore_here("purge", "--dry-run", cwd=db.parent, env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would purge 2 expired or revoked sessions from ")
    assert (
        json.loads(authcore_here("stats", "--json", cwd=db.parent, env=env).stdout)["sessions"] == 5
    )
    purge = authcore_here("purge", cwd=db.parent, env=env)
    assert purge.returncode == 0, purge.stderr
    assert purge.stdout.startswith("purged 2 expired or revoked sessions from ")
    assert "\r" not in purge.stdout + purge.stderr  # no progress bar off a terminal
    after = json.loads(authcore_here("stats", "--json", cwd=db.parent, env=env).stdout)
    assert after["sessions"] == 3
    assert after["awaiting_purge"] == 0
    assert after["revoked_sessions"] == 1  # the rotated-away token, kept for reuse detection
    again = authcore_here("purge", cwd=db.parent, env=env)
    assert again.stdout.startswith("purged 0 expired or revoked sessions")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_purge_draws_a_progress_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    populate(tmp_path / "app.db", expired=24)  # 25 purgeable rows
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    url = sqlite_url(tmp_path / "app.db")
    assert main(["purge", "--batch-size", "10", "--database-url", url]) == 0
    frames = terminal.getvalue().split("\r")[1:]
    assert [frame.split()[-1] for frame in frames] == ["10/25", "20/25", "25/25"]
    assert frames[-1] == f"purging [{'#' * 30}] 100%  25/25\n"
    assert "purged 25 expired or revoked sessions" in capsys.readouterr().out


def test_a_bad_configuration_stops_a_database_command(tmp_path: Path) -> None:
    env = clean_env(AUTHCORE_SESSION_TTL="soon", AUTHCORE_BCRYPT_ROUNDS="99")
    message = assert_one_line_error(authcore("stats", cwd=tmp_path, env=env), 2)
    assert "invalid configuration: AUTHCORE_SESSION_TTL: invalid duration 'soon'" in message
    assert "AUTHCORE_BCRYPT_ROUNDS: must be between 10 and 16, got 99" in message
    assert list(tmp_path.iterdir()) == []


# -- hash-password, gen-secret --------------------------------------------------------


def test_hash_password_from_stdin(tmp_path: Path) -> None:
    hasher = PasswordHasher()
    for data in (PASSWORD.encode(), f"{PASSWORD}\n".encode(), f"{PASSWORD}\r\n".encode()):
        result = authcore("hash-password", cwd=tmp_path, stdin=data)
        assert result.returncode == 0, result.stderr
        hashed = result.stdout.strip()
        assert result.stdout.count("\n") == 1
        assert hashed.startswith("$bcrypt-sha256$v=2,t=2b,r=12$")
        assert hasher.verify_sync(PASSWORD, hashed)
        assert PASSWORD not in result.stdout + result.stderr
    plain = authcore(
        "hash-password", "--scheme", "bcrypt", "--rounds", "10", cwd=tmp_path, stdin=b"x"
    )
    assert plain.stdout.startswith("$2b$10$")


def test_hash_password_test_rounds_need_the_flag(tmp_path: Path) -> None:
    refused = authcore("hash-password", "--rounds", "4", cwd=tmp_path, stdin=b"pw")
    assert "--allow-test-rounds" in assert_one_line_error(refused, 2)
    env = clean_env(AUTHCORE_BCRYPT_ROUNDS="4")
    fast = authcore("--allow-test-rounds", "hash-password", cwd=tmp_path, env=env, stdin=b"pw")
    assert fast.stdout.startswith("$bcrypt-sha256$v=2,t=2b,r=4$")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "password must not be empty"),
        (b"\n", "password must not be empty"),
        (f"{PASSWORD}\nsecond line\n".encode(), "expected one line on standard input"),
        (b"caf\xe9 " + PASSWORD.encode(), "standard input is not UTF-8 text"),
        (b"x" * 2000, "longer than 1024 characters"),
    ],
)
def test_hash_password_refusals_never_echo_it(tmp_path: Path, data: bytes, message: str) -> None:
    result = authcore_here("hash-password", cwd=tmp_path, stdin=data)
    assert message in assert_one_line_error(result, 1)
    assert result.stdout == ""
    assert PASSWORD not in result.stderr
    assert "x" * 20 not in result.stderr


def test_hash_password_prompts_twice_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    answers: list[str] = []
    prompts: list[str] = []

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    answers[:] = [PASSWORD, PASSWORD]
    assert main(["--allow-test-rounds", "hash-password", "--rounds", "4"]) == 0
    out, err = capsys.readouterr()
    assert prompts == ["Password: ", "Repeat it: "]
    assert fast_hasher().verify_sync(PASSWORD, out.strip())
    assert PASSWORD not in out + err
    answers[:] = [PASSWORD, PASSWORD + "!"]
    assert main(["--allow-test-rounds", "hash-password", "--rounds", "4"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "authcore: error: the two passwords differ\n")


def test_gen_secret(tmp_path: Path) -> None:
    first = authcore("gen-secret", cwd=tmp_path)
    second = authcore("gen-secret", "--bytes", "64", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert len(first.stdout.strip()) == 43  # 32 bytes, URL-safe base64
    assert len(second.stdout.strip()) == 86
    assert first.stdout != authcore("gen-secret", cwd=tmp_path).stdout
    secret = first.stdout.strip()
    env = clean_env(AUTHCORE_SECRET_KEY=secret)
    validated = authcore("validate", cwd=tmp_path, env=env)
    assert validated.returncode == 0, validated.stdout
    assert secret not in validated.stdout + validated.stderr


# -- validate -----------------------------------------------------------------------------


GOOD = f"""
[authcore]
database_url = "sqlite+aiosqlite:///app.db"
secret_key = "{SECRET}"
session_ttl = "14d"
idle_timeout = "2h"
access_ttl = 900
bcrypt_rounds = 12
"""


def test_validate_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "authcore.toml").write_text(GOOD)
    result = authcore("validate", "--config-file", "authcore.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("authcore.toml: configuration ok\n")
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert rows["secret_key"] == ["set", "(43", "bytes)", "(from", "file)"]
    assert rows["idle_timeout"] == ["2h", "(from", "file)"]
    assert rows["access_ttl"] == ["15m", "(from", "file)"]
    assert SECRET not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "authcore.toml"]  # no database created


def test_validate_shows_precedence(tmp_path: Path) -> None:
    (tmp_path / "authcore.toml").write_text(GOOD)
    env = clean_env(
        AUTHCORE_SESSION_TTL="30d",
        AUTHCORE_DATABASE_URL="sqlite+aiosqlite:///env.db",
        AUTHCORE_SOMETHING_ELSE="ignored",
        AUTHCORE_IDLE_TIMEOUT="90s",
    )
    args = ("--config-file", "authcore.toml", "validate", "--database-url", "sqlite+aiosqlite://")
    result = authcore(*args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in result.stdout.splitlines()}
    assert rows["database_url"] == "sqlite+aiosqlite:// (from command line)"
    assert rows["session_ttl"] == "30d (from AUTHCORE_SESSION_TTL)"
    assert rows["bcrypt_rounds"] == "12 (from file)"
    assert rows["idle_timeout"] == "90s (from AUTHCORE_IDLE_TIMEOUT)"
    no_file = authcore("validate", cwd=tmp_path, env=clean_env(AUTHCORE_SECRET_KEY=SECRET))
    assert "session_ttl 14d (default)" in " ".join(no_file.stdout.split())


def test_validate_reports_every_problem_and_no_secret(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        f"""
        [authcore]
        database_url = "postgresql+psycopg2://app:{DB_PASSWORD}@db/app"
        secret_key = "sentinel-too-short"
        session_ttl = "3x"
        idle_timeout = 30
        access_ttl = 1.5
        bcrypt_rounds = 8
        sesion_ttl = "1d"
        """
    )
    result = authcore("validate", "--config-file", "bad.toml", cwd=tmp_path)
    assert assert_one_line_error(result, 2) == (
        "authcore: error: invalid configuration (7 problems listed above)\n"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "bad.toml: 7 problems"
    named = [line.removeprefix("  - ").split(":")[0] for line in lines[1:]]
    assert named == [
        "sesion_ttl",
        "database_url",
        "secret_key",
        "session_ttl",
        "idle_timeout",
        "access_ttl",
        "bcrypt_rounds",
    ]
    assert "sentinel-too-short" not in result.stdout + result.stderr
    assert DB_PASSWORD not in result.stdout + result.stderr


def test_validate_requires_a_secret_and_a_readable_file(tmp_path: Path) -> None:
    result = authcore("validate", cwd=tmp_path)
    assert_one_line_error(result, 2)
    assert "secret_key: missing" in result.stdout
    env = clean_env(AUTHCORE_SECRET_KEY=SECRET)
    result = authcore("validate", "--config-file", "nope.toml", cwd=tmp_path, env=env)
    assert_one_line_error(result, 2)
    assert "config file: nope.toml does not exist" in result.stdout


def test_validate_check_db(tmp_path: Path) -> None:
    env = clean_env(AUTHCORE_SECRET_KEY=SECRET)
    missing = authcore("validate", "--check-db", cwd=tmp_path, env=env)
    assert_one_line_error(missing, 2)
    assert "database_url: cannot use the database: database file" in missing.stdout
    assert list(tmp_path.iterdir()) == []  # never created
    unreachable = authcore(
        "validate", "--check-db", "--database-url", UNREACHABLE, cwd=tmp_path, env=env
    )
    assert_one_line_error(unreachable, 2)
    assert "unreachable" in unreachable.stdout
    assert DB_PASSWORD not in unreachable.stdout + unreachable.stderr
    sqlite3.connect(tmp_path / "authcore.db").close()
    bare = authcore("validate", "--check-db", cwd=tmp_path, env=env)
    assert bare.returncode == 0, bare.stdout
    assert "schema incomplete" in bare.stdout  # a note: the configuration itself is fine
    authcore("init-db", cwd=tmp_path)
    ready = authcore("validate", "--check-db", cwd=tmp_path, env=env)
    assert "database       schema ok, connect" in ready.stdout
    # A bad URL is reported once, without also trying to connect.
    bad = authcore("validate", "--check-db", "--database-url", "nope://x", cwd=tmp_path, env=env)
    assert bad.stdout.splitlines()[1:] == [
        "  - database_url: unknown database driver 'nope' in nope://x"
    ]


# -- error handling, in-process -------------------------------------------------------------


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Make `authcore gen-secret` raise whatever the test puts in the list."""
    import authcore.cli

    errors: list[BaseException] = []

    def command(_: object) -> int:
        raise errors[0]

    monkeypatch.setitem(authcore.cli._COMMANDS, "gen-secret", command)
    return errors


def test_unexpected_errors_show_no_message(failing: list[BaseException], capsys: Any) -> None:
    failing.append(RuntimeError(f"boom {SECRET}"))
    assert main(["gen-secret"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "authcore: error: unexpected RuntimeError; run again with --debug to see the traceback\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        main(["gen-secret", "--debug"])


def test_debug_shows_tracebacks_for_expected_errors(failing: list[BaseException]) -> None:
    from authcore import StorageError
    from authcore.config import ConfigError

    for error in (StorageError("down"), ConfigError(["a: b"]), ModuleNotFoundError("x")):
        failing[:] = [error]
        with pytest.raises(type(error)):
            main(["--debug", "gen-secret"])


def test_missing_driver(failing: list[BaseException], capsys: Any) -> None:
    failing.append(ModuleNotFoundError("No module named 'asyncpg'", name="asyncpg"))
    assert main(["gen-secret"]) == 1
    assert capsys.readouterr().err == (
        "authcore: error: missing module 'asyncpg' (pip install 'authcore[postgres]')\n"
    )


def test_interrupt_and_broken_pipe(
    failing: list[BaseException], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing.append(KeyboardInterrupt())
    assert main(["gen-secret"]) == 130
    assert capsys.readouterr().err == "authcore: interrupted\n"
    failing[:] = [BrokenPipeError()]
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test
    assert main(["gen-secret"]) == 0
    sys.stdout.close()
