"""authcore without a web framework: one plain asyncio script.

Run it with no arguments: ``python examples/quickstart.py``. It uses a SQLite
file in a temporary folder, so it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from authcore import (
    InvalidTokenError,
    PasswordHasher,
    SessionStore,
    TokenReuseError,
    UserStore,
    managed_engine,
)


async def main(database: Path) -> None:
    # managed_engine creates the schema and always disposes the engine.
    async with managed_engine(f"sqlite+aiosqlite:///{database}") as engine:
        users = UserStore(engine, hasher=PasswordHasher(rounds=10))
        sessions = SessionStore(engine, ttl=timedelta(days=14), idle_timeout=timedelta(hours=2))

        await users.create_user("alice", "a long and private passphrase")
        user = await users.authenticate("alice", "a long and private passphrase")
        assert user is not None
        print("logged in:", user.username)

        token = await sessions.create_session(user.id, ip="203.0.113.9", user_agent="Firefox")
        session = await sessions.validate(token)
        print("session", session.id, "expires", session.expires_at.isoformat())

        refreshed = await sessions.rotate(token)
        try:
            await sessions.validate(token)
        except TokenReuseError:
            print("the old token was replayed: its whole family is revoked")

        try:
            await sessions.validate(refreshed)
        except InvalidTokenError as exc:
            print("refreshed token refused too:", type(exc).__name__)

        fresh = await sessions.create_session(user.id, user_agent="Phone")
        await sessions.create_session(user.id, user_agent="Laptop")
        revoked = await sessions.revoke_all(user.id, except_token=fresh)
        print(f"logged out {revoked} other session(s)")
        print("devices:", [s.user_agent for s in await sessions.list_sessions(user.id)])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(Path(folder) / "quickstart.db"))
