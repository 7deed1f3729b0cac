"""JWTManager remembers the tokens it verified: what is remembered, and what is still checked.

The same access token comes back on every request; its signature and JSON
are verified once per manager, while every claim (``exp``, ``iat``, ``nbf``,
issuer, audience...) is checked again against the clock on every call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authcore.errors import InvalidTokenError, TokenExpiredError
from authcore.jwt import VERIFIED_CACHE_SIZE, JWTManager

SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
START = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_a_remembered_token_still_expires() -> None:
    clock = Clock()
    jwt = JWTManager(SECRET, clock=clock, ttl=timedelta(minutes=5))
    token = jwt.issue("alice", session_id="s1")
    assert jwt.verify(token)["sub"] == "alice"
    assert jwt.verify(token)["sub"] == "alice"  # remembered
    clock.now = START + timedelta(minutes=5)
    with pytest.raises(TokenExpiredError):
        jwt.verify(token)
    clock.now = START  # and the iat check runs again too
    assert jwt.verify(token)["sid"] == "s1"
    clock.now = START - timedelta(minutes=1)
    with pytest.raises(InvalidTokenError, match="issued in the future"):
        jwt.verify(token)


def test_a_manager_that_remembers_a_token_and_one_that_does_not_agree() -> None:
    clock = Clock()
    jwt = JWTManager(SECRET, clock=clock)
    token = jwt.issue("alice", claims={"custom": 1})
    assert jwt.verify(token)["custom"] == 1
    assert jwt.verify(token)["custom"] == 1
    later = JWTManager(SECRET, clock=clock)
    clock.now = START - timedelta(seconds=30)  # before iat, on a manager with it remembered
    with pytest.raises(InvalidTokenError):
        jwt.verify(token)
    with pytest.raises(InvalidTokenError):
        later.verify(token)


def test_only_the_exact_token_is_remembered() -> None:
    jwt = JWTManager(SECRET, clock=Clock())
    token = jwt.issue("alice")
    jwt.verify(token)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{head}.{payload}.{flipped}", token + " ", token[:-1]):
        with pytest.raises(InvalidTokenError):
            jwt.verify(forged)


def test_another_manager_does_not_share_what_one_remembered() -> None:
    clock = Clock()
    token = JWTManager(SECRET, clock=clock).issue("alice")
    other = JWTManager("another-secret-that-is-long-enough-for-hs256", clock=clock)
    owner = JWTManager(SECRET, clock=clock)
    assert owner.verify(token)["sub"] == "alice"
    with pytest.raises(InvalidTokenError, match="unknown key"):
        other.verify(token)


def test_each_call_returns_claims_of_its_own() -> None:
    jwt = JWTManager(SECRET, clock=Clock())
    token = jwt.issue("alice", claims={"role": "admin", "tags": ["a", "b"]})
    first = jwt.verify(token)
    first["sub"] = "mallory"
    first["tags"].append("c")
    second = jwt.verify(token)
    assert second["sub"] == "alice"
    assert second["tags"] == ["a", "b"]  # nested claims are never shared (nor remembered)
    flat = jwt.issue("bob", claims={"role": "admin"})
    jwt.verify(flat)["role"] = "root"
    assert jwt.verify(flat)["role"] == "admin"


def test_the_memory_is_bounded() -> None:
    jwt = JWTManager(SECRET, clock=Clock())
    tokens = [jwt.issue(f"user{n}") for n in range(VERIFIED_CACHE_SIZE + 50)]
    for token in tokens:
        jwt.verify(token)
    assert len(jwt._verified) <= VERIFIED_CACHE_SIZE
    assert all(jwt.verify(token)["sub"] == f"user{n}" for n, token in enumerate(tokens))


def test_a_failing_clock_is_still_an_invalid_token_error() -> None:
    state = {"fail": False}

    def clock() -> datetime:
        if state["fail"]:
            raise OSError("no clock")
        return START

    jwt = JWTManager(SECRET, clock=clock)
    token = jwt.issue("alice")
    jwt.verify(token)
    state["fail"] = True
    with pytest.raises(InvalidTokenError, match="clock failed"):
        jwt.verify(token)
