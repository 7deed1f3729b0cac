"""Settings: durations, the TOML file, the environment, precedence and every problem reported."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authcore.config import (
    ENVIRONMENT_VARIABLES,
    ConfigError,
    Settings,
    app_keywords,
    check_settings,
    format_duration,
    load_settings,
    parse_duration,
    safe_url,
)
from authcore.config._values import KEYS

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
        (
            '[authcore]\ndatabase_url = "postgresql+asyncpg://h:99999/db"\n',
            "database_url: port must be between 1 and 65535, got 99999",
        ),
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


# -- strict types: a file holds typed values, the environment holds text ---------------


def test_a_quoted_number_in_a_file_is_a_problem_not_a_conversion(tmp_path: Path) -> None:
    path = write(tmp_path, '[authcore]\nbcrypt_rounds = "12"\n')
    assert problems_of(config_file=path) == [
        "bcrypt_rounds: must be a whole number, got a string "
        "(write bcrypt_rounds = 12, without quotes)"
    ]
    # The environment only holds text: there a number is read from its digits.
    assert load_settings(environ={"AUTHCORE_BCRYPT_ROUNDS": "12"}).bcrypt_rounds == 12
    # Overrides are Python values: the type is checked there too.
    assert problems_of(overrides={"bcrypt_rounds": "12"})[0].startswith(
        "bcrypt_rounds: must be a whole number, got a string"
    )


def test_durations_in_a_file_are_strings_or_whole_seconds(tmp_path: Path) -> None:
    path = write(tmp_path, '[authcore]\nsession_ttl = 86400\naccess_ttl = "1m"\n')
    settings = load_settings(path, environ={})
    assert settings.session_ttl == timedelta(days=1)
    assert settings.access_ttl == timedelta(minutes=1)
    for text, problem in [
        (
            "session_ttl = 1.5",
            "session_ttl: must be a duration string or whole seconds, got a number",
        ),
        (
            "session_ttl = 1979-05-27",
            "session_ttl: must be a duration string or whole seconds, got a date",
        ),
        (
            "idle_timeout = false",
            "idle_timeout: must be a duration string or whole seconds, got a boolean",
        ),
        (
            "access_ttl = inf",
            "access_ttl: must be a duration string or whole seconds, got a number",
        ),
    ]:
        assert problems_of(config_file=write(tmp_path, f"[authcore]\n{text}\n")) == [problem]


def test_sub_second_durations_are_refused() -> None:
    with pytest.raises(ConfigError, match="access_ttl: must be a whole number of seconds"):
        Settings(access_ttl=timedelta(seconds=1.5))
    assert problems_of(overrides={"session_ttl": timedelta(milliseconds=1)}) == [
        "session_ttl: must be a whole number of seconds"
    ]


# -- lifetimes must fit in the session ---------------------------------------------------


def test_an_access_ttl_longer_than_the_session_is_a_problem(tmp_path: Path) -> None:
    # The case from the field: 14 (seconds) for the session, "20d" for the JWT.
    path = write(tmp_path, '[authcore]\naccess_ttl = "20d"\nsession_ttl = 14\n')
    assert problems_of(config_file=path) == [
        "access_ttl: 20d (from file) is longer than session_ttl, 14s (from file): "
        "an access token would outlive its session"
    ]
    with pytest.raises(ConfigError) as caught:
        Settings(access_ttl=timedelta(days=20), session_ttl=timedelta(seconds=14))
    assert caught.value.problems == [
        "access_ttl: 20d is longer than session_ttl, 14s: an access token would outlive its session"
    ]


def test_an_idle_timeout_longer_than_the_session_is_a_problem() -> None:
    environ = {"AUTHCORE_IDLE_TIMEOUT": "2d", "AUTHCORE_SESSION_TTL": "1d"}
    assert problems_of(environ=environ) == [
        "idle_timeout: 2d (from AUTHCORE_IDLE_TIMEOUT) is longer than session_ttl, "
        "1d (from AUTHCORE_SESSION_TTL): it could never apply"
    ]
    # Against the default session_ttl (14d) too, and both at once.
    both = problems_of(environ={"AUTHCORE_IDLE_TIMEOUT": "15d", "AUTHCORE_ACCESS_TTL": "30d"})
    assert [problem.split(":")[0] for problem in both] == ["access_ttl", "idle_timeout"]
    assert "session_ttl, 14d (default)" in both[0]
    with pytest.raises(ConfigError, match="idle_timeout: 3h is longer than session_ttl, 2h"):
        Settings(idle_timeout=timedelta(hours=3), session_ttl=timedelta(hours=2))


def test_lifetimes_equal_to_the_session_are_fine() -> None:
    environ = {
        "AUTHCORE_SESSION_TTL": "1h",
        "AUTHCORE_ACCESS_TTL": "60m",
        "AUTHCORE_IDLE_TIMEOUT": "3600",
    }
    settings = load_settings(environ=environ)
    assert (
        settings.session_ttl == settings.access_ttl == settings.idle_timeout == timedelta(hours=1)
    )


def test_a_bad_lifetime_is_reported_once_not_compared() -> None:
    # session_ttl is broken: the comparison would be against the default, so it is skipped.
    assert problems_of(environ={"AUTHCORE_SESSION_TTL": "soon", "AUTHCORE_ACCESS_TTL": "20d"}) == [
        "AUTHCORE_SESSION_TTL: invalid duration 'soon' "
        '(use e.g. "90s", "30m", "12h", "14d" or whole seconds)'
    ]


# -- malformed values: always a ConfigError naming the key -------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("²", "must be a whole number, got '²'"),  # str.isdigit() is True, int() refuses it
        ("٣", "must be a whole number, got '٣'"),  # an Arabic-Indic digit: int() would take it
        ("9" * 5000, "must be at most 16, got a number of 5000 digits"),
        ("1\0", "must be a whole number, got '1\\x00'"),
        ("\udcff", "must be a whole number, got '\\udcff'"),
        ("-12", "must be a whole number, got '-12'"),
        ("12.0", "must be a whole number, got '12.0'"),
        ("1_2", "must be a whole number, got '1_2'"),
    ],
)
def test_malformed_rounds_in_the_environment(value: str, problem: str) -> None:
    assert problems_of(environ={"AUTHCORE_BCRYPT_ROUNDS": value}) == [
        f"AUTHCORE_BCRYPT_ROUNDS: {problem}"
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("9" * 5000, "invalid duration '99999999"),
        ("²", "invalid duration '²'"),
        ("1\0d", "must not contain a NUL character"),
        ("999999999999d", "must be at most 100 years, got '999999999999d'"),
        ("3153600001", "must be at most 100 years"),
        ("0", "must be positive, got '0'"),
        ("-1d", "invalid duration '-1d'"),
        ("1\u00a0d", "invalid duration"),  # no-break space: only ASCII spaces may separate
    ],
)
def test_malformed_durations_in_the_environment(value: str, problem: str) -> None:
    problems = problems_of(environ={"AUTHCORE_ACCESS_TTL": value})
    assert len(problems) == 1
    assert problems[0].startswith(f"AUTHCORE_ACCESS_TTL: {problem}")


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("AUTHCORE_DATABASE_URL", "sqlite+aiosqlite:///a\0.db", "must not contain a NUL character"),
        ("AUTHCORE_DATABASE_URL", "sqlite+aiosqlite:///\udcff.db", "must be UTF-8 text"),
        ("AUTHCORE_SECRET_KEY", SECRET + "\0", "must not contain a NUL character"),
        ("AUTHCORE_SECRET_KEY", SECRET + "\udcff", "must be UTF-8 text"),
    ],
)
def test_malformed_text_in_the_environment(variable: str, value: str, problem: str) -> None:
    problems = problems_of(environ={variable: value})
    assert problems == [f"{variable}: {problem}"]
    assert SECRET not in problems[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x = " + "[" * 3000 + "]" * 3000, "nested too deeply"),
        ("x = " + "{a = " * 3000 + "1" + "}" * 3000, "nested too deeply"),
        ("bcrypt_rounds = " + "9" * 5000, "a number is too long"),
        ("x = 1\0", "is not valid TOML"),
    ],
)
def test_unreadable_documents(tmp_path: Path, text: str, problem: str) -> None:
    problems = problems_of(config_file=write(tmp_path, f"[authcore]\n{text}\n"))
    assert len(problems) == 1
    assert problems[0].startswith("config file: ")
    assert problem in problems[0]


def test_huge_and_odd_values_in_a_file(tmp_path: Path) -> None:
    huge = "0x" + "f" * 5000  # TOML reads it; Python cannot print it in decimal
    path = write(
        tmp_path,
        f"[authcore]\nbcrypt_rounds = {huge}\nsession_ttl = {huge}\naccess_ttl = -{'9' * 40}\n"
        'database_url = "sqlite+aiosqlite:///a\\u0000.db"\n"\\u0000" = 1\n',
    )
    assert problems_of(config_file=path) == [
        "'\\x00': unknown key in [authcore]",  # keys are checked first, then values in order
        "bcrypt_rounds: must be between 10 and 16, got a number of more than 4,000 digits "
        "(4 to 9 only for tests, with --allow-test-rounds)",
        "session_ttl: must be at most 100 years, got a number of more than 4,000 digits",
        "access_ttl: must be positive, got a number of 40 digits",
        "database_url: must not contain a NUL character",
    ]


def test_oversized_files_and_bad_paths(tmp_path: Path) -> None:
    big = write(tmp_path, "[authcore]\n" + "# padding\n" * 110_000)
    assert problems_of(config_file=big) == [f"config file: {big} is larger than 1024 KiB"]
    assert problems_of(config_file="a\0b.toml") == ["config file: a\\0b.toml is not a valid path"]


# -- AUTHCORE_CONFIG_FILE ------------------------------------------------------------------


def test_the_config_file_variable_names_the_file(tmp_path: Path) -> None:
    named = write(tmp_path, '[authcore]\nsession_ttl = "3d"\n', "named.toml")
    given = write(tmp_path, '[authcore]\nsession_ttl = "5d"\n', "given.toml")
    environ = {"AUTHCORE_CONFIG_FILE": str(named)}
    assert load_settings(environ=environ).session_ttl == timedelta(days=3)
    assert load_settings(given, environ=environ).session_ttl == timedelta(days=5)  # given wins
    assert load_settings(environ={"AUTHCORE_CONFIG_FILE": ""}) == Settings()  # empty: unset
    assert problems_of(environ={"AUTHCORE_CONFIG_FILE": str(tmp_path / "gone.toml")}) == [
        f"config file: {tmp_path / 'gone.toml'} does not exist"
    ]
    report = check_settings(environ=environ)
    assert report.config_file == str(named)
    assert report.sources["session_ttl"] == "file"
    assert report.problems == ()


def test_the_process_environment_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[authcore]\naccess_ttl = "2m"\n')
    monkeypatch.setenv("AUTHCORE_CONFIG_FILE", str(path))
    monkeypatch.setenv("AUTHCORE_SESSION_TTL", "1d")
    settings = load_settings()
    assert (settings.access_ttl, settings.session_ttl) == (timedelta(minutes=2), timedelta(days=1))


def test_check_settings_reports_without_raising(tmp_path: Path) -> None:
    report = check_settings(environ={"AUTHCORE_SESSION_TTL": "1d", "AUTHCORE_ACCESS_TTL": "x"})
    assert report.values == {"session_ttl": timedelta(days=1)}
    assert report.sources["session_ttl"] == "AUTHCORE_SESSION_TTL"
    assert report.sources["database_url"] == "default"
    assert len(report.problems) == 1
    assert report.config_file is None
    with pytest.raises(ConfigError):
        report.settings()


# -- the values the application runs with ---------------------------------------------------


def test_app_keywords_are_the_settings_the_app_takes() -> None:
    settings = Settings(secret_key=SECRET, access_ttl=timedelta(minutes=1), bcrypt_rounds=11)
    assert app_keywords(settings) == {
        "database_url": "sqlite+aiosqlite:///authcore.db",
        "secret_key": SECRET,
        "session_ttl": timedelta(days=14),
        "idle_timeout": None,
        "access_ttl": timedelta(minutes=1),
        "bcrypt_rounds": 11,
    }
    with pytest.raises(ConfigError) as caught:
        app_keywords(Settings())
    assert caught.value.problems == [
        "secret_key: missing: set it in the [authcore] table or AUTHCORE_SECRET_KEY "
        "(`authcore gen-secret` makes one)"
    ]
    assert "secret_key" not in app_keywords(Settings(), require_secret=False)


def test_config_error_is_in_the_error_tree() -> None:
    import authcore
    import authcore.errors

    assert ConfigError is authcore.errors.ConfigError is authcore.ConfigError
    assert issubclass(ConfigError, authcore.AuthError)
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=14), "14d"),
        (timedelta(hours=36), "36h"),
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=30), "30m"),
        (None, "off"),
    ],
)
def test_format_duration(value: timedelta | None, text: str) -> None:
    assert format_duration(value) == text


# -- fuzzing: only ConfigError ever escapes, and valid values round-trip ------------------

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MAX_SECONDS = 36_500 * 86_400
SETTING_KEYS = sorted(KEYS)
ENV_NAMES = sorted(ENVIRONMENT_VARIABLES)
unicode_text = st.characters(exclude_categories=["Cs"])  # what a UTF-8 file can hold


def only_config_errors(call: Callable[[], object], names: Iterable[str]) -> list[str]:
    """Run *call*: a ConfigError is fine when each problem names one of *names* or a key."""
    allowed = {*names, "access_ttl", "idle_timeout"}  # the lifetime comparisons name these
    try:
        call()
    except ConfigError as exc:
        problems = exc.problems
    else:
        return []
    assert problems
    for problem in problems:
        problem.encode("utf-8")  # printable on a strict UTF-8 stream
        assert (
            problem.split(": ")[0] in allowed
            or "unknown key in [authcore]" in problem
            or "must be inside the [authcore] table" in problem
        ), problem
    return problems


@FUZZ
@given(
    st.text(max_size=30)
    | st.integers()
    | st.from_regex(r"\s*-?[0-9]{0,14}\s*[smhdx²]?\s*", fullmatch=True)
)
def test_fuzz_parse_duration(value: str | int) -> None:
    try:
        result = parse_duration(value, key="fuzz")
    except ConfigError as exc:
        problems = exc.problems
    else:
        assert timedelta(0) < result <= timedelta(days=36_500)
        assert result % timedelta(seconds=1) == timedelta(0)
        assert parse_duration(format_duration(result)) == result
        return
    assert len(problems) == 1
    assert problems[0].startswith("fuzz: ")


@FUZZ
@given(st.integers(1, MAX_SECONDS), st.sampled_from(["", "s", "m", "h", "d"]))
def test_fuzz_durations_round_trip(amount: int, unit: str) -> None:
    size = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[unit]
    if amount * size > MAX_SECONDS:
        with pytest.raises(ConfigError, match="at most 100 years"):
            parse_duration(f"{amount}{unit}")
        return
    parsed = parse_duration(f"{amount}{unit}")
    assert parsed == timedelta(seconds=amount * size)
    assert parse_duration(format_duration(parsed)) == parsed


@FUZZ
@given(st.dictionaries(st.sampled_from([*ENV_NAMES, "AUTHCORE_CONFIG_FILE"]), st.text(max_size=60)))
def test_fuzz_the_environment_reader(environ: dict[str, str]) -> None:
    # A fuzzed AUTHCORE_CONFIG_FILE names a path relative to the test's folder: a
    # missing file, a folder, or one of the project's files (never valid settings).
    only_config_errors(lambda: load_settings(environ=environ), [*environ, "config file"])


@FUZZ
@given(st.dictionaries(st.sampled_from(SETTING_KEYS), st.text(max_size=20) | st.integers()))
def test_fuzz_overrides(overrides: dict[str, object]) -> None:
    only_config_errors(lambda: load_settings(environ={}, overrides=overrides), overrides)


database_urls = st.builds(
    "{}://{}{}{}/{}{}".format,
    st.from_regex(r"[a-z0-9]{0,10}(\+[a-z0-9]{0,8}){0,3}", fullmatch=True),
    st.sampled_from(["", "u@", "u:p@", "%zz@", ":@", "u:p:q@"]),
    st.sampled_from(["", "h", "[::1]", "[::1", "h.example"]),
    st.sampled_from(["", ":", ":5432", ":0", ":-1", ":99999999999", ":abc", ":" + "9" * 5000]),
    st.text(max_size=10),
    st.sampled_from(["", "?", "?a=b&a=c", "?ssl=%ZZ", "?=", "#f"]),
)


@FUZZ
@given(database_urls)
def test_fuzz_database_urls(url: str) -> None:
    only_config_errors(
        lambda: load_settings(environ={"AUTHCORE_DATABASE_URL": url}), ["AUTHCORE_DATABASE_URL"]
    )


def settings_or_none(**fields: Any) -> Settings | None:
    try:
        return Settings(**fields)
    except ConfigError:
        return None  # lifetimes that do not fit in the session: drawn again


whole_seconds = st.integers(1, MAX_SECONDS).map(lambda s: timedelta(seconds=s))
valid_settings = st.builds(
    settings_or_none,
    database_url=st.sampled_from(
        ["sqlite+aiosqlite:///authcore.db", "sqlite+aiosqlite://", "postgresql+asyncpg://u:p@h/db"]
    ),
    secret_key=st.none() | st.text(unicode_text.filter(lambda c: c != "\0"), min_size=32),
    session_ttl=whole_seconds,
    idle_timeout=st.none() | st.integers(61, MAX_SECONDS).map(lambda s: timedelta(seconds=s)),
    access_ttl=whole_seconds,
    bcrypt_rounds=st.integers(10, 16),
).filter(lambda s: s is not None)


def as_text(settings: Settings) -> dict[str, str]:
    """Each value as a configuration writes it."""
    text = {
        "database_url": settings.database_url,
        "session_ttl": format_duration(settings.session_ttl),
        "idle_timeout": format_duration(settings.idle_timeout),
        "access_ttl": format_duration(settings.access_ttl),
        "bcrypt_rounds": str(settings.bcrypt_rounds),
    }
    if settings.secret_key is not None:
        text["secret_key"] = settings.secret_key
    return text


@FUZZ
@given(valid_settings)
def test_fuzz_valid_settings_round_trip_through_the_environment(settings: Settings) -> None:
    environ = {f"AUTHCORE_{key.upper()}": value for key, value in as_text(settings).items()}
    assert load_settings(environ=environ) == settings


@FUZZ
@given(valid_settings)
def test_fuzz_valid_settings_round_trip_through_a_file(tmp_path: Path, settings: Settings) -> None:
    lines = [
        f"{key} = {value if key == 'bcrypt_rounds' else toml_string(value)}"
        for key, value in as_text(settings).items()
    ]
    path = write(tmp_path, "[authcore]\n" + "\n".join(lines) + "\n", "round-trip.toml")
    assert load_settings(path, environ={}) == settings


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML wants escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: object) -> str:
    """A small TOML writer for the generated values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return hex(value) if value.bit_length() > 10_000 else str(value)  # TOML reads both
    if isinstance(value, float):
        return repr(value)  # "1e+300", "inf", "nan": all TOML
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    pairs = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
    return "{" + ", ".join(pairs) + "}"


toml_keys = st.sampled_from([*SETTING_KEYS, "authcore"]) | st.text(unicode_text, max_size=12)
toml_values = st.recursive(
    st.booleans()
    | st.integers()
    | st.integers(2**64, 2**20_000)  # beyond Python's 4,300-digit str() limit
    | st.floats()
    | st.text(unicode_text, max_size=40)
    | st.from_regex(r"(off|[0-9]{1,14} ?[smhd]?)", fullmatch=True),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(unicode_text, max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    table=st.dictionaries(toml_keys, toml_values, max_size=7),
    top=st.dictionaries(toml_keys, toml_values, max_size=2),
    nesting=st.sampled_from([0, 0, 0, 10, 3000]),
)
def test_fuzz_the_toml_reader_with_generated_documents(
    tmp_path: Path, table: dict[str, object], top: dict[str, object], nesting: int
) -> None:
    def line(key: str, value: object) -> str:
        return f"{toml_string(key)} = {toml_value(value)}"

    lines = [line(k, v) for k, v in top.items()]
    lines += ["[authcore]", *(line(k, v) for k, v in table.items())]
    if nesting:
        lines.append("deep = " + "[" * nesting + "]" * nesting)
    path = write(tmp_path, "\n".join(lines) + "\n", "fuzz.toml")
    only_config_errors(
        lambda: load_settings(path, environ={}, require_secret=True),
        ["config file", "authcore", *SETTING_KEYS],
    )


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")))
def test_fuzz_the_toml_reader_with_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.toml"
    path.write_bytes(b"[authcore]\n" + data)
    only_config_errors(lambda: load_settings(path, environ={}), ["config file", *SETTING_KEYS])


# What the OS can put in a variable: any bytes but NUL, undecodable ones as surrogates.
os_text = st.text(unicode_text.filter(lambda c: c != "\0"), min_size=1, max_size=40) | st.binary(
    min_size=1, max_size=40
).filter(lambda b: b"\0" not in b).map(lambda b: b.decode("utf-8", "surrogateescape"))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(ENV_NAMES), os_text))
def test_fuzz_validate_never_fails_unexpectedly(environ: dict[str, str]) -> None:
    # `authcore validate`, in process, with the environment as the OS would give it
    # (surrogates stand for undecodable bytes; NUL cannot occur) and a strict UTF-8
    # standard output: it reports, it never crashes.
    from authcore.cli import main

    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    with (
        mock.patch.dict(os.environ, {**clean, **environ}, clear=True),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        status = main(["validate"])
    stdout.flush()
    assert status in (0, 2), stderr.getvalue()
    assert "unexpected" not in stderr.getvalue()
