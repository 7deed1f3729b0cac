"""Settings for the command line and for applications: a TOML file, the environment, flags.

A configuration file is TOML with an ``[authcore]`` table (other tables are
left alone, so the file can be shared with the application's own settings)::

    [authcore]
    database_url = "postgresql+asyncpg://authcore@db.internal/app"
    secret_key = "..."            # 32 bytes or more; `authcore gen-secret` makes one
    session_ttl = "14d"           # durations: "90s", "30m", "12h", "14d" or whole seconds
    idle_timeout = "2h"           # "off" (the default) disables it
    access_ttl = "15m"
    bcrypt_rounds = 12            # 10..16; 4..9 only with allow_test_rounds

Each setting can also come from the environment (``AUTHCORE_DATABASE_URL``,
``AUTHCORE_SECRET_KEY``, ``AUTHCORE_SESSION_TTL``, ``AUTHCORE_IDLE_TIMEOUT``,
``AUTHCORE_ACCESS_TTL``, ``AUTHCORE_BCRYPT_ROUNDS``; other ``AUTHCORE_*`` names
are ignored, and an empty variable counts as unset) and from explicit
overrides (the command line's flags). Precedence, highest first: overrides,
environment, file, defaults.

Every value given is checked, in every source, and :class:`ConfigError` lists
every problem at once, each as ``"key: what is wrong"``. No problem message
ever contains the secret key, and a database URL is only ever shown with its
password masked.

This module imports nothing heavy at import time (``tomllib`` and SQLAlchemy
are loaded when a file or a URL is actually read), so the command line's
``--help`` stays fast.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from authcore.config._values import (
    _CHECKERS,
    _TABLE,
    ENVIRONMENT_VARIABLES,
    KEYS,
    ConfigError,
    _rounds_problem,
    _type_name,
    parse_duration,
    safe_url,
)

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "ConfigError",
    "Settings",
    "load_settings",
    "parse_duration",
    "safe_url",
]


@dataclass(frozen=True)
class Settings:
    """authcore's settings, validated at construction.

    Build one directly, or with :func:`load_settings` from a file, the
    environment and overrides. The ``repr`` never shows the secret key.

    Attributes:
        database_url: An async SQLAlchemy URL.
        secret_key: The JWT signing key (at least 32 bytes), or ``None`` if unset.
        session_ttl: Absolute lifetime of sessions.
        idle_timeout: Sessions unused this long expire; ``None``: no idle expiry.
        access_ttl: Lifetime of JWT access tokens.
        bcrypt_rounds: bcrypt work factor for new hashes, 10 to 16.
        allow_test_rounds: Also accept ``bcrypt_rounds`` 4 to 9, which are fast
            and weak: for test configurations only.

    Raises:
        ConfigError: listing every invalid field.
    """

    database_url: str = "sqlite+aiosqlite:///authcore.db"
    secret_key: str | None = field(default=None, repr=False)
    session_ttl: timedelta = timedelta(days=14)
    idle_timeout: timedelta | None = None
    access_ttl: timedelta = timedelta(minutes=15)
    bcrypt_rounds: int = 12
    allow_test_rounds: bool = False

    def __post_init__(self) -> None:
        problems: list[str] = []
        for key in KEYS:
            value = getattr(self, key)
            if key == "secret_key" and value is None:
                continue
            if key == "bcrypt_rounds" and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"{key}: must be an int, got {_type_name(value)}")
                continue
            if key in ("session_ttl", "access_ttl", "idle_timeout") and not isinstance(
                value, timedelta | None
            ):
                problems.append(f"{key}: must be a datetime.timedelta, got {_type_name(value)}")
                continue
            try:
                _CHECKERS[key](value, key)
            except ConfigError as exc:
                problems.extend(exc.problems)
        if isinstance(self.bcrypt_rounds, int) and not isinstance(self.bcrypt_rounds, bool):
            problem = _rounds_problem(self.bcrypt_rounds, self.allow_test_rounds, "bcrypt_rounds")
            if problem is not None:
                problems.append(problem)
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        secret = "None" if self.secret_key is None else "'***'"
        return (
            f"Settings(database_url={safe_url(self.database_url)!r}, secret_key={secret}, "
            f"session_ttl={self.session_ttl!r}, idle_timeout={self.idle_timeout!r}, "
            f"access_ttl={self.access_ttl!r}, bcrypt_rounds={self.bcrypt_rounds}, "
            f"allow_test_rounds={self.allow_test_rounds})"
        )


# -- loading ---------------------------------------------------------------------


def _read_file(path: Path, problems: list[str]) -> dict[str, object]:
    """The ``[authcore]`` table of a TOML file; problems with the file are appended."""
    import tomllib

    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        problems.append(f"config file: {path} does not exist")
        return {}
    except IsADirectoryError:
        problems.append(f"config file: {path} is a directory")
        return {}
    except OSError as exc:
        problems.append(f"config file: cannot read {path}: {exc.strerror or type(exc).__name__}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name a position, never the text found there.
        problems.append(f"config file: {path} is not valid TOML: {exc}")
        return {}
    except UnicodeDecodeError:
        problems.append(f"config file: {path} is not UTF-8 text")
        return {}
    for key in KEYS:
        if key in document:
            problems.append(f"{key}: must be inside the [{_TABLE}] table, not at the top level")
    table = document.get(_TABLE)
    if table is None:
        problems.append(f"config file: {path} has no [{_TABLE}] table")
        return {}
    if not isinstance(table, dict):
        problems.append(f"{_TABLE}: must be a table ([{_TABLE}]), got {_type_name(table)}")
        return {}
    values: dict[str, object] = {}
    for key, value in table.items():
        if key in KEYS:
            values[key] = value
            continue
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{key}: unknown key in [{_TABLE}]{hint}")
    return values


@dataclass(frozen=True)
class _Loaded:
    """What the sources gave: the valid values, where each came from (``"default"``,
    ``"file"``, an environment variable's name or ``"command line"``), and the problems."""

    values: dict[str, Any]
    sources: dict[str, str]
    problems: list[str]
    allow_test_rounds: bool

    def settings(self) -> Settings:
        """The settings, or :class:`ConfigError` listing every problem."""
        if self.problems:
            raise ConfigError(self.problems)
        return Settings(**self.values, allow_test_rounds=self.allow_test_rounds)


def _load(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    require_secret: bool = False,
    allow_test_rounds: bool = False,
) -> _Loaded:
    """Read and check every source; never raises :class:`ConfigError` (see ``problems``)."""
    problems: list[str] = []
    layers: list[tuple[str, dict[str, tuple[str, object]]]] = []

    if config_file is not None:
        file_values = _read_file(Path(config_file), problems)
        layers.append(("file", {key: (key, value) for key, value in file_values.items()}))

    env = os.environ if environ is None else environ
    env_values: dict[str, tuple[str, object]] = {
        key: (name, env[name]) for name, key in ENVIRONMENT_VARIABLES.items() if env.get(name)
    }
    layers.append(("environment", env_values))

    unknown = set(overrides or ()) - set(KEYS)
    if unknown:
        raise TypeError(f"unknown settings in overrides: {', '.join(sorted(unknown))}")
    override_values = {
        key: (key, value) for key, value in (overrides or {}).items() if value is not None
    }
    layers.append(("command line", override_values))

    values: dict[str, Any] = {}
    sources = dict.fromkeys(KEYS, "default")
    for source, given in layers:  # lowest precedence first: later layers win
        for key, (name, value) in given.items():
            try:
                converted = _CHECKERS[key](value, name)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if key == "bcrypt_rounds":
                problem = _rounds_problem(converted, allow_test_rounds, name)
                if problem is not None:
                    problems.append(problem)
                    continue
            values[key] = converted
            sources[key] = name if source == "environment" else source

    if (
        require_secret
        and "secret_key" not in values
        and not any(p.startswith(("secret_key:", "AUTHCORE_SECRET_KEY:")) for p in problems)
    ):
        problems.append(
            "secret_key: missing: set it in the [authcore] table or AUTHCORE_SECRET_KEY "
            "(`authcore gen-secret` makes one)"
        )
    return _Loaded(values, sources, problems, allow_test_rounds)


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    require_secret: bool = False,
    allow_test_rounds: bool = False,
) -> Settings:
    """Load settings from a TOML file, the environment and overrides, checking every value.

    Precedence, highest first: *overrides*, *environ*, *config_file*, the
    :class:`Settings` defaults. Every value present in any source is checked,
    even one a higher source overrides, so a broken file is reported even
    when the environment happens to cover for it.

    Example:
        >>> settings = load_settings(config_file="authcore.toml")  # doctest: +SKIP
        >>> settings.session_ttl  # doctest: +SKIP
        datetime.timedelta(days=14)

    Args:
        config_file: A TOML file with an ``[authcore]`` table, or ``None``.
        environ: The environment to read ``AUTHCORE_*`` variables from
            (``os.environ`` by default); empty values count as unset.
        overrides: Values that win over everything (the command line's flags),
            keyed by setting name; ``None`` values are ignored. Durations may
            be ``timedelta`` values or strings.
        require_secret: Report a missing ``secret_key`` as a problem.
        allow_test_rounds: Accept ``bcrypt_rounds`` 4 to 9 (fast, weak hashes
            for test suites); without it only 10 to 16 are accepted.

    Raises:
        ConfigError: listing every problem, each naming its key (or
            environment variable); never containing the secret key.
        TypeError: *overrides* names a setting that does not exist.
    """
    return _load(
        config_file=config_file,
        environ=environ,
        overrides=overrides,
        require_secret=require_secret,
        allow_test_rounds=allow_test_rounds,
    ).settings()
