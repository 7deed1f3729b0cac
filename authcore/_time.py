"""Clocks and aware-UTC helpers shared by every module that reads the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal, overload

__all__ = [
    "EPOCH",
    "Clock",
    "as_utc",
    "checked_clock",
    "positive_timedelta",
    "read_clock",
    "system_clock",
]

Clock = Callable[[], datetime]
"""A zero-argument callable returning the current time as an aware UTC ``datetime``."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def system_clock() -> datetime:
    """Return the current time from the system clock, aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime, *, name: str = "datetime") -> datetime:
    """Return *value* converted to UTC, refusing naive datetimes.

    Raises:
        TypeError: *value* is not a ``datetime``.
        ValueError: *value* is naive (has no ``tzinfo``).
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got a naive datetime")
    return value.astimezone(UTC)


def read_clock(clock: Clock) -> datetime:
    """Call *clock* and check that it returned an aware datetime, as UTC."""
    return as_utc(clock(), name="clock()")


def checked_clock(clock: object) -> Clock:
    """The *clock* argument of a constructor: itself if callable, the system clock for ``None``.

    Raises:
        TypeError: *clock* is neither ``None`` nor callable.
    """
    if clock is None:
        return system_clock
    if not callable(clock):
        raise TypeError("clock must be a zero-argument callable returning a datetime")
    return clock


@overload
def positive_timedelta(
    value: object, *, name: str, allow_none: Literal[False] = False
) -> timedelta: ...


@overload
def positive_timedelta(value: object, *, name: str, allow_none: bool) -> timedelta | None: ...


def positive_timedelta(value: object, *, name: str, allow_none: bool = False) -> timedelta | None:
    """Validate a duration argument: a ``timedelta`` greater than zero (or ``None`` if allowed).

    Without *allow_none* the result is typed ``timedelta``, so a required
    duration needs no wrapper.

    Raises:
        TypeError: *value* is not a ``timedelta`` (nor an allowed ``None``).
        ValueError: *value* is zero or negative.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, got {type(value).__name__}")
    if value <= timedelta(0):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value
