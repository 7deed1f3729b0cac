"""The guided tour behind ``authcore demo``: every session feature, step by step."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from authcore.cli._parser import DEMO_DATABASE
from authcore.db import create_engine, create_schema, dispose_engine
from authcore.errors import TokenReuseError, TokenRevokedError, UserExistsError
from authcore.passwords import PasswordHasher
from authcore.sessions import AuthSession, SessionStore
from authcore.users import User, UserStore

__all__ = ["run_demo"]

PASSWORDS = {"alice": "correct horse battery staple", "bob": "hunter2 but much longer"}


def short(token: str) -> str:
    """A token cut down for display: its readable prefix and a few random digits."""
    head, _, secret = token.rpartition("_")
    return f"{head}_{secret[:6]}…"


class Tour:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n{self.step:>2}. {text}", file=self.out)

    def say(self, text: str) -> None:
        print(f"    {text}", file=self.out)

    def devices(self, sessions: list[AuthSession], current: str | None = None) -> None:
        if not sessions:
            self.say("(no active sessions)")
        for s in sessions:
            mark = "  <- this device" if s.id == current else ""
            self.say(
                f"- {s.user_agent or '?':<18} from {s.ip or '?':<13} "
                f"since {s.created_at:%H:%M:%S}  expires {s.expires_at:%Y-%m-%d}{mark}"
            )


async def _account(users: UserStore, name: str, tour: Tour) -> User:
    try:
        user = await users.create_user(name, PASSWORDS[name])
        tour.say(f"registered {name!r} (id {user.id[:8]}…)")
    except UserExistsError:
        tour.say(f"{name!r} is already registered (an earlier run)")
    logged_in = await users.authenticate(name, PASSWORDS[name])
    assert logged_in is not None
    return logged_in


def run_demo(database: str | Path = DEMO_DATABASE, *, out: TextIO | None = None) -> None:
    """Walk through authcore on a SQLite file, printing each step. Safe to run again."""
    asyncio.run(_tour(Path(database).resolve(), Tour(out or sys.stdout)))


async def _tour(path: Path, tour: Tour) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await create_schema(engine)
        store = SessionStore(engine, idle_timeout=timedelta(hours=12))
        users = UserStore(engine, hasher=PasswordHasher(rounds=12))
        print(f"authcore demo on {path}", file=tour.out)

        tour.title("Register two users and log them in (bcrypt, in worker threads)")
        alice = await _account(users, "alice", tour)
        bob = await _account(users, "bob", tour)
        wrong = await users.authenticate("alice", "not her password")
        tour.say(f"a wrong password gives {wrong!r}, the same as an unknown user")
        cleared = await store.revoke_all(alice.id) + await store.revoke_all(bob.id)
        await store.purge_expired()
        if cleared:
            tour.say(f"revoked {cleared} session(s) left from an earlier run")

        tour.title("Create sessions: alice on a laptop and a phone, bob on a tablet")
        laptop = await store.create_session(
            alice.id, ip="198.51.100.7", user_agent="Firefox on Linux", data={"theme": "dark"}
        )
        phone = await store.create_session(alice.id, ip="203.0.113.24", user_agent="iPhone app")
        tablet = await store.create_session(bob.id, ip="192.0.2.50", user_agent="Android tablet")
        for name, token in (
            ("alice/laptop", laptop),
            ("alice/phone", phone),
            ("bob/tablet", tablet),
        ):
            tour.say(f"{name:<13} {short(token)}")
        tour.say("only the SHA-256 of each token is stored; the token is the user's secret")

        tour.title("Validate a token")
        session = await store.validate(laptop)
        tour.say(f"session {session.id} for user {session.user_id[:8]}…, data {session.data}")
        tour.say(f"expires {session.expires_at:%Y-%m-%d %H:%M} UTC; idle timeout 12 h")

        tour.title("Rotate the laptop's token (as a refresh does)")
        rotated = await store.rotate(laptop)
        tour.say(f"old {short(laptop)} -> new {short(rotated)}")

        tour.title("Present the old token again: reuse detection")
        await _expect(tour, TokenReuseError, lambda: store.validate(laptop))
        await _expect(tour, TokenRevokedError, lambda: store.validate(rotated))
        tour.say("a replayed token means theft: the whole rotation family is now revoked")

        tour.title("Alice logs in again on the laptop; bob logs out")
        laptop = await store.create_session(
            alice.id, ip="198.51.100.7", user_agent="Firefox on Linux"
        )
        tour.say(f"new laptop session {short(laptop)}")
        tour.say(f"revoke(bob's tablet) -> {await store.revoke(tablet)}")
        tour.say(f"revoke(bob's tablet) again -> {await store.revoke(tablet)}")

        tour.title("Alice's devices")
        await store.create_session(alice.id, ip="192.0.2.99", user_agent="Work desktop")
        current = (await store.validate(laptop)).id
        tour.devices(await store.list_sessions(alice.id), current)

        tour.title("Log out everywhere else (revoke all but the current session)")
        count = await store.revoke_all(alice.id, except_token=laptop)
        tour.say(f"revoked {count} session(s); what is left:")
        tour.devices(await store.list_sessions(alice.id), current)

        tour.title("Purge expired and revoked sessions")
        await store.create_session(alice.id, ttl=timedelta(microseconds=1), user_agent="kiosk")
        purged = await store.purge_expired()
        tour.say(f"deleted {purged} row(s); rotated-away tokens stay until they expire,")
        tour.say("so replaying them is still detected as reuse")
        print("\nDone. Run it again: the demo cleans up after itself.", file=tour.out)
    finally:
        await dispose_engine(engine)


async def _expect(tour: Tour, error: type[Exception], call: Callable[[], object]) -> None:
    try:
        await call()  # type: ignore[misc]
    except error as exc:
        tour.say(f"{type(exc).__name__}: {exc}")
    else:  # pragma: no cover - the demo would be lying
        raise AssertionError(f"expected {error.__name__}")
