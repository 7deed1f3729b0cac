"""``authcore._time``: the clock and duration checks every module shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from authcore._time import checked_clock, positive_timedelta, read_clock, system_clock

NOON = datetime(2030, 1, 1, 12, tzinfo=UTC)


def test_checked_clock() -> None:
    def clock() -> datetime:
        return NOON

    assert checked_clock(clock) is clock
    assert checked_clock(None) is system_clock
    for wrong in ("now", NOON, 0):
        with pytest.raises(TypeError, match="clock must be a zero-argument callable"):
            checked_clock(wrong)


def test_read_clock_gives_aware_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert read_clock(lambda: datetime(2030, 1, 1, 14, tzinfo=plus_two)) == NOON
    assert read_clock(lambda: NOON).tzinfo is UTC
    with pytest.raises(ValueError, match=r"clock\(\) must be timezone-aware"):
        read_clock(lambda: datetime(2030, 1, 1))
    with pytest.raises(TypeError, match=r"clock\(\) must be a datetime"):
        read_clock(lambda: "2030-01-01")  # type: ignore[arg-type, return-value]


def test_positive_timedelta() -> None:
    assert positive_timedelta(timedelta(seconds=1), name="ttl") == timedelta(seconds=1)
    assert positive_timedelta(None, name="idle_timeout", allow_none=True) is None
    with pytest.raises(TypeError, match=r"ttl must be a datetime\.timedelta, got NoneType"):
        positive_timedelta(None, name="ttl")
    with pytest.raises(TypeError, match=r"ttl must be a datetime\.timedelta, got int"):
        positive_timedelta(60, name="ttl")
    for wrong in (timedelta(0), timedelta(microseconds=-1)):
        with pytest.raises(ValueError, match="ttl must be positive"):
            positive_timedelta(wrong, name="ttl")
