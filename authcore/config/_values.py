"""The values a configuration may hold: durations, URLs, secrets, rounds, and their checks.

Each setting has one checker, ``(value, key, text) -> converted value``, that
raises :class:`~authcore.errors.ConfigError` naming *key* for anything it
cannot accept. *text* says the value comes from the environment, where every
value is a string; from a file or from Python, a value must already have the
right type (``bcrypt_rounds = "12"`` is a problem, not a conversion).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from authcore.errors import ConfigError

MIN_SECRET_BYTES: Final = 32
ROUNDS_RANGE: Final = (10, 16)
TEST_ROUNDS_RANGE: Final = (4, 9)
MAX_DURATION: Final = timedelta(days=36_500)
# SessionStore refreshes last_seen_at at most once a minute by default; an idle
# timeout must be longer, or sessions in constant use would still expire.
MIN_IDLE_TIMEOUT: Final = timedelta(seconds=60)

KEYS: Final = (
    "database_url",
    "secret_key",
    "session_ttl",
    "idle_timeout",
    "access_ttl",
    "bcrypt_rounds",
)
DURATION_KEYS: Final = ("session_ttl", "idle_timeout", "access_ttl")
ENVIRONMENT_VARIABLES: Final = {f"AUTHCORE_{key.upper()}": key for key in KEYS}
"""The environment variables read, each mapped to the setting it sets."""
CONFIG_FILE_VARIABLE: Final = "AUTHCORE_CONFIG_FILE"
"""The environment variable naming the TOML file to read when none is given."""

_UNITS: Final = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
# ASCII digits only: str.isdigit() and int() also take "²" or Arabic-Indic digits.
_DURATION_RE: Final = re.compile(r"([0-9]{1,12})[ \t]*([smhd]?)", re.ASCII)
_WHOLE_RE: Final = re.compile(r"[0-9]+", re.ASCII)
_DURATION_HINT: Final = 'use e.g. "90s", "30m", "12h", "14d" or whole seconds'
_SHOWN_INT: Final = 10**12
TABLE: Final = "authcore"


def describe(value: object) -> str:
    """A short form of a (non-secret) bad value for a message; never raises.

    Huge integers are not converted to decimal (Python refuses past 4,300
    digits, and a message has no use for them).
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _SHOWN_INT:
        if value.bit_length() > 14_000:  # past Python's 4,300-digit str() limit
            return "a number of more than 4,000 digits"
        return f"a number of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def type_name(value: object) -> str:
    """``"a string"``, ``"an integer"``, ``"a table"``...: what a TOML reader would call it."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def parse_duration(value: str | int, *, key: str = "duration") -> timedelta:
    """Parse a duration: ``"90s"``, ``"30m"``, ``"12h"``, ``"14d"`` or whole seconds.

    Whole seconds may be an ``int`` or a string of ASCII digits (as environment
    variables give them). The result is positive, a whole number of seconds,
    and at most 100 years; :func:`format_duration` writes it back.

    Example:
        >>> parse_duration("12h")
        datetime.timedelta(seconds=43200)
        >>> parse_duration(90)
        datetime.timedelta(seconds=90)

    Raises:
        ConfigError: (a ``ValueError``) naming *key*: not a duration, zero,
            negative, or too long. Never any other exception.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(
            [f"{key}: must be a duration string or whole seconds, got {type_name(value)}"]
        )
    if isinstance(value, int):
        amount, unit = value, "s"
    else:
        match = _DURATION_RE.fullmatch(value.strip())
        if match is None:
            raise ConfigError([f"{key}: invalid duration {describe(value)} ({_DURATION_HINT})"])
        amount, unit = int(match[1]), match[2] or "s"
    if amount <= 0:
        raise ConfigError([f"{key}: must be positive, got {describe(value)}"])
    if amount > MAX_DURATION // timedelta(seconds=_UNITS[unit]):
        raise ConfigError([f"{key}: must be at most 100 years, got {describe(value)}"])
    return timedelta(seconds=amount * _UNITS[unit])


def format_duration(value: timedelta | None) -> str:
    """A duration as a configuration writes it (``"14d"``, ``"90s"``); ``None`` is ``"off"``.

    The largest unit that divides it exactly is used, so
    ``parse_duration(format_duration(d)) == d`` for every whole-second duration.

    Example:
        >>> format_duration(timedelta(hours=36))
        '36h'
    """
    if value is None:
        return "off"
    if value % timedelta(seconds=1):
        return f"{value.total_seconds()}s"
    seconds = value // timedelta(seconds=1)
    for unit, size in _UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def safe_url(url: str) -> str:
    """*url* with any password masked as ``***``, fit for messages and output.

    Falls back to ``"<unparsable URL>"`` when it cannot be parsed, so a
    password is never shown even then.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return "<unparsable URL>"


# -- one checker per setting: (value, key, text) -> converted value, or ConfigError ----


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError([f"{key}: must be a string, got {type_name(value)}"])
    if "\0" in value:
        raise ConfigError([f"{key}: must not contain a NUL character"])
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes in the environment
        raise ConfigError([f"{key}: must be UTF-8 text"]) from None
    return value


def _check_url(value: object, key: str, text: bool) -> str:
    value = _string(value, key)
    if not value.strip():
        raise ConfigError([f"{key}: must not be empty"])
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError, TypeError):
        raise ConfigError(
            [f"{key}: not a database URL; use e.g. sqlite+aiosqlite:///authcore.db"]
        ) from None
    try:
        dialect = url.get_dialect()
    except (NoSuchModuleError, ValueError):  # ValueError: "a+b+c://"
        raise ConfigError(
            [f"{key}: unknown database driver {describe(url.drivername)} in {safe_url(value)}"]
        ) from None
    if url.port is not None and not 0 < url.port < 65_536:
        raise ConfigError([f"{key}: port must be between 1 and 65535, got {describe(url.port)}"])
    if not getattr(dialect, "is_async", False):
        raise ConfigError(
            [
                f"{key}: {describe(url.drivername)} is not an async driver "
                "(use sqlite+aiosqlite:// or postgresql+asyncpg://)"
            ]
        )
    return value


def _check_secret(value: object, key: str, text: bool) -> str:
    value = _string(value, key)
    size = len(value.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            [
                f"{key}: too short: {size} bytes, at least {MIN_SECRET_BYTES} needed "
                "(`authcore gen-secret` makes one)"
            ]
        )
    return value


def _check_duration(value: object, key: str, text: bool) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ConfigError([f"{key}: must be positive"])
        if value > MAX_DURATION:
            raise ConfigError([f"{key}: must be at most 100 years"])
        if value % timedelta(seconds=1):
            raise ConfigError([f"{key}: must be a whole number of seconds"])
        return value
    if isinstance(value, str):
        value = _string(value, key)
    return parse_duration(value, key=key)  # type: ignore[arg-type]  # it checks the type


def _check_idle_timeout(value: object, key: str, text: bool) -> timedelta | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    result = _check_duration(value, key, text)
    if result <= MIN_IDLE_TIMEOUT:
        raise ConfigError(
            [f'{key}: must be longer than 60 seconds (the session touch interval), or "off"']
        )
    return result


def _check_rounds(value: object, key: str, text: bool) -> int:
    if text and isinstance(value, str):
        digits = value.strip()
        if not _WHOLE_RE.fullmatch(digits):
            raise ConfigError([f"{key}: must be a whole number, got {describe(value)}"])
        if len(digits) > 6:
            problem = f"must be at most {ROUNDS_RANGE[1]}, got a number of {len(digits)} digits"
            raise ConfigError([f"{key}: {problem}"])
        return int(digits)
    if isinstance(value, bool) or not isinstance(value, int):
        hint = ""
        if isinstance(value, str) and _WHOLE_RE.fullmatch(value) and len(value) <= 6:
            hint = f" (write {key} = {value}, without quotes)"
        raise ConfigError([f"{key}: must be a whole number, got {type_name(value)}{hint}"])
    return value  # the range depends on allow_test_rounds: see rounds_problem


CHECKERS: Final[dict[str, Callable[[object, str, bool], Any]]] = {
    "database_url": _check_url,
    "secret_key": _check_secret,
    "session_ttl": _check_duration,
    "idle_timeout": _check_idle_timeout,
    "access_ttl": _check_duration,
    "bcrypt_rounds": _check_rounds,
}
"""One checker per setting: ``(value, key, text)`` to the converted value, or ConfigError."""


def rounds_problem(rounds: int, allow_test_rounds: bool, key: str) -> str | None:
    """The problem with *rounds* as a bcrypt work factor, or ``None``."""
    low, high = ROUNDS_RANGE
    if low <= rounds <= high:
        return None
    test_low, test_high = TEST_ROUNDS_RANGE
    if allow_test_rounds and test_low <= rounds <= test_high:
        return None
    hint = (
        ""
        if allow_test_rounds
        else f" ({test_low} to {test_high} only for tests, with --allow-test-rounds)"
    )
    first = test_low if allow_test_rounds else low
    return f"{key}: must be between {first} and {high}, got {describe(rounds)}{hint}"


def lifetime_problems(
    session_ttl: timedelta,
    idle_timeout: timedelta | None,
    access_ttl: timedelta,
    origin: Callable[[str], str] = lambda key: "",
) -> list[str]:
    """What is inconsistent between the lifetimes: each must fit in ``session_ttl``.

    *origin* gives a suffix such as ``" (from file)"`` for each key.
    """
    problems = []
    session = f"session_ttl, {format_duration(session_ttl)}{origin('session_ttl')}"
    if access_ttl > session_ttl:
        problems.append(
            f"access_ttl: {format_duration(access_ttl)}{origin('access_ttl')} is longer than "
            f"{session}: an access token would outlive its session"
        )
    if idle_timeout is not None and idle_timeout > session_ttl:
        problems.append(
            f"idle_timeout: {format_duration(idle_timeout)}{origin('idle_timeout')} is longer "
            f"than {session}: it could never apply"
        )
    return problems
