"""``UserStore`` on every SQL backend (SQLite in memory, SQLite file, PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import (
    PasswordHasher,
    PasswordPolicyError,
    StorageError,
    UserExistsError,
    UserNotFoundError,
    create_engine,
    create_schema,
    dispose_engine,
    hash_token,
)
from authcore.testing import FakeClock, fast_hasher
from authcore.users import User, UserStore
from authcore.users._table import users_table

from .conftest import SQL_BACKENDS

on_every_backend = pytest.mark.parametrize("sql_engine", SQL_BACKENDS, indirect=True)

SECRET = "sentinel-Pa55word-do-not-leak"
Hook = Callable[[], Awaitable[None]]
Call = Callable[[], Awaitable[object]]


class CountingHasher(PasswordHasher):
    """A real hasher that counts its bcrypt calls and can run a hook after a verification."""

    def __init__(self, *, rounds: int = 4, scheme: str = "bcrypt_sha256") -> None:
        super().__init__(rounds=rounds, scheme=scheme)
        self.hashes = 0
        self.verified_against: list[str] = []
        self.after_verify: Hook | None = None

    async def hash(self, password: str) -> str:
        self.hashes += 1
        return await super().hash(password)

    async def verify(self, password: str, hashed: str) -> bool:
        self.verified_against.append(hashed)
        return await super().verify(password, hashed)

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        self.verified_against.append(hashed)
        outcome = await super().verify_and_update(password, hashed)
        if self.after_verify is not None:
            await self.after_verify()
        return outcome


@pytest.fixture
def users(sql_engine: AsyncEngine, clock: FakeClock) -> UserStore:
    return UserStore(sql_engine, policy=None, hasher=fast_hasher(), clock=clock)


async def stored_hash(engine: AsyncEngine, user_id: str) -> str:
    async with engine.connect() as conn:
        query = select(users_table.c.password_hash).where(users_table.c.id == user_id)
        return str((await conn.execute(query)).scalar_one())


@on_every_backend
async def test_failures_cost_one_verification_each(sql_engine: AsyncEngine) -> None:
    hasher = CountingHasher()
    users = UserStore(sql_engine, policy=None, hasher=hasher)
    alice = await users.create_user("alice", "pw")
    carol = await users.create_user("carol", "pw")
    await users.set_active(carol.id, False)
    real = {await stored_hash(sql_engine, alice.id), await stored_hash(sql_engine, carol.id)}
    assert hasher.hashes == 2
    attempts = [
        ("alice", "wrong"),
        ("bob", "pw"),
        ("carol", "pw"),
        ("x" * 151, "pw"),
        ("nobody", "pw"),
    ]
    for name, password in attempts:
        hasher.verified_against.clear()
        assert await users.authenticate(name, password) is None
        assert len(hasher.verified_against) == 1, name
    assert hasher.hashes == 3  # the dummy hash: made once, on the first unknown user
    dummy = hasher.verified_against[0]
    assert dummy not in real
    assert dummy.startswith("$bcrypt-sha256$")
    assert not hasher.needs_update(dummy)


@on_every_backend
async def test_outdated_hashes_are_upgraded_on_login(sql_engine: AsyncEngine) -> None:
    old = UserStore(sql_engine, policy=None, hasher=PasswordHasher(rounds=4))
    user = await old.create_user("alice", "pw")
    before = await stored_hash(sql_engine, user.id)
    new = UserStore(sql_engine, policy=None, hasher=PasswordHasher(rounds=5))
    assert new.hasher.needs_update(before)
    assert await new.authenticate("alice", "pw") is not None
    after = await stored_hash(sql_engine, user.id)
    assert after != before
    assert not new.hasher.needs_update(after)
    assert await new.hasher.verify("pw", after)
    assert await new.authenticate("alice", "pw") is not None
    assert await stored_hash(sql_engine, user.id) == after  # up to date: left alone


@on_every_backend
async def test_plain_bcrypt_hashes_are_upgraded_to_bcrypt_sha256(sql_engine: AsyncEngine) -> None:
    legacy = UserStore(sql_engine, policy=None, hasher=PasswordHasher(rounds=4, scheme="bcrypt"))
    user = await legacy.create_user("alice", "pw")
    assert (await stored_hash(sql_engine, user.id)).startswith("$2b$04$")
    users = UserStore(sql_engine, policy=None, hasher=fast_hasher())
    assert await users.authenticate("alice", "wrong") is None
    assert (await stored_hash(sql_engine, user.id)).startswith("$2b$04$")
    assert await users.authenticate("alice", "pw") is not None
    upgraded = await stored_hash(sql_engine, user.id)
    assert upgraded.startswith("$bcrypt-sha256$")
    assert await users.authenticate("alice", "pw") is not None


@on_every_backend
async def test_upgrade_never_overwrites_a_concurrent_password_change(
    sql_engine: AsyncEngine,
) -> None:
    user = await UserStore(sql_engine, policy=None, hasher=PasswordHasher(rounds=4)).create_user(
        "alice", "old"
    )
    hasher = CountingHasher(rounds=5)
    users = UserStore(sql_engine, policy=None, hasher=hasher)

    async def change_password() -> None:
        hasher.after_verify = None
        await users.set_password(user.id, "new")

    hasher.after_verify = change_password
    assert await users.authenticate("alice", "old") is not None  # it matched when checked
    assert await users.authenticate("alice", "old") is None
    assert await users.authenticate("alice", "new") is not None


@on_every_backend
async def test_login_refused_when_deactivated_meanwhile(sql_engine: AsyncEngine) -> None:
    hasher = CountingHasher()
    users = UserStore(sql_engine, policy=None, hasher=hasher)
    user = await users.create_user("alice", "pw")

    async def deactivate() -> None:
        await users.set_active(user.id, False)

    hasher.after_verify = deactivate
    assert await users.authenticate("alice", "pw") is None
    assert (await users.get_user(user.id)).last_login_at is None  # type: ignore[union-attr]


@on_every_backend
async def test_set_password(users: UserStore, sql_engine: AsyncEngine) -> None:
    user = await users.create_user("alice", "old password")
    await users.set_password(user.id, "new password")
    assert await users.authenticate("alice", "old password") is None
    assert await users.authenticate("alice", "new password") is not None
    before = await stored_hash(sql_engine, user.id)
    for bad in ("", "x" * 1025, None):
        with pytest.raises(PasswordPolicyError):
            await users.set_password(user.id, bad)  # type: ignore[arg-type]
    assert await stored_hash(sql_engine, user.id) == before
    with pytest.raises(UserNotFoundError, match="no user") as caught:
        await users.set_password("0" * 32, SECRET)
    assert isinstance(caught.value, LookupError)
    assert SECRET not in str(caught.value)
    with pytest.raises(TypeError):
        await users.set_password(None, "pw")  # type: ignore[arg-type]


@on_every_backend
async def test_secrets_never_leak(users: UserStore, sql_engine: AsyncEngine) -> None:
    user = await users.create_user("alice", SECRET)
    hashed = await stored_hash(sql_engine, user.id)
    logged_in = await users.authenticate("alice", SECRET)
    with pytest.raises(UserExistsError) as exists:
        await users.create_user("ALICE", SECRET)
    assert exists.value.__cause__ is None
    assert exists.value.__suppress_context__
    for text in (repr(user), repr(logged_in), repr(users), str(exists.value)):
        assert SECRET not in text
        assert hashed not in text
    assert "ALICE" in str(exists.value)
    assert not hasattr(user, "password_hash")
    assert not hasattr(user, "__dict__")
    with pytest.raises(AttributeError):
        user.username = "mallory"  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite-memory", "postgres"])
async def test_storage_errors_when_the_schema_is_missing(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        url = request.getfixturevalue("postgres_database")  # a new, empty database
    else:
        url = "sqlite+aiosqlite://"
    engine = create_engine(url)
    users = UserStore(engine, hasher=fast_hasher())
    try:
        calls: list[Call] = [
            lambda: users.create_user("alice", SECRET),
            lambda: users.authenticate("alice", SECRET),
            lambda: users.get_user("0" * 32),
            lambda: users.get_user_by_username("alice"),
            lambda: users.set_password("0" * 32, SECRET),
            lambda: users.set_active("0" * 32, False),
            lambda: users.get_user_by_email("alice@example.com"),
            lambda: users.list_users(),
            lambda: users.make_reset_token("0" * 32),
        ]
        for call in calls:
            with pytest.raises(StorageError, match="authcore_users") as caught:
                await call()
            assert caught.value.__cause__ is not None
            assert SECRET not in str(caught.value)
    finally:
        assert await dispose_engine(engine)


async def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="AsyncEngine"):
        UserStore("sqlite+aiosqlite://")  # type: ignore[arg-type]
    engine = create_engine("sqlite+aiosqlite://")
    try:
        with pytest.raises(TypeError, match="clock"):
            UserStore(engine, clock=FakeClock()())  # type: ignore[arg-type]
        store = UserStore(engine)
        assert repr(store).endswith(
            "hasher=PasswordHasher(scheme='bcrypt_sha256', rounds=12), policy=PasswordPolicy("
            "min_length=8, max_length=1024, forbid_username=True, forbid_common=True))"
        )
    finally:
        assert await dispose_engine(engine)


async def test_one_time_tokens_never_reach_the_database_or_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sentinels: the raw tokens and passwords are nowhere in the files or the logs,
    even with SQLAlchemy logging every statement and its parameters."""
    folder = tmp_path / "db"
    folder.mkdir()
    caplog.set_level(logging.DEBUG)
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'app.db'}", echo=True)
    new_secret = "sentinel-New-Pa55word-do-not-leak"
    try:
        await create_schema(engine)
        users = UserStore(engine, hasher=fast_hasher())
        user = await users.create_user("alice", SECRET, email="alice@example.com")
        used, spare = [await users.make_reset_token(user.id) for _ in range(2)]
        verify, spare_verify = [await users.make_verify_token(user.id) for _ in range(2)]
        with pytest.raises(PasswordPolicyError):
            await users.reset_password(used, "password")
        await users.reset_password(used, new_secret)
        await users.verify_email(verify)
        await users.make_reset_token(user.id)  # a live one, in the table at the end
        live = await users.make_reset_token(user.id)
    finally:
        assert await dispose_engine(engine)
    stored = b"".join(path.read_bytes() for path in folder.iterdir())
    assert hash_token(live).encode() in stored  # what is kept: the digest
    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "authcore_user_tokens" in logs  # the statements were logged
    for secret in (used, spare, verify, spare_verify, live, SECRET, new_secret):
        for text in (secret, secret.rsplit("_", 1)[-1]):
            assert text.encode() not in stored
            assert text not in logs


def test_user_records_built_before_emails_still_work() -> None:
    """``email`` and ``is_verified`` are keyword-only with defaults: old call sites still work."""
    from datetime import UTC, datetime

    moment = datetime(2026, 1, 1, tzinfo=UTC)
    user = User("u1", "stub", True, moment, None)
    assert (user.email, user.is_verified) == (None, False)
    assert list(User.__dataclass_fields__) == [
        "id",
        "username",
        "email",
        "is_active",
        "is_verified",
        "created_at",
        "last_login_at",
    ]
