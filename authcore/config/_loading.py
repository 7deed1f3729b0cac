"""Reading the sources (a TOML file, the environment, overrides) and checking them together."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from authcore.config._settings import MISSING_SECRET, Settings
from authcore.config._values import (
    CHECKERS,
    CONFIG_FILE_VARIABLE,
    DURATION_KEYS,
    ENVIRONMENT_VARIABLES,
    KEYS,
    TABLE,
    describe,
    lifetime_problems,
    rounds_problem,
    type_name,
)
from authcore.errors import ConfigError

MAX_FILE_BYTES: Final = 1024 * 1024
_DEFAULTS: Final = {f.name: f.default for f in fields(Settings)}


def _shown_path(path: str | os.PathLike[str]) -> str:
    """*path* for a message: undecodable bytes and NULs escaped, so printing never fails."""
    text = os.fspath(path).replace("\0", "\\0")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    """The parsed document; :class:`ConfigError` (key ``config file``) for anything else."""
    import tomllib

    def problem(text: str) -> ConfigError:
        return ConfigError([f"config file: {shown} {text}"])

    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise problem("does not exist") from None
    except IsADirectoryError:
        raise problem("is a directory") from None
    except OSError as exc:
        raise problem(f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # an embedded NUL in the path
        raise problem("is not a valid path") from None
    if len(data) > MAX_FILE_BYTES:
        raise problem(f"is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise problem("is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name a position (and at most one character), never a value.
        raise problem(f"is not valid TOML: {exc}") from None
    except RecursionError:
        raise problem("is not readable TOML: arrays or tables nested too deeply") from None
    except ValueError:  # an integer beyond Python's 4,300-digit conversion limit
        raise problem("is not readable TOML: a number is too long") from None


def _read_file(path: Path, shown: str, problems: list[str]) -> dict[str, object]:
    """The ``[authcore]`` table of a TOML file; problems with the file are appended."""
    try:
        document = _read_toml(path, shown)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return {}
    for key in KEYS:
        if key in document:
            problems.append(f"{key}: must be inside the [{TABLE}] table, not at the top level")
    table = document.get(TABLE)
    if table is None:
        problems.append(f"config file: {shown} has no [{TABLE}] table")
        return {}
    if not isinstance(table, dict):
        problems.append(f"{TABLE}: must be a table ([{TABLE}]), got {type_name(table)}")
        return {}
    values: dict[str, object] = {}
    for key, value in table.items():
        if key in KEYS:
            values[key] = value
            continue
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        name = key if key.isprintable() and len(key) <= 40 else describe(key)
        problems.append(f"{name}: unknown key in [{TABLE}]{hint}")
    return values


@dataclass(frozen=True)
class SettingsReport:
    """Everything :func:`check_settings` found: the values, their sources, the problems.

    Attributes:
        values: The valid values found, converted (``timedelta``, ``int``),
            keyed by setting; settings no source gave are absent.
        sources: Where each setting's value came from: ``"default"``,
            ``"file"``, an environment variable's name or ``"command line"``
            (the overrides).
        problems: Every problem found, each ``"key: what is wrong"``; empty
            when the configuration is valid.
        config_file: The file that was read (given, or named by
            ``AUTHCORE_CONFIG_FILE``), as shown in messages; ``None`` if none.
        allow_test_rounds: Whether ``bcrypt_rounds`` 4 to 9 were accepted.
    """

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    problems: tuple[str, ...]
    config_file: str | None
    allow_test_rounds: bool

    def settings(self) -> Settings:
        """The :class:`Settings`; :class:`ConfigError` listing every problem if any."""
        if self.problems:
            raise ConfigError(self.problems)
        return Settings(**self.values, allow_test_rounds=self.allow_test_rounds)


def check_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    require_secret: bool = False,
    allow_test_rounds: bool = False,
) -> SettingsReport:
    """Read and check every source, and report; never raises :class:`ConfigError`.

    Takes the arguments of :func:`load_settings`, which is this followed by
    :meth:`SettingsReport.settings`. ``authcore validate`` prints its report.

    Raises:
        TypeError: *overrides* names a setting that does not exist.
    """
    env = os.environ if environ is None else environ
    unknown = set(overrides or ()) - set(KEYS)
    if unknown:
        raise TypeError(f"unknown settings in overrides: {', '.join(sorted(unknown))}")
    problems: list[str] = []
    # (source, {key: (name in messages, value)}, values are text), lowest precedence first
    layers: list[tuple[str, dict[str, tuple[str, object]], bool]] = []

    if config_file is None:
        config_file = env.get(CONFIG_FILE_VARIABLE) or None
    shown: str | None = None
    if config_file is not None:
        shown = _shown_path(config_file)
        file_values = _read_file(Path(config_file), shown, problems)
        layers.append(("file", {key: (key, value) for key, value in file_values.items()}, False))
    env_values: dict[str, tuple[str, object]] = {
        key: (name, env[name]) for name, key in ENVIRONMENT_VARIABLES.items() if env.get(name)
    }
    layers.append(("environment", env_values, True))
    override_values = {
        key: (key, value) for key, value in (overrides or {}).items() if value is not None
    }
    layers.append(("command line", override_values, False))

    values: dict[str, Any] = {}
    sources = dict.fromkeys(KEYS, "default")
    failed: set[str] = set()
    for source, given, text in layers:  # later layers win
        for key, (name, value) in given.items():
            try:
                converted = CHECKERS[key](value, name, text)
            except ConfigError as exc:
                problems.extend(exc.problems)
                failed.add(key)
                continue
            if key == "bcrypt_rounds":
                problem = rounds_problem(converted, allow_test_rounds, name)
                if problem is not None:
                    problems.append(problem)
                    failed.add(key)
                    continue
            values[key] = converted
            sources[key] = name if source == "environment" else source

    if not failed.intersection(DURATION_KEYS):
        final = {key: values.get(key, _DEFAULTS[key]) for key in DURATION_KEYS}

        def origin(key: str) -> str:
            return " (default)" if sources[key] == "default" else f" (from {sources[key]})"

        problems.extend(
            lifetime_problems(
                final["session_ttl"], final["idle_timeout"], final["access_ttl"], origin
            )
        )
    if require_secret and "secret_key" not in values and "secret_key" not in failed:
        problems.append(MISSING_SECRET)
    return SettingsReport(values, sources, tuple(problems), shown, allow_test_rounds)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
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
        >>> settings = load_settings(environ={"AUTHCORE_SESSION_TTL": "1d"})
        >>> settings.session_ttl
        datetime.timedelta(days=1)

    Args:
        config_file: A TOML file with an ``[authcore]`` table. ``None``: the
            file named by ``AUTHCORE_CONFIG_FILE`` in *environ*, if set.
        environ: The environment to read ``AUTHCORE_*`` variables from
            (``os.environ`` by default); empty values count as unset.
        overrides: Values that win over everything (the command line's flags),
            keyed by setting name; ``None`` values are ignored. Python values
            of the setting's type: durations as ``timedelta``, whole seconds
            or duration strings, ``bcrypt_rounds`` as an ``int``.
        require_secret: Report a missing ``secret_key`` as a problem.
        allow_test_rounds: Accept ``bcrypt_rounds`` 4 to 9 (fast, weak hashes
            for test suites); without it only 10 to 16 are accepted.

    Raises:
        ConfigError: listing every problem, each naming its key (or
            environment variable); never containing the secret key. Every
            malformed value, whatever its source, is a ``ConfigError``.
        TypeError: *overrides* names a setting that does not exist.
    """
    return check_settings(
        config_file,
        environ=environ,
        overrides=overrides,
        require_secret=require_secret,
        allow_test_rounds=allow_test_rounds,
    ).settings()
