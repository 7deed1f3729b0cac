"""Settings: durations, the TOML file, the environment, precedence and every problem reported."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from authcore.config import (
    ENVIRONMENT_VARIABLES,
    ConfigError,
    Settings,
    load_settings,
    parse_duration,
    safe_url,
)

SECRET = "sentinel-secret-0123456789abcdef-0123456789"  # 43 bytes
SHORT_SECRET = "sentinel-short-secret"
DB_PASSWORD = "sentinel-db-password"


def write(tmp_path: Path, text: str, name: str = "authcore.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(**kwargs: object) -> list[str]:
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as caught:
        load_settings(**kwargs)  # type: ignore[arg-type]
    return caught.value.problems


# -- durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("14d", timedelta(days=14)),
        (" 5 m ", timedelta(minutes=5)),
        ("3600", timedelta(hours=1)),
        (45, timedelta(seconds=45)),
        ("36500d", timedelta(days=36_500)),
    ],
)
def test_parse_duration(value: str | int, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3x", "invalid duration '3x'"),
        ("", "invalid duration ''"),
        ("1.5h", "invalid duration"),
        ("-5m", "invalid duration"),
        ("1h30m", "invalid duration"),
        ("0s", "must be positive"),
        (0, "must be positive"),
        (-3, "must be positive"),
        ("36501d", "at most 100 years"),
        (10**12, "at most 100 years"),
        (True, "got a boolean"),
        (1.5, "got a number"),
        (None, "got a NoneType"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, key="session_ttl")  # type: ignore[arg-type]
    assert caught.value.problems == [str(caught.value)]
    assert str(caught.value).startswith("session_ttl: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- Settings ----------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///authcore.db"
    assert settings.secret_key is None
    assert settings.session_ttl == timedelta(days=14)
    assert settings.idle_timeout is None
    assert settings.access_ttl == timedelta(minutes=15)
    assert settings.bcrypt_rounds == 12
    assert settings.allow_test_rounds is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.bcrypt_rounds = 13  # type: ignore[misc]


def test_settings_repr_hides_the_secret_and_the_database_password() -> None:
    settings = Settings(
        database_url=f"postgresql+asyncpg://app:{DB_PASSWORD}@db.internal/app",
        secret_key=SECRET,
    )
    text = repr(settings)
    assert SECRET not in text
    assert DB_PASSWORD not in text
    assert "secret_key='***'" in text
    assert "postgresql+asyncpg://app:***@db.internal/app" in text
    assert "secret_key=None" in repr(Settings())


def test_settings_check_every_field_at_construction() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(
            database_url="mysql://nowhere/x",
            secret_key=SHORT_SECRET,
            session_ttl=timedelta(0),
            idle_timeout=timedelta(seconds=30),
            access_ttl="15m",  # type: ignore[arg-type]
            bcrypt_rounds=4,
        )
    keys = [problem.split(":")[0] for problem in caught.value.problems]
    assert keys == [
        "database_url",
        "secret_key",
        "session_ttl",
        "idle_timeout",
        "access_ttl",
        "bcrypt_rounds",
    ]
    assert SHORT_SECRET not in str(caught.value)


def test_settings_wrong_types() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(database_url=1, secret_key=2, bcrypt_rounds="12")  # type: ignore[arg-type]
    assert caught.value.problems == [
        "database_url: must be a string, got an integer",
        "secret_key: must be a string, got an integer",
        "bcrypt_rounds: must be an int, got a string",
    ]
    with pytest.raises(ConfigError, match="session_ttl: must be positive"):
        Settings(session_ttl=timedelta(seconds=-1))
    with pytest.raises(ConfigError, match="session_ttl: must be at most 100 years"):
        Settings(session_ttl=timedelta(days=40_000))


def test_test_rounds_need_the_flag() -> None:
    with pytest.raises(ConfigError, match="--allow-test-rounds"):
        Settings(bcrypt_rounds=4)
    assert Settings(bcrypt_rounds=4, allow_test_rounds=True).bcrypt_rounds == 4
    assert Settings(bcrypt_rounds=16).bcrypt_rounds == 16
    for rounds in (3, 17):
        with pytest.raises(ConfigError, match="between 4 and 16"):
            Settings(bcrypt_rounds=rounds, allow_test_rounds=True)


# -- loading --------------------------------------------------------------------------


def test_defaults_when_nothing_is_given() -> None:
    assert load_settings(environ={}) == Settings()


def test_a_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        [authcore]
        database_url = "sqlite+aiosqlite:///app.db"
        secret_key = "{SECRET}"
        session_ttl = "7d"
        idle_timeout = "2h"
        access_ttl = 600
        bcrypt_rounds = 13

        [myapp]  # other tables belong to the application
        debug = true
        """,
    )
    settings = load_settings(config_file=path, environ={}, require_secret=True)
    assert settings == Settings(
        database_url="sqlite+aiosqlite:///app.db",
        secret_key=SECRET,
        session_ttl=timedelta(days=7),
        idle_timeout=timedelta(hours=2),
        access_ttl=timedelta(minutes=10),
        bcrypt_rounds=13,
    )


def test_precedence_flags_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[authcore]\nsession_ttl = "1d"\naccess_ttl = "1m"\nidle_timeout = "1h"\n'
        'database_url = "sqlite+aiosqlite:///file.db"\n',
    )
    environ = {
        "AUTHCORE_SESSION_TTL": "2d",
        "AUTHCORE_DATABASE_URL": "sqlite+aiosqlite:///env.db",
    }
    overrides = {"database_url": "sqlite+aiosqlite:///flag.db", "bcrypt_rounds": None}
    settings = load_settings(config_file=path, environ=environ, overrides=overrides)
    assert settings.database_url == "sqlite+aiosqlite:///flag.db"  # flag > env > file
    assert settings.session_ttl == timedelta(days=2)  # env > file
    assert settings.access_ttl == timedelta(minutes=1)  # file > default
    assert settings.idle_timeout == timedelta(hours=1)
    assert settings.bcrypt_rounds == 12  # default; a None override is "not given"


def test_environment_variables(tmp_path: Path) -> None:
    environ = {
        "AUTHCORE_DATABASE_URL": "sqlite+aiosqlite:///env.db",
        "AUTHCORE_SECRET_KEY": SECRET,
        "AUTHCORE_SESSION_TTL": "86400",
        "AUTHCORE_IDLE_TIMEOUT": "30m",
        "AUTHCORE_ACCESS_TTL": "5m",
        "AUTHCORE_BCRYPT_ROUNDS": " 11 ",
        "AUTHCORE_SESSION_TTL_EXTRA": "nonsense",  # other AUTHCORE_* names are ignored
        "AUTHCORE_DEBUG": "1",
    }
    settings = load_settings(environ=environ)
    assert settings == Settings(
        database_url="sqlite+aiosqlite:///env.db",
        secret_key=SECRET,
        session_ttl=timedelta(days=1),
        idle_timeout=timedelta(minutes=30),
        access_ttl=timedelta(minutes=5),
        bcrypt_rounds=11,
    )
    assert sorted(ENVIRONMENT_VARIABLES) == [
        "AUTHCORE_ACCESS_TTL",
        "AUTHCORE_BCRYPT_ROUNDS",
        "AUTHCORE_DATABASE_URL",
        "AUTHCORE_IDLE_TIMEOUT",
        "AUTHCORE_SECRET_KEY",
        "AUTHCORE_SESSION_TTL",
    ]


def test_empty_environment_variables_count_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path, '[authcore]\nsession_ttl = "3d"\n')
    settings = load_settings(
        config_file=path, environ={"AUTHCORE_SESSION_TTL": "", "AUTHCORE_SECRET_KEY": ""}
    )
    assert settings.session_ttl == timedelta(days=3)
    assert settings.secret_key is None


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHCORE_ACCESS_TTL", "7m")
    assert load_settings().access_ttl == timedelta(minutes=7)


def test_idle_timeout_off_disables_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[authcore]\nidle_timeout = "2h"\n')
    settings = load_settings(config_file=path, environ={"AUTHCORE_IDLE_TIMEOUT": "OFF"})
    assert settings.idle_timeout is None


def test_overrides_accept_python_values() -> None:
    settings = load_settings(
        environ={},
        overrides={"session_ttl": timedelta(hours=3), "bcrypt_rounds": 10, "idle_timeout": "off"},
    )
    assert settings.session_ttl == timedelta(hours=3)
    assert settings.bcrypt_rounds == 10
    with pytest.raises(TypeError, match="unknown settings in overrides: nope"):
        load_settings(environ={}, overrides={"nope": 1})


def test_test_rounds(tmp_path: Path) -> None:
    path = write(tmp_path, "[authcore]\nbcrypt_rounds = 4\n")
    problems = problems_of(config_file=path)
    assert problems == [
        "bcrypt_rounds: must be between 10 and 16, got 4 "
        "(4 to 9 only for tests, with --allow-test-rounds)"
    ]
    settings = load_settings(config_file=path, environ={}, allow_test_rounds=True)
    assert settings.bcrypt_rounds == 4
    assert settings.allow_test_rounds
    assert problems_of(config_file=path, environ={"AUTHCORE_BCRYPT_ROUNDS": "17"})[1] == (
        "AUTHCORE_BCRYPT_ROUNDS: must be between 10 and 16, got 17 "
        "(4 to 9 only for tests, with --allow-test-rounds)"
    )


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        database_url = "top level"
        [authcore]
        database_url = "postgresql+psycopg2://app:{DB_PASSWORD}@db/app"
        secret_key = "{SHORT_SECRET}"
        session_ttl = "3x"
        idle_timeout = 30
        access_ttl = 1.5
        bcrypt_rounds = "twelve"
        sesion_ttl = "1d"
        colour = "blue"
        """,
    )
    environ = {"AUTHCORE_ACCESS_TTL": "soon", "AUTHCORE_SECRET_KEY": SHORT_SECRET}
    error_problems = problems_of(config_file=path, environ=environ, require_secret=True)
    assert error_problems == [
        "database_url: must be inside the [authcore] table, not at the top level",
        "sesion_ttl: unknown key in [authcore] (did you mean 'session_ttl'?)",
        "colour: unknown key in [authcore]",
        "database_url: 'postgresql+psycopg2' is not an async driver "
        "(use sqlite+aiosqlite:// or postgresql+asyncpg://)",
        "secret_key: too short: 21 bytes, at least 32 needed (`authcore gen-secret` makes one)",
        "session_ttl: invalid duration '3x' "
        '(use e.g. "90s", "30m", "12h", "14d" or whole seconds)',
        'idle_timeout: must be longer than 60 seconds (the session touch interval), or "off"',
        "access_ttl: must be a duration string or whole seconds, got a number",
        "bcrypt_rounds: must be a whole number, got a string",
        "AUTHCORE_SECRET_KEY: too short: 21 bytes, at least 32 needed "
        "(`authcore gen-secret` makes one)",
        "AUTHCORE_ACCESS_TTL: invalid duration 'soon' "
        '(use e.g. "90s", "30m", "12h", "14d" or whole seconds)',
    ]


def test_no_problem_message_contains_a_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[authcore]\nsecret_key = "{SHORT_SECRET}"\n'
        f'database_url = "postgres+nosuchdriver://app:{DB_PASSWORD}@db/app"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=path, environ={}, require_secret=True)
    for text in (str(caught.value), repr(caught.value), *caught.value.problems):
        assert SHORT_SECRET not in text
        assert DB_PASSWORD not in text
    assert "postgres+nosuchdriver://app:***@db/app" in str(caught.value)


def test_a_missing_secret_is_a_problem_only_when_required() -> None:
    assert load_settings(environ={}).secret_key is None
    assert problems_of(require_secret=True) == [
        "secret_key: missing: set it in the [authcore] table or AUTHCORE_SECRET_KEY "
        "(`authcore gen-secret` makes one)"
    ]
    # A secret that is present but bad is reported once, not also as missing.
    assert len(problems_of(environ={"AUTHCORE_SECRET_KEY": "x"}, require_secret=True)) == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[authcore\n", "is not valid TOML: "),
        ("[other]\nx = 1\n", "has no [authcore] table"),
        ("authcore = 1\n", "authcore: must be a table ([authcore]), got an integer"),
        ("[authcore]\nbad = [1, 2]\n", "bad: unknown key in [authcore]"),
        ('[authcore]\ndatabase_url = ""\n', "database_url: must not be empty"),
        ('[authcore]\ndatabase_url = "not a url"\n', "database_url: not a database URL"),
        ("[authcore]\ndatabase_url = [1]\n", "database_url: must be a string, got an array"),
        ("[authcore]\nsession_ttl = {a = 1}\n", "got a table"),
        ("[authcore]\nbcrypt_rounds = true\n", "got a boolean"),
    ],
)
def test_file_problems(tmp_path: Path, text: str, problem: str) -> None:
    problems = problems_of(config_file=write(tmp_path, text))
    assert len(problems) == 1
    assert problem in problems[0]


def test_unreadable_files(tmp_path: Path) -> None:
    assert problems_of(config_file=tmp_path / "missing.toml") == [
        f"config file: {tmp_path / 'missing.toml'} does not exist"
    ]
    assert problems_of(config_file=tmp_path) == [f"config file: {tmp_path} is a directory"]
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[authcore]\ndatabase_url = "caf\xe9"\n')
    assert problems_of(config_file=latin1) == [f"config file: {latin1} is not UTF-8 text"]


def test_config_error_joins_its_problems() -> None:
    error = ConfigError(["a: one", "b: two"])
    assert str(error) == "a: one; b: two"
    assert error.problems == ["a: one", "b: two"]


def test_safe_url() -> None:
    assert (
        safe_url(f"postgresql+asyncpg://u:{DB_PASSWORD}@h/db") == "postgresql+asyncpg://u:***@h/db"
    )
    assert safe_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert safe_url(f"no url {DB_PASSWORD}") == "<unparsable URL>"
