"""The session store contract, written once and run against every backend.

Each test runs for SQLite in memory, a SQLite file, PostgreSQL and the
in-memory fake (see ``make_store`` in conftest). A behaviour that differs
between them is a bug in one of them.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest

from authcore import (
    AuthSession,
    InvalidTokenError,
    IssuedSession,
    MalformedTokenError,
    SessionStats,
    TokenExpiredError,
    TokenReuseError,
    TokenRevokedError,
    generate_token,
    parse_token,
)
from authcore.sessions import BaseSessionStore
from authcore.testing import FakeClock

from .conftest import StoreFactory

UNKNOWN = generate_token("nobody")
MALFORMED = ["", "token_x", "not a token", "token_u_01_" + "a" * 64, None, 42]


def exactly(error: type[Exception]) -> pytest.RaisesExc[Exception]:
    """``pytest.raises`` for *error* itself, not a subclass."""
    return pytest.raises(error, check=lambda e: type(e) is error)


async def test_create_and_validate(store: BaseSessionStore, clock: FakeClock) -> None:
    token = await store.create_session(
        "alice", data={"role": "admin", "n": [1, 2]}, ip="203.0.113.9", user_agent="Firefox"
    )
    parts = parse_token(token)
    assert parts.user_id == "alice"
    assert parts.issued_at == clock()
    assert len(parts.secret) == 64
    session = await store.validate(token)
    assert isinstance(session, AuthSession)
    assert session.user_id == "alice"
    assert session.data == {"role": "admin", "n": [1, 2]}
    assert (session.ip, session.user_agent) == ("203.0.113.9", "Firefox")
    assert session.created_at == session.last_seen_at == clock()
    assert session.expires_at == clock() + timedelta(days=14)
    for moment in (session.created_at, session.last_seen_at, session.expires_at):
        assert moment.tzinfo is UTC
    assert token not in repr(session)
    assert session.id not in token


async def test_issue_session_returns_the_session_as_stored(
    store: BaseSessionStore, clock: FakeClock
) -> None:
    issued = await store.issue_session(
        "alice", data={"role": "admin"}, ip="203.0.113.9", user_agent="Firefox"
    )
    assert isinstance(issued, IssuedSession)
    assert parse_token(issued.token).user_id == "alice"
    assert issued.session == await store.validate(issued.token)
    assert issued.session.created_at == issued.session.last_seen_at == clock()
    assert issued.token not in repr(issued)
    assert "session=" in repr(issued)
    with pytest.raises(AttributeError):
        issued.token = "x"  # type: ignore[misc]
    assert [s.id for s in await store.list_sessions("alice")] == [issued.session.id]


async def test_rotate_session_returns_the_successor_as_stored(
    store: BaseSessionStore, clock: FakeClock
) -> None:
    old = await store.issue_session("u", data={"k": "v"}, ip="10.0.0.1", user_agent="ua")
    clock.advance(minutes=5)
    new = await store.rotate_session(old.token)
    assert new.token != old.token
    assert new.session.id != old.session.id
    assert new.session.created_at == clock()
    assert new.session == await store.validate(new.token)
    fields = (new.session.data, new.session.ip, new.session.user_agent)
    assert fields == ({"k": "v"}, "10.0.0.1", "ua")
    with pytest.raises(TokenReuseError):
        await store.rotate_session(old.token)
    with pytest.raises(MalformedTokenError):
        await store.rotate_session("garbage")


async def test_user_ids_are_stored_as_strings(store: BaseSessionStore) -> None:
    token = await store.create_session(42)
    assert (await store.validate(token)).user_id == "42"
    assert [s.user_id for s in await store.list_sessions("42")] == ["42"]
    assert len(await store.list_sessions(42)) == 1


async def test_each_create_returns_a_distinct_token_and_session(store: BaseSessionStore) -> None:
    tokens = [await store.create_session("u") for _ in range(50)]
    assert len(set(tokens)) == 50
    sessions = await store.list_sessions("u")
    assert len({s.id for s in sessions}) == 50


async def test_custom_ttl(store: BaseSessionStore, clock: FakeClock) -> None:
    token = await store.create_session("u", ttl=timedelta(minutes=5))
    assert (await store.validate(token)).expires_at == clock() + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": {"x": {1, 2}}}, TypeError),
        ({"data": {"x": object()}}, TypeError),
        ({"data": {"x": math.nan}}, ValueError),
        ({"data": {1: "int key"}}, TypeError),
        ({"data": ["not", "a", "dict"]}, TypeError),
        ({"data": {"big": "x" * 70_000}}, ValueError),
        ({"ttl": timedelta(0)}, ValueError),
        ({"ttl": timedelta(seconds=-1)}, ValueError),
        ({"ttl": 60}, TypeError),
        ({"ttl": timedelta.max}, ValueError),
        ({"ip": 1234}, TypeError),
        ({"user_agent": b"bytes"}, TypeError),
    ],
)
async def test_bad_create_arguments_store_nothing(
    store: BaseSessionStore, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.create_session("u", **kwargs)  # type: ignore[arg-type]
    assert await store.list_sessions("u") == []


@pytest.mark.parametrize("user_id", ["", "x" * 256, None, True, 1.5])
async def test_bad_user_ids(store: BaseSessionStore, user_id: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        await store.create_session(user_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ip", "stored"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:DB8::1", "2001:db8::1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),  # the same on every Python
        ("::FFFF:C000:0201", "::ffff:192.0.2.1"),
        ("1" * 65, None),
        ("<script>alert(1)</script>", None),
        ("192.0.2.1, 10.0.0.1", None),  # a whole X-Forwarded-For list
        ("999.1.1.1", None),
        ("", None),
        ("fe80::1%" + "x" * 70, None),
        (None, None),
    ],
)
async def test_only_an_ip_address_is_stored_as_ip(
    store: BaseSessionStore, ip: str | None, stored: str | None
) -> None:
    issued = await store.issue_session("u", ip=ip)
    assert issued.session.ip == stored
    assert (await store.validate(issued.token)).ip == stored
    assert (await store.validate(await store.rotate(issued.token))).ip == stored


async def test_long_user_agent_is_shortened(store: BaseSessionStore) -> None:
    token = await store.create_session("u", user_agent="A" * 2000)
    assert (await store.validate(token)).user_agent == "A" * 512


async def test_absolute_expiry_boundary_is_exact(store: BaseSessionStore, clock: FakeClock) -> None:
    token = await store.create_session("u", ttl=timedelta(hours=1))
    clock.advance(hours=1, microseconds=-1)
    await store.validate(token)
    clock.advance(microseconds=1)
    with exactly(TokenExpiredError):
        await store.validate(token)
    assert await store.get_session(token) is None


async def test_activity_never_moves_expires_at(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(ttl=timedelta(hours=1), touch_interval=timedelta(0))
    token = await store.create_session("u")
    expires = (await store.validate(token)).expires_at
    for _ in range(5):
        clock.advance(minutes=11)
        assert (await store.validate(token)).expires_at == expires
    clock.advance(minutes=5)
    with pytest.raises(TokenExpiredError):
        await store.validate(token)


async def test_idle_timeout(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(
        idle_timeout=timedelta(minutes=30), touch_interval=timedelta(minutes=1)
    )
    token = await store.create_session("u")
    clock.advance(minutes=29)
    assert (await store.validate(token)).last_seen_at == clock()
    clock.advance(minutes=29)  # 58 minutes in, 29 since the touch
    await store.validate(token)
    clock.advance(minutes=30)
    with exactly(TokenExpiredError):
        await store.validate(token)


async def test_idle_boundary_is_exact(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(idle_timeout=timedelta(minutes=30))
    token = await store.create_session("u")
    clock.advance(minutes=30, microseconds=-1)
    clock_before = clock()
    session = await store.get_session(token)
    assert session is not None
    assert session.last_seen_at == clock_before
    clock.advance(minutes=30)
    assert await store.get_session(token) is None


async def test_touch_is_throttled(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(touch_interval=timedelta(seconds=60))
    token = await store.create_session("u")
    created = clock()
    clock.advance(seconds=59)
    assert (await store.validate(token)).last_seen_at == created
    clock.advance(seconds=1)
    assert (await store.validate(token)).last_seen_at == clock()
    touched = clock()
    clock.advance(seconds=30)
    assert (await store.validate(token)).last_seen_at == touched
    listed = await store.list_sessions("u")
    assert listed[0].last_seen_at == touched


async def test_touch_interval_must_be_shorter_than_idle_timeout(
    make_store: StoreFactory,
) -> None:
    with pytest.raises(ValueError, match="touch_interval"):
        await make_store(idle_timeout=timedelta(seconds=60), touch_interval=timedelta(seconds=60))


async def test_clock_going_backwards_extends_nothing(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(
        ttl=timedelta(hours=1), idle_timeout=timedelta(minutes=10), touch_interval=timedelta(0)
    )
    expiring = await store.create_session("u")
    idle = await store.create_session("u")
    clock.advance(minutes=9)
    await store.validate(idle)
    seen = clock()
    clock.advance(minutes=-30)  # the clock jumps back
    session = await store.validate(idle)
    assert session.last_seen_at == seen  # never moved backwards
    clock.advance(minutes=30 + 10)  # 10 minutes after the last real touch
    with pytest.raises(TokenExpiredError):
        await store.validate(idle)
    clock.advance(minutes=60)
    with pytest.raises(TokenExpiredError):
        await store.validate(expiring)
    clock.advance(hours=-2)  # back before the expiry: still expired
    with pytest.raises(TokenExpiredError):
        await store.validate(expiring)


async def test_unknown_token(store: BaseSessionStore) -> None:
    with exactly(InvalidTokenError):
        await store.validate(UNKNOWN)
    with exactly(InvalidTokenError):
        await store.rotate(UNKNOWN)
    assert await store.get_session(UNKNOWN) is None
    assert await store.revoke(UNKNOWN) is False


@pytest.mark.parametrize("bad", MALFORMED)
async def test_malformed_tokens(store: BaseSessionStore, bad: object) -> None:
    with pytest.raises(MalformedTokenError):
        await store.validate(bad)  # type: ignore[arg-type]
    with pytest.raises(MalformedTokenError):
        await store.rotate(bad)  # type: ignore[arg-type]
    assert await store.get_session(bad) is None  # type: ignore[arg-type]
    assert await store.revoke(bad) is False  # type: ignore[arg-type]


async def test_rotate(store: BaseSessionStore, clock: FakeClock) -> None:
    old = await store.create_session("u", data={"k": "v"}, ip="10.0.0.1", user_agent="ua")
    before = await store.validate(old)
    clock.advance(hours=1)
    new = await store.rotate(old)
    assert new != old
    after = await store.validate(new)
    assert (after.user_id, after.data, after.ip, after.user_agent) == (
        "u",
        {"k": "v"},
        "10.0.0.1",
        "ua",
    )
    assert after.id != before.id
    assert after.created_at == clock()
    assert after.expires_at == clock() + timedelta(days=14)
    assert parse_token(new).issued_at == clock()
    assert [s.id for s in await store.list_sessions("u")] == [after.id]


async def test_reuse_revokes_the_whole_family(store: BaseSessionStore) -> None:
    first = await store.create_session("u")
    second = await store.rotate(first)
    third = await store.rotate(second)
    bystander = await store.create_session("u")
    with exactly(TokenReuseError):
        await store.validate(first)
    for token in (second, third):
        with pytest.raises(TokenRevokedError):
            await store.validate(token)
    # Reuse stays detectable, and the unrelated session is untouched.
    with pytest.raises(TokenReuseError):
        await store.rotate(second)
    assert (await store.validate(bystander)).user_id == "u"


async def test_a_reuse_names_its_user_and_session(store: BaseSessionStore) -> None:
    """For the audit log: ``TokenReuseError`` says whose token it was, on every path."""
    first = await store.create_session("alice")
    session_id = (await store.validate(first)).id
    await store.rotate(first)
    for attempt in (store.validate, store.rotate):
        with exactly(TokenReuseError) as caught:
            await attempt(first)
        assert (caught.value.user_id, caught.value.session_id) == ("alice", session_id)
    joined = getattr(store, "validate_with_user", None)  # the FastAPI dependencies' read
    if joined is not None:
        with exactly(TokenReuseError) as caught:
            await joined(first)
        assert (caught.value.user_id, caught.value.session_id) == ("alice", session_id)


async def test_reuse_through_get_session_and_rotate(store: BaseSessionStore) -> None:
    first = await store.create_session("u")
    second = await store.rotate(first)
    assert await store.get_session(first) is None
    assert await store.get_session(second) is None

    other = await store.create_session("v")
    newer = await store.rotate(other)
    with exactly(TokenReuseError):
        await store.rotate(other)
    with exactly(TokenRevokedError):
        await store.validate(newer)


async def test_rotate_refuses_expired_and_revoked(
    store: BaseSessionStore, clock: FakeClock
) -> None:
    expired = await store.create_session("u", ttl=timedelta(minutes=1))
    revoked = await store.create_session("u")
    assert await store.revoke(revoked)
    clock.advance(minutes=1)
    with exactly(TokenExpiredError):
        await store.rotate(expired)
    with exactly(TokenRevokedError):
        await store.rotate(revoked)


async def test_revoke(store: BaseSessionStore) -> None:
    token = await store.create_session("u")
    assert await store.revoke(token) is True
    assert await store.revoke(token) is False
    with exactly(TokenRevokedError):
        await store.validate(token)
    assert await store.list_sessions("u") == []


async def test_revoke_expired_is_false(store: BaseSessionStore, clock: FakeClock) -> None:
    token = await store.create_session("u", ttl=timedelta(seconds=1))
    clock.advance(seconds=1)
    assert await store.revoke(token) is False


async def test_revoke_all(store: BaseSessionStore) -> None:
    tokens = [await store.create_session("u") for _ in range(3)]
    other = await store.create_session("v")
    assert await store.revoke(tokens[0])
    assert await store.revoke_all("u") == 2
    assert await store.revoke_all("u") == 0
    for token in tokens:
        assert await store.get_session(token) is None
    assert await store.get_session(other) is not None


async def test_revoke_all_but_current(store: BaseSessionStore) -> None:
    keep, *others = [await store.create_session("u") for _ in range(4)]
    assert await store.revoke_all("u", except_token=keep) == 3
    assert await store.get_session(keep) is not None
    assert [await store.get_session(t) for t in others] == [None, None, None]


async def test_revoke_all_except_session_id(store: BaseSessionStore) -> None:
    keep = await store.create_session("u")
    other = await store.create_session("u")
    kept_id = (await store.validate(keep)).id
    assert await store.revoke_all("u", except_session_id=kept_id) == 1
    assert await store.get_session(keep) is not None
    assert await store.get_session(other) is None


async def test_revoke_all_with_malformed_exception_changes_nothing(
    store: BaseSessionStore,
) -> None:
    token = await store.create_session("u")
    with pytest.raises(MalformedTokenError):
        await store.revoke_all("u", except_token="garbage")
    assert await store.get_session(token) is not None


async def test_get_session_by_id(store: BaseSessionStore, clock: FakeClock) -> None:
    token = await store.create_session("u", ttl=timedelta(hours=1))
    session = await store.validate(token)
    assert await store.get_session_by_id(session.id) == session
    for junk in ("", "nope", "x" * 500, None, 7):
        assert await store.get_session_by_id(junk) is None  # type: ignore[arg-type]
    clock.advance(hours=1)
    assert await store.get_session_by_id(session.id) is None
    revoked = await store.create_session("u")
    revoked_id = (await store.validate(revoked)).id
    await store.revoke(revoked)
    assert await store.get_session_by_id(revoked_id) is None


async def test_get_session_by_id_keeps_idle_sessions_alive(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(idle_timeout=timedelta(minutes=10))
    token = await store.create_session("u")
    session_id = (await store.validate(token)).id
    for _ in range(3):
        clock.advance(minutes=9)
        assert await store.get_session_by_id(session_id) is not None
    assert (await store.validate(token)).last_seen_at == clock()


async def test_list_sessions_newest_first_active_only(
    store: BaseSessionStore, clock: FakeClock
) -> None:
    tokens = []
    for n in range(4):
        tokens.append(await store.create_session("u", user_agent=f"device {n}"))
        clock.advance(seconds=1)
    await store.create_session("someone else")
    await store.revoke(tokens[1])
    listed = await store.list_sessions("u")
    assert [s.user_agent for s in listed] == ["device 3", "device 2", "device 0"]
    assert await store.list_sessions("nobody") == []


async def test_revoke_session_only_within_the_user(store: BaseSessionStore) -> None:
    token = await store.create_session("u")
    session_id = (await store.validate(token)).id
    assert await store.revoke_session("intruder", session_id) is False
    assert await store.get_session(token) is not None
    assert await store.revoke_session("u", "unknown-id") is False
    assert await store.revoke_session("u", None) is False  # type: ignore[arg-type]
    assert await store.revoke_session("u", session_id) is True
    assert await store.revoke_session("u", session_id) is False
    assert await store.get_session(token) is None


async def test_purge_expired(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(ttl=timedelta(days=1))
    live = await store.create_session("u")
    await store.create_session("u", ttl=timedelta(hours=1))  # will expire
    logged_out = await store.create_session("u")
    await store.revoke(logged_out)
    rotated = await store.create_session("u")
    successor = await store.rotate(rotated)
    assert await store.purge_expired() == 1  # the logged-out session
    clock.advance(hours=1)
    # The expired one goes now; the rotated-away row stays so reuse is detectable.
    assert await store.purge_expired() == 1
    assert await store.purge_expired() == 0
    with pytest.raises(TokenReuseError):
        await store.validate(rotated)
    assert await store.get_session(successor) is None
    assert await store.get_session(live) is not None
    clock.advance(days=1)
    # rotated (expired), successor (expired after reuse revoke), live (expired).
    assert await store.purge_expired() == 3
    with exactly(InvalidTokenError):
        await store.validate(rotated)


async def test_purge_idle_sessions(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(idle_timeout=timedelta(minutes=5))
    await store.create_session("u")
    kept = await store.create_session("u")
    clock.advance(minutes=4)
    await store.validate(kept)
    clock.advance(minutes=1)
    assert await store.purge_expired() == 1
    assert await store.get_session(kept) is not None


async def test_purge_many(store: BaseSessionStore, clock: FakeClock) -> None:
    for _ in range(2_100):
        await store.create_session("u", ttl=timedelta(seconds=1))
    keep = await store.create_session("u", ttl=timedelta(days=1))
    clock.advance(seconds=1)
    assert await store.purge_expired() == 2_100
    assert await store.get_session(keep) is not None


async def test_store_repr_has_no_secrets(store: BaseSessionStore) -> None:
    token = await store.create_session("u")
    assert token not in repr(store)
    assert "ttl=" in repr(store)


def test_constructor_validation() -> None:
    from authcore.testing import InMemorySessionStore

    with pytest.raises(TypeError):
        InMemorySessionStore(ttl=3600)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        InMemorySessionStore(ttl=timedelta(0))
    with pytest.raises(ValueError, match="nbytes"):
        InMemorySessionStore(token_bytes=8)
    with pytest.raises(ValueError, match="touch_interval"):
        InMemorySessionStore(touch_interval=timedelta(seconds=-1))
    with pytest.raises(TypeError, match="clock"):
        InMemorySessionStore(clock=datetime.now(UTC))  # type: ignore[arg-type]


async def test_naive_clock_is_refused(make_store: StoreFactory) -> None:
    store = await make_store(clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        await store.create_session("u")


async def test_token_bytes(make_store: StoreFactory) -> None:
    store = await make_store(token_bytes=16)
    token = await store.create_session("u")
    assert len(parse_token(token).secret) == 32


# -- rotation grace --------------------------------------------------------------


async def test_rotation_grace_lets_a_lost_refresh_retry(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(rotation_grace=timedelta(seconds=30))
    old = await store.create_session("u", data={"k": 1}, user_agent="tab")
    first = await store.rotate(old)
    clock.advance(seconds=29)
    with exactly(TokenRevokedError):
        await store.validate(old)  # refused, but no theft alarm
    second = await store.rotate(old)  # the retry of a lost response, or a second tab
    assert len({old, first, second}) == 3
    for token in (first, second):
        session = await store.validate(token)
        assert (session.data, session.user_agent) == ({"k": 1}, "tab")
    assert len(await store.list_sessions("u")) == 2
    # Still the same family: reuse after the grace revokes all of it.
    clock.advance(seconds=1)
    with exactly(TokenReuseError):
        await store.rotate(old)
    for token in (first, second):
        with pytest.raises(TokenRevokedError):
            await store.validate(token)


async def test_validate_after_the_grace_is_reuse(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(rotation_grace=timedelta(seconds=30))
    old = await store.create_session("u")
    new = await store.rotate(old)
    clock.advance(seconds=30)
    with exactly(TokenReuseError):
        await store.validate(old)
    with pytest.raises(TokenRevokedError):
        await store.validate(new)


async def test_no_grace_by_default(store: BaseSessionStore) -> None:
    assert store.rotation_grace == timedelta(0)
    old = await store.create_session("u")
    new = await store.rotate(old)
    with exactly(TokenReuseError):
        await store.rotate(old)
    assert await store.get_session(new) is None


async def test_grace_does_not_revive_a_logged_out_family(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(rotation_grace=timedelta(minutes=1))
    old = await store.create_session("u")
    new = await store.rotate(old)
    assert await store.revoke(new)
    with exactly(TokenRevokedError):
        await store.rotate(old)
    assert await store.list_sessions("u") == []


def test_grace_and_cap_arguments() -> None:
    from authcore.testing import InMemorySessionStore

    with pytest.raises(TypeError, match="rotation_grace"):
        InMemorySessionStore(rotation_grace=30)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rotation_grace"):
        InMemorySessionStore(rotation_grace=timedelta(seconds=-1))
    for bad in ("3", 2.0, True):
        with pytest.raises(TypeError, match="max_sessions_per_user"):
            InMemorySessionStore(max_sessions_per_user=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_sessions_per_user"):
        InMemorySessionStore(max_sessions_per_user=0)
    assert InMemorySessionStore(max_sessions_per_user=1).max_sessions_per_user == 1


# -- session cap -------------------------------------------------------------------


async def test_cap_revokes_the_least_recently_seen(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(max_sessions_per_user=3, touch_interval=timedelta(0))
    tokens = []
    for n in range(3):
        tokens.append(await store.create_session("u", user_agent=f"device {n}"))
        clock.advance(seconds=1)
    await store.validate(tokens[0])  # device 0 is now the most recently seen
    clock.advance(seconds=1)
    other = await store.create_session("someone else")
    newest = await store.issue_session("u", user_agent="device 3")
    listed = await store.list_sessions("u")
    assert len(listed) == 3
    assert {s.user_agent for s in listed} == {"device 0", "device 2", "device 3"}
    assert newest.session.id in {s.id for s in listed}
    with exactly(TokenRevokedError):
        await store.validate(tokens[1])
    assert await store.get_session(other) is not None
    # Over and over: never more than the cap, and the new one always wins.
    for _ in range(5):
        token = await store.create_session("u")
        assert await store.get_session(token) is not None
        assert len(await store.list_sessions("u")) == 3


async def test_cap_of_one(make_store: StoreFactory) -> None:
    store = await make_store(max_sessions_per_user=1)
    first = await store.create_session("u")
    second = await store.create_session("u")
    assert await store.get_session(first) is None
    assert [s.id for s in await store.list_sessions("u")] == [(await store.validate(second)).id]


# -- logout racing a refresh ---------------------------------------------------------


async def test_logout_of_a_rotated_away_token_ends_its_successor(
    store: BaseSessionStore,
) -> None:
    old = await store.create_session("u")
    bystander = await store.create_session("u")
    new = await store.rotate(old)  # the refresh won the race
    assert await store.revoke(old) is True  # the logout still logs out
    with pytest.raises(TokenRevokedError):
        await store.validate(new)
    assert await store.revoke(old) is False  # nothing left to end
    assert await store.get_session(bystander) is not None


async def test_revoke_session_of_a_rotated_away_session_ends_its_successor(
    store: BaseSessionStore,
) -> None:
    old = await store.issue_session("u")
    bystander = await store.create_session("u")
    new = await store.rotate(old.token)  # the refresh won a race with a logout by access token
    assert await store.revoke_session("intruder", old.session.id) is False  # never another's
    assert await store.get_session(new) is not None
    assert await store.revoke_session("u", old.session.id) is True
    with pytest.raises(TokenRevokedError):
        await store.validate(new)
    assert await store.revoke_session("u", old.session.id) is False  # nothing left to end
    assert await store.get_session(bystander) is not None


async def test_cap_holds_under_concurrent_creates(make_store: StoreFactory) -> None:

    store = await make_store(max_sessions_per_user=3)
    tokens = await asyncio.gather(*(store.create_session("u") for _ in range(40)))
    assert len(set(tokens)) == 40
    assert len(await store.list_sessions("u")) == 3


# -- maintenance -------------------------------------------------------------------


async def test_purge_in_batches_reports_progress(store: BaseSessionStore, clock: FakeClock) -> None:
    for _ in range(25):
        await store.create_session("u", ttl=timedelta(seconds=1))
    keep = await store.create_session("u", ttl=timedelta(days=1))
    clock.advance(seconds=1)
    assert await store.count_purgeable() == 25
    seen: list[int] = []
    assert await store.purge_expired(batch_size=10, progress=seen.append) == 25
    assert seen == [10, 20, 25]
    assert await store.count_purgeable() == 0
    assert await store.get_session(keep) is not None

    async def async_progress(count: int) -> None:
        seen.append(-count)

    assert await store.purge_expired(batch_size=10, progress=async_progress) == 0
    assert seen[-1] == 0


@pytest.mark.parametrize(("batch_size", "error"), [(0, ValueError), (1.5, TypeError)])
async def test_purge_refuses_a_bad_batch_size(
    store: BaseSessionStore, batch_size: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="batch_size"):
        await store.purge_expired(batch_size=batch_size)  # type: ignore[arg-type]


async def test_stats(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(idle_timeout=timedelta(hours=1))
    assert await store.stats() == SessionStats(active=0, expired=0, revoked=0, active_users=0)
    await store.create_session("a")
    await store.create_session("a")
    await store.create_session("b", ttl=timedelta(minutes=1))
    rotated = await store.create_session("c")
    await store.rotate(rotated)
    await store.revoke(await store.create_session("d"))
    stats = await store.stats()
    assert stats == SessionStats(active=4, expired=0, revoked=2, active_users=3)
    assert stats.total == 6
    assert await store.count_purgeable() == 1  # the logout; the rotated row is kept
    clock.advance(minutes=1)
    assert await store.stats() == SessionStats(active=3, expired=1, revoked=2, active_users=2)
    clock.advance(hours=1)  # now everything unrevoked is idle-expired
    assert await store.stats() == SessionStats(active=0, expired=4, revoked=2, active_users=0)
    assert await store.count_purgeable() == 5  # the rotated-away row is not expired yet
