"""``UserStore`` on every SQL backend (SQLite in memory, SQLite file, PostgreSQL)."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC

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
    dispose_engine,
)
from authcore.db._schema import users_table
from authcore.testing import FakeClock, fast_hasher
from authcore.users import User, UserStore

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
    return UserStore(sql_engine, hasher=fast_hasher(), clock=clock)


async def stored_hash(engine: AsyncEngine, user_id: str) -> str:
    async with engine.connect() as conn:
        query = select(users_table.c.password_hash).where(users_table.c.id == user_id)
        return str((await conn.execute(query)).scalar_one())


@on_every_backend
async def test_create_and_get(users: UserStore, clock: FakeClock) -> None:
    user = await users.create_user("Alice", "correct horse")
    assert isinstance(user, User)
    assert (user.username, user.is_active, user.last_login_at) == ("Alice", True, None)
    assert user.created_at == clock()
    assert user.created_at.tzinfo is UTC
    assert len(user.id) == 32
    assert int(user.id, 16) >= 0
    assert await users.get_user(user.id) == user
    assert await users.get_user_by_username("aLiCe") == user
    assert await users.get_user("0" * 32) is None
    assert await users.get_user("x" * 200) is None  # longer than any id: no driver error
    assert await users.get_user(42) is None
    assert await users.get_user_by_username("bob") is None
    other = await users.create_user("bob", "correct horse")
    assert other.id != user.id


@on_every_backend
async def test_usernames_are_unique_after_nfkc_and_case_folding(users: UserStore) -> None:
    await users.create_user("Alice", "pw-1")
    for taken in ("alice", "ALICE", "\uff21\uff2c\uff29\uff23\uff25", " alice\t"):
        with pytest.raises(UserExistsError) as caught:
            await users.create_user(taken, "pw-2")
        assert "pw-2" not in str(caught.value)
    await users.create_user("Straße", "pw")
    with pytest.raises(UserExistsError):
        await users.create_user("STRASSE", "pw")
    await users.create_user("ﬁsh", "pw")  # the "fi" ligature
    with pytest.raises(UserExistsError):
        await users.create_user("FISH", "pw")
    await users.create_user("\u212aelvin", "pw")  # KELVIN SIGN
    with pytest.raises(UserExistsError):
        await users.create_user("kelvin", "pw")
    # Dotted capital I folds to "i" + COMBINING DOT ABOVE: not the same key as "alice".
    dotted = "AL\u0130CE"
    assert unicodedata.normalize("NFKC", dotted.casefold()) == "ali\u0307ce"
    assert (await users.create_user(dotted, "pw")).username == dotted
    assert (await users.get_user_by_username("Alice")).username == "Alice"  # type: ignore[union-attr]


@on_every_backend
async def test_display_form_is_kept_without_surrounding_whitespace(users: UserStore) -> None:
    user = await users.create_user("  Mary Ann\u3000", "pw")
    assert user.username == "Mary Ann"
    assert (await users.get_user(user.id)) == user
    assert await users.get_user_by_username("mary ann") == user
    full_width = await users.create_user("\uff22\uff4f\uff42", "pw")
    assert full_width.username == "\uff22\uff4f\uff42"
    assert await users.get_user_by_username("bob") == full_width


@on_every_backend
async def test_concurrent_registrations_exactly_one_wins(users: UserStore) -> None:
    names = ["Alice", "alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45", "aLiCe"]
    results = await asyncio.gather(
        *(users.create_user(name, "pw") for name in names), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, User)]
    assert len(winners) == 1
    assert all(isinstance(r, UserExistsError) for r in results if r is not winners[0])
    assert await users.get_user_by_username("alice") == winners[0]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "a" * 151,
        "nul\x00",
        "tab\tinside",
        "rtl\u202eoverride",
        "zero\u200bwidth",
        "lone\ud800",
        "line\u2028sep",
        "\ufdfa" * 10,
    ],
)
@on_every_backend
async def test_bad_usernames_raise_value_error_and_are_never_found(
    users: UserStore, bad: str
) -> None:
    with pytest.raises(ValueError, match="username") as caught:
        await users.create_user(bad, "pw")
    assert not isinstance(caught.value, PasswordPolicyError)
    assert await users.get_user_by_username(bad) is None
    assert await users.authenticate(bad, "pw") is None


@on_every_backend
async def test_username_limits_and_types(users: UserStore) -> None:
    assert (await users.create_user("a" * 150, "pw")).username == "a" * 150
    assert (await users.create_user("e\u0301" * 75, "pw")).username == "e\u0301" * 75
    assert (await users.create_user("\u00df" * 75, "pw")).username == "\u00df" * 75
    with pytest.raises(ValueError, match="normalised"):
        await users.create_user("\u00df" * 76, "pw")  # folds to 152 characters
    calls: list[Call] = [
        lambda: users.create_user(b"alice", "pw"),  # type: ignore[arg-type]
        lambda: users.authenticate(None, "pw"),  # type: ignore[arg-type]
        lambda: users.get_user_by_username(7),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(TypeError):
            await call()


@on_every_backend
async def test_password_policy_errors_store_nothing(users: UserStore) -> None:
    for bad in ("", "x" * 1025, None):
        with pytest.raises(PasswordPolicyError):
            await users.create_user("alice", bad)  # type: ignore[arg-type]
    assert await users.get_user_by_username("alice") is None
    await users.create_user("alice", "x" * 1024)
    assert await users.authenticate("alice", "x" * 1024) is not None


@on_every_backend
async def test_authenticate(users: UserStore, clock: FakeClock) -> None:
    created = await users.create_user("Alice", "correct horse")
    clock.advance(hours=1)
    user = await users.authenticate("ALICE", "correct horse")
    assert user is not None
    assert user.id == created.id
    assert user.username == "Alice"
    assert user.last_login_at == clock()
    assert user.last_login_at.tzinfo is UTC
    assert user.created_at == created.created_at
    assert await users.get_user(created.id) == user
    clock.advance(minutes=5)
    assert await users.authenticate("alice", "wrong horse") is None
    assert await users.authenticate("bob", "correct horse") is None
    assert (await users.get_user(created.id)).last_login_at == user.last_login_at  # type: ignore[union-attr]


@on_every_backend
async def test_policy_violating_passwords_raise_for_every_username(users: UserStore) -> None:
    await users.create_user("alice", "pw")
    await users.set_active((await users.create_user("carol", "pw")).id, False)
    for name in ("alice", "bob", "carol", ""):
        for bad in ("", "x" * 1025, None):
            with pytest.raises(PasswordPolicyError):
                await users.authenticate(name, bad)  # type: ignore[arg-type]


@on_every_backend
async def test_failures_cost_one_verification_each(sql_engine: AsyncEngine) -> None:
    hasher = CountingHasher()
    users = UserStore(sql_engine, hasher=hasher)
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
async def test_inactive_users_cannot_authenticate(users: UserStore) -> None:
    user = await users.create_user("alice", "pw")
    await users.set_active(user.id, False)
    assert (await users.get_user(user.id)).is_active is False  # type: ignore[union-attr]
    assert await users.authenticate("alice", "pw") is None
    assert (await users.get_user(user.id)).last_login_at is None  # type: ignore[union-attr]
    await users.set_active(user.id, True)
    assert (await users.authenticate("alice", "pw")).is_active is True  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        await users.set_active(user.id, 1)  # type: ignore[arg-type]
    with pytest.raises(UserNotFoundError):
        await users.set_active("0" * 32, False)


@on_every_backend
async def test_outdated_hashes_are_upgraded_on_login(sql_engine: AsyncEngine) -> None:
    old = UserStore(sql_engine, hasher=PasswordHasher(rounds=4))
    user = await old.create_user("alice", "pw")
    before = await stored_hash(sql_engine, user.id)
    new = UserStore(sql_engine, hasher=PasswordHasher(rounds=5))
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
    legacy = UserStore(sql_engine, hasher=PasswordHasher(rounds=4, scheme="bcrypt"))
    user = await legacy.create_user("alice", "pw")
    assert (await stored_hash(sql_engine, user.id)).startswith("$2b$04$")
    users = UserStore(sql_engine, hasher=fast_hasher())
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
    user = await UserStore(sql_engine, hasher=PasswordHasher(rounds=4)).create_user("alice", "old")
    hasher = CountingHasher(rounds=5)
    users = UserStore(sql_engine, hasher=hasher)

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
    users = UserStore(sql_engine, hasher=hasher)
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
async def test_cancelled_registration_stores_nothing(users: UserStore) -> None:
    task = asyncio.create_task(users.create_user("alice", "pw"))
    await asyncio.sleep(0)  # now waiting on bcrypt in a worker thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await users.get_user_by_username("alice") is None
    assert (await users.create_user("alice", "pw")).username == "alice"


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
        assert repr(store).endswith("hasher=PasswordHasher(scheme='bcrypt_sha256', rounds=12))")
    finally:
        assert await dispose_engine(engine)
