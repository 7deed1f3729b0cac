from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from authcore.testing import FakeClock, fast_hasher


def test_fake_clock_starts_and_moves() -> None:
    clock = FakeClock()
    assert clock() == datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=1)) == datetime(2030, 1, 1, 0, 1, tzinfo=UTC)
    assert clock.advance(seconds=30, microseconds=5) == clock()
    assert clock() == datetime(2030, 1, 1, 0, 1, 30, 5, tzinfo=UTC)
    clock.advance(hours=-2)
    assert clock() < datetime(2030, 1, 1, tzinfo=UTC)
    assert repr(clock).startswith("FakeClock('2029-12-31T22:01:30")


def test_fake_clock_start_and_set_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    clock = FakeClock(datetime(2031, 6, 1, 12, tzinfo=plus_two))
    assert clock() == datetime(2031, 6, 1, 10, tzinfo=UTC)
    assert clock().tzinfo is UTC
    clock.set(datetime(2032, 1, 1, tzinfo=UTC))
    assert clock() == datetime(2032, 1, 1, tzinfo=UTC)


def test_fake_clock_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2030, 1, 1))
    clock = FakeClock()
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2030, 1, 1))
    with pytest.raises(TypeError):
        clock.advance(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="either"):
        clock.advance(timedelta(seconds=1), seconds=1)


def test_fast_hasher_is_minimum_cost() -> None:
    hasher = fast_hasher()
    assert "rounds=4" in repr(hasher)
    assert hasher.verify_sync("pw", hasher.hash_sync("pw"))
