"""The values a configuration may hold: durations, URLs, secrets, rounds, and their checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Final

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
ENVIRONMENT_VARIABLES: Final = {f"AUTHCORE_{key.upper()}": key for key in KEYS}
"""The environment variables read, each mapped to the setting it sets."""

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION_RE: Final = re.compile(r"([0-9]{1,12})\s*([smhd]?)")
_DURATION_HINT: Final = 'use e.g. "90s", "30m", "12h", "14d" or whole seconds'
_TABLE: Final = "authcore"


class ConfigError(ValueError):
    """The configuration is invalid; :attr:`problems` lists every problem found.

    Each problem reads ``"key: what is wrong"``. ``str()`` joins them with
    ``"; "``. Guaranteed: no problem ever contains the secret key or a
    database password.

    Attributes:
        problems: One entry per problem, in the order found.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("; ".join(self.problems))


def _describe(value: object) -> str:
    """A short, quoted form of a (non-secret) bad value for a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: object) -> str:
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

    Whole seconds may be an ``int`` or a string of digits (as environment
    variables give them). The result is positive and at most 100 years.

    Example:
        >>> parse_duration("12h")
        datetime.timedelta(seconds=43200)
        >>> parse_duration(90)
        datetime.timedelta(seconds=90)

    Raises:
        ConfigError: (a ``ValueError``) naming *key*: not a duration, zero,
            negative, or too long.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(
            [f"{key}: must be a duration string or whole seconds, got {_type_name(value)}"]
        )
    if isinstance(value, int):
        amount, unit = value, "s"
    else:
        match = _DURATION_RE.fullmatch(value.strip())
        if match is None:
            raise ConfigError([f"{key}: invalid duration {_describe(value)} ({_DURATION_HINT})"])
        amount, unit = int(match[1]), match[2] or "s"
    if amount <= 0:
        raise ConfigError([f"{key}: must be positive, got {_describe(value)}"])
    seconds = amount * _UNITS[unit]
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError([f"{key}: must be at most 100 years, got {_describe(value)}"])
    return timedelta(seconds=seconds)


def safe_url(url: str) -> str:
    """*url* with any password masked as ``***``, fit for messages and output.

    Falls back to ``"<unparsable URL>"`` when it cannot be parsed, so a
    password is never shown even then.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable URL>"


# -- one checker per setting: (value, key) -> converted value, or ConfigError ----------


def _check_url(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError([f"{key}: must be a string, got {_type_name(value)}"])
    if not value.strip():
        raise ConfigError([f"{key}: must not be empty"])
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ConfigError(
            [f"{key}: not a database URL; use e.g. sqlite+aiosqlite:///authcore.db"]
        ) from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(
            [f"{key}: unknown database driver {url.drivername!r} in {safe_url(value)}"]
        ) from None
    if not getattr(dialect, "is_async", False):
        raise ConfigError(
            [
                f"{key}: {url.drivername!r} is not an async driver "
                "(use sqlite+aiosqlite:// or postgresql+asyncpg://)"
            ]
        )
    return value


def _check_secret(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError([f"{key}: must be a string, got {_type_name(value)}"])
    size = len(value.encode("utf-8", "surrogatepass"))
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            [
                f"{key}: too short: {size} bytes, at least {MIN_SECRET_BYTES} needed "
                "(`authcore gen-secret` makes one)"
            ]
        )
    return value


def _check_duration(value: object, key: str) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ConfigError([f"{key}: must be positive"])
        if value > MAX_DURATION:
            raise ConfigError([f"{key}: must be at most 100 years"])
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(
            [f"{key}: must be a duration string or whole seconds, got {_type_name(value)}"]
        )
    return parse_duration(value, key=key)


def _check_idle_timeout(value: object, key: str) -> timedelta | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    result = _check_duration(value, key)
    if result <= MIN_IDLE_TIMEOUT:
        raise ConfigError(
            [f'{key}: must be longer than 60 seconds (the session touch interval), or "off"']
        )
    return result


def _check_rounds(value: object, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError([f"{key}: must be a whole number, got {_type_name(value)}"])
    return value  # the range is checked with allow_test_rounds, in Settings


_CHECKERS: Final[dict[str, Callable[[object, str], Any]]] = {
    "database_url": _check_url,
    "secret_key": _check_secret,
    "session_ttl": _check_duration,
    "idle_timeout": _check_idle_timeout,
    "access_ttl": _check_duration,
    "bcrypt_rounds": _check_rounds,
}


def _rounds_problem(rounds: int, allow_test_rounds: bool, key: str) -> str | None:
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
    return f"{key}: must be between {first} and {high}, got {rounds}{hint}"
