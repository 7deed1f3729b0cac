"""The expiry and rotation rules of ``authcore.sessions._model.status_of``, at their edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from authcore.sessions._model import Reason, Status, status_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Row:
    id: str = "sid"
    user_id: str = "u1"
    created_at: datetime = T0
    last_seen_at: datetime = T0
    expires_at: datetime = T0 + timedelta(days=14)
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    data: str = "{}"
    ip: str | None = None
    user_agent: str | None = None


def rotated_at(when: datetime) -> Row:
    return Row(revoked_at=when, revoke_reason=Reason.ROTATED)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(microseconds=1), timedelta(hours=1)])
def test_without_grace_a_rotated_token_is_reused_even_if_now_was_read_before_the_rotation(
    offset: timedelta,
) -> None:
    # Two rotations race: the loser read `now` before the winner stamped revoked_at.
    at = T0 + timedelta(seconds=10)
    row = rotated_at(at)
    assert status_of(row, at - offset, None) is Status.REUSED
    assert status_of(row, at + offset, None) is Status.REUSED


def test_within_grace_a_rotated_token_is_grace_then_reused() -> None:
    row = rotated_at(T0 + timedelta(seconds=10))
    grace = timedelta(seconds=30)
    assert status_of(row, T0, None, grace) is Status.GRACE  # read before the rotation
    assert status_of(row, T0 + timedelta(seconds=39), None, grace) is Status.GRACE
    assert status_of(row, T0 + timedelta(seconds=40), None, grace) is Status.REUSED


def test_grace_ends_with_the_session() -> None:
    row = rotated_at(T0 + timedelta(seconds=10))
    row.expires_at = T0 + timedelta(seconds=20)
    assert status_of(row, T0 + timedelta(seconds=19), None, timedelta(hours=1)) is Status.GRACE
    assert status_of(row, T0 + timedelta(seconds=20), None, timedelta(hours=1)) is Status.REUSED


def test_other_revocations_win_over_everything() -> None:
    row = Row(revoked_at=T0, revoke_reason=Reason.LOGOUT)
    assert status_of(row, T0 - timedelta(days=1), None, timedelta(hours=1)) is Status.REVOKED
    assert status_of(row, T0 + timedelta(days=30), None) is Status.REVOKED


def test_expiry_boundaries() -> None:
    row = Row()
    assert status_of(row, row.expires_at - timedelta(microseconds=1), None) is Status.ACTIVE
    assert status_of(row, row.expires_at, None) is Status.EXPIRED
    idle = timedelta(minutes=5)
    assert status_of(row, T0 + idle - timedelta(microseconds=1), idle) is Status.ACTIVE
    assert status_of(row, T0 + idle, idle) is Status.EXPIRED
