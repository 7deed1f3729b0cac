"""A controllable clock for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from authcore._time import as_utc

__all__ = ["FakeClock"]

DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to; pass it as ``clock=`` to any store.

    Calling it returns the current fake time (aware UTC). Time starts at
    *start* (2030-01-01T00:00:00Z by default) and moves with :meth:`advance`
    or :meth:`set`.

    Example:
        >>> clock = FakeClock()
        >>> store = InMemorySessionStore(clock=clock, ttl=timedelta(hours=1))  # doctest: +SKIP
        >>> clock.advance(hours=1)  # the session has now expired
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = DEFAULT_START if start is None else as_utc(start, name="start")

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, /, **kwargs: float) -> datetime:
        """Move the clock by *delta* or by ``timedelta(**kwargs)``; return the new time.

        A negative amount moves it backwards, which stores treat as a clock
        that went back: it extends nothing.

        Example:
            >>> FakeClock().advance(seconds=90).isoformat()
            '2030-01-01T00:01:30+00:00'
        """
        if delta is not None and kwargs:
            raise TypeError("pass either a timedelta or keyword arguments, not both")
        if delta is None:
            delta = timedelta(**kwargs)
        elif not isinstance(delta, timedelta):
            raise TypeError(f"delta must be a timedelta, got {type(delta).__name__}")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to *when* (an aware datetime)."""
        self._now = as_utc(when, name="when")

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()!r})"
