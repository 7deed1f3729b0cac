"""The user store contract, written once and run against every backend.

Each test runs for ``UserStore`` on SQLite in memory, a SQLite file and
PostgreSQL, and for the in-memory fake ``authcore.testing.InMemoryUserStore``.
A behaviour that differs between them is a bug in one of them. Tests that look
inside the database are in ``test_users.py``.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from authcore import (
    InvalidTokenError,
    MalformedTokenError,
    PasswordPolicy,
    PasswordPolicyError,
    TokenExpiredError,
    UserExistsError,
    UserNotFoundError,
)
from authcore.testing import FakeClock, InMemoryUserStore, fast_hasher
from authcore.users import BaseUserStore, User, UserStore

from .conftest import backend_factory

USER_BACKENDS = [
    "sqlite-memory",
    "sqlite-file",
    pytest.param("postgres", marks=pytest.mark.postgres),
    "fake",
]
SECRET = "sentinel-Pa55word-do-not-leak"
STRONG = "a long and private passphrase"
OTHER = "another private passphrase"
Call = Callable[[], Awaitable[object]]
UsersFactory = Callable[..., Awaitable[BaseUserStore]]


@pytest_asyncio.fixture(params=USER_BACKENDS)
async def make_users(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[UsersFactory]:
    """Build user stores of one backend (sharing one database); fast bcrypt, ``clock``."""
    async with backend_factory(request, tmp_path, InMemoryUserStore, UserStore) as make:

        async def factory(**options: Any) -> BaseUserStore:
            options.setdefault("clock", clock)
            options.setdefault("hasher", fast_hasher())
            users: BaseUserStore = await make(**options)
            return users

        yield factory


@pytest_asyncio.fixture
async def users(make_users: UsersFactory) -> BaseUserStore:
    """A store with the password policy off, for tests about everything else."""
    return await make_users(policy=None)


@pytest_asyncio.fixture
async def guarded(make_users: UsersFactory) -> BaseUserStore:
    """A store with the default password policy."""
    return await make_users()


async def test_create_and_get(users: BaseUserStore, clock: FakeClock) -> None:
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


async def test_usernames_are_unique_after_nfkc_and_case_folding(users: BaseUserStore) -> None:
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


async def test_display_form_is_kept_without_surrounding_whitespace(users: BaseUserStore) -> None:
    user = await users.create_user("  Mary Ann\u3000", "pw")
    assert user.username == "Mary Ann"
    assert (await users.get_user(user.id)) == user
    assert await users.get_user_by_username("mary ann") == user
    full_width = await users.create_user("\uff22\uff4f\uff42", "pw")
    assert full_width.username == "\uff22\uff4f\uff42"
    assert await users.get_user_by_username("bob") == full_width


async def test_concurrent_registrations_exactly_one_wins(users: BaseUserStore) -> None:
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
async def test_bad_usernames_raise_value_error_and_are_never_found(
    users: BaseUserStore, bad: str
) -> None:
    with pytest.raises(ValueError, match="username") as caught:
        await users.create_user(bad, "pw")
    assert not isinstance(caught.value, PasswordPolicyError)
    assert await users.get_user_by_username(bad) is None
    assert await users.authenticate(bad, "pw") is None


async def test_username_limits_and_types(users: BaseUserStore) -> None:
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


async def test_password_policy_errors_store_nothing(users: BaseUserStore) -> None:
    for bad in ("", "x" * 1025, None):
        with pytest.raises(PasswordPolicyError):
            await users.create_user("alice", bad)  # type: ignore[arg-type]
    assert await users.get_user_by_username("alice") is None
    await users.create_user("alice", "x" * 1024)
    assert await users.authenticate("alice", "x" * 1024) is not None


async def test_authenticate(users: BaseUserStore, clock: FakeClock) -> None:
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


async def test_policy_violating_passwords_raise_for_every_username(users: BaseUserStore) -> None:
    await users.create_user("alice", "pw")
    await users.set_active((await users.create_user("carol", "pw")).id, False)
    for name in ("alice", "bob", "carol", ""):
        for bad in ("", "x" * 1025, None):
            with pytest.raises(PasswordPolicyError):
                await users.authenticate(name, bad)  # type: ignore[arg-type]


async def test_inactive_users_cannot_authenticate(users: BaseUserStore) -> None:
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


async def test_cancelled_registration_stores_nothing(users: BaseUserStore) -> None:
    task = asyncio.create_task(users.create_user("alice", "pw"))
    await asyncio.sleep(0)  # now waiting on bcrypt in a worker thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await users.get_user_by_username("alice") is None
    assert (await users.create_user("alice", "pw")).username == "alice"


# -- password policy -----------------------------------------------------------------


async def test_the_default_policy_applies_to_create_and_set_password(
    guarded: BaseUserStore,
) -> None:
    assert guarded.policy == PasswordPolicy()
    cases = {
        "Xq7!k": ("too_short",),
        "iloveyou": ("too_common",),
        "alice": ("too_short", "similar_to_username"),
        "Alice1": ("too_short", "similar_to_username", "too_common"),
        "ecila": ("too_short", "similar_to_username"),
        "Alice2024": ("similar_to_username",),
    }
    for password, reasons in cases.items():
        with pytest.raises(PasswordPolicyError) as caught:
            await guarded.create_user("Alice", password)
        assert caught.value.reasons == reasons, password
        assert password not in str(caught.value)
    assert await guarded.get_user_by_username("alice") is None
    user = await guarded.create_user("Alice", STRONG)
    with pytest.raises(PasswordPolicyError) as caught:
        await guarded.set_password(user.id, "ALICE1")
    assert caught.value.reasons == ("too_short", "similar_to_username", "too_common")
    assert await guarded.authenticate("alice", STRONG) is not None
    await guarded.set_password(user.id, OTHER)
    assert await guarded.authenticate("alice", OTHER) is not None


async def test_a_custom_policy_and_no_policy(make_users: UsersFactory) -> None:
    strict = await make_users(policy=PasswordPolicy(min_length=40))
    with pytest.raises(PasswordPolicyError) as caught:
        await strict.create_user("bob", STRONG)
    assert caught.value.reasons == ("too_short",)
    lax = await make_users(policy=None)
    assert lax.policy is None
    await lax.create_user("bob", "bob")  # no policy: the hasher's limits only
    with pytest.raises(PasswordPolicyError):
        await lax.create_user("carol", "")
    assert await lax.authenticate("bob", "bob") is not None
    with pytest.raises(TypeError, match="policy"):
        await make_users(policy="strict")


async def test_login_ignores_the_policy(users: BaseUserStore) -> None:
    await users.create_user("bob", "123456")
    users.policy = PasswordPolicy()
    assert await users.authenticate("bob", "123456") is not None  # no one is locked out


# -- emails --------------------------------------------------------------------------


async def test_users_have_an_email_and_are_unverified(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw", email="  Alice@Example.COM ")
    assert (user.email, user.is_verified) == ("Alice@Example.COM", False)
    assert await users.get_user(user.id) == user
    assert await users.get_user_by_email("alice@example.com") == user
    assert await users.get_user_by_email("\uff41lice@example.com") == user  # full-width a
    assert await users.get_user_by_email("bob@example.com") is None
    assert await users.get_user_by_email("not an address") is None
    bob = await users.create_user("bob", "pw")
    assert bob.email is None
    assert await users.create_user("carol", "pw", email=None)


async def test_emails_are_unique_after_normalisation(users: BaseUserStore) -> None:
    await users.create_user("alice", "pw", email="alice@example.com")
    for taken in ("ALICE@example.com", "alice@EXAMPLE.com", " alice@example.com"):
        with pytest.raises(UserExistsError, match="email") as caught:
            await users.create_user("bob", "pw", email=taken)
        assert "pw" not in str(caught.value)
    assert await users.get_user_by_username("bob") is None
    with pytest.raises(UserExistsError, match="username"):
        await users.create_user("Alice", "pw", email="other@example.com")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "alice",
        "@example.com",
        "alice@",
        "a@b@c",
        "alice@.example.com",
        "alice@example..com",
        "alice@example.com.",
        "al ice@example.com",
        "alice@exa\u200bmple.com",
        "a" * 250 + "@b.com",
    ],
)
async def test_bad_emails_are_refused(users: BaseUserStore, bad: str) -> None:
    with pytest.raises(ValueError, match="email"):
        await users.create_user("alice", "pw", email=bad)
    assert await users.get_user_by_username("alice") is None
    user = await users.create_user("bob", "pw")
    with pytest.raises(ValueError, match="email"):
        await users.set_email(user.id, bad)
    with pytest.raises(TypeError):
        await users.create_user("carol", "pw", email=b"carol@example.com")  # type: ignore[arg-type]


async def test_set_email(users: BaseUserStore) -> None:
    alice = await users.create_user("alice", "pw", email="alice@example.com")
    await users.verify_email(await users.make_verify_token(alice.id))
    pending = await users.make_verify_token(alice.id)
    await users.set_email(alice.id, "ALICE@example.com")  # the same address: still verified
    assert (await users.verify_email(pending)).email == "ALICE@example.com"
    same = await users.get_user(alice.id)
    assert same is not None
    assert (same.email, same.is_verified) == ("ALICE@example.com", True)
    await users.set_email(alice.id, "alice@example.org")
    changed = await users.get_user(alice.id)
    assert changed is not None
    assert (changed.email, changed.is_verified) == ("alice@example.org", False)
    bob = await users.create_user("bob", "pw", email="bob@example.com")
    with pytest.raises(UserExistsError, match="email"):
        await users.set_email(bob.id, "Alice@Example.org")
    assert (await users.get_user(bob.id)).email == "bob@example.com"  # type: ignore[union-attr]
    await users.set_email(alice.id, None)
    assert (await users.get_user(alice.id)).email is None  # type: ignore[union-attr]
    await users.set_email(bob.id, "alice@example.org")  # free again
    with pytest.raises(UserNotFoundError):
        await users.set_email("0" * 32, "x@example.com")


# -- password reset ------------------------------------------------------------------


async def test_a_reset_token_works_once(guarded: BaseUserStore) -> None:
    user = await guarded.create_user("alice", STRONG, email="alice@example.com")
    token = await guarded.make_reset_token(user.id)
    assert token.startswith("reset_")
    assert len(token) == len("reset_") + 64
    reset = await guarded.reset_password(token, OTHER)
    assert isinstance(reset, User)
    assert reset.id == user.id
    assert await guarded.authenticate("alice", STRONG) is None
    assert await guarded.authenticate("alice", OTHER) is not None
    with pytest.raises(InvalidTokenError) as caught:
        await guarded.reset_password(token, "a third private passphrase")
    assert type(caught.value) is InvalidTokenError
    assert await guarded.authenticate("alice", OTHER) is not None


async def test_a_reset_refuses_every_other_reset_token(users: BaseUserStore) -> None:
    alice = await users.create_user("alice", "pw")
    bob = await users.create_user("bob", "pw")
    first, second = [await users.make_reset_token(alice.id) for _ in range(2)]
    bobs = await users.make_reset_token(bob.id)
    assert first != second
    await users.reset_password(second, "new")
    with pytest.raises(InvalidTokenError):
        await users.reset_password(first, "newer")
    assert await users.authenticate("alice", "new") is not None
    await users.reset_password(bobs, "bob's new")  # other users' tokens are unaffected


async def test_a_user_holds_at_most_five_tokens_of_each_purpose(
    users: BaseUserStore, clock: FakeClock
) -> None:
    """A flood of "forgot password" requests cannot grow the store: the oldest go."""
    user = await users.create_user("alice", "pw")
    await users.set_email(user.id, "alice@example.com")
    resets, verifies = [], []
    for _ in range(7):
        resets.append(await users.make_reset_token(user.id))
        verifies.append(await users.make_verify_token(user.id))
        clock.advance(seconds=1)
    if isinstance(users, UserStore):  # the table holds five of each, no more
        async with users.engine.connect() as conn:
            count = await conn.scalar(text("SELECT count(*) FROM authcore_user_tokens"))
        assert count == 10
    for dropped in resets[:2]:
        with pytest.raises(InvalidTokenError):
            await users.reset_password(dropped, "new")
    for dropped in verifies[:2]:
        with pytest.raises(InvalidTokenError):
            await users.verify_email(dropped)
    assert (await users.verify_email(verifies[2])).is_verified  # the five newest still work
    await users.reset_password(resets[2], "new")
    assert await users.authenticate("alice", "new") is not None


async def test_any_password_change_refuses_reset_tokens(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw")
    token = await users.make_reset_token(user.id)
    await users.set_password(user.id, "changed")
    with pytest.raises(InvalidTokenError):
        await users.reset_password(token, "new")
    assert await users.authenticate("alice", "changed") is not None


async def test_a_refused_password_leaves_the_token_usable(guarded: BaseUserStore) -> None:
    user = await guarded.create_user("alice", STRONG)
    token = await guarded.make_reset_token(user.id)
    for bad, reasons in (("password", ("too_common",)), ("Alice!!!", ("similar_to_username",))):
        with pytest.raises(PasswordPolicyError) as caught:
            await guarded.reset_password(token, bad)
        assert caught.value.reasons == reasons
        assert token not in str(caught.value)
    assert await guarded.authenticate("alice", STRONG) is not None
    await guarded.reset_password(token, OTHER)
    assert await guarded.authenticate("alice", OTHER) is not None


async def test_reset_tokens_expire(users: BaseUserStore, clock: FakeClock) -> None:
    user = await users.create_user("alice", "pw")
    default = await users.make_reset_token(user.id)
    short = await users.make_reset_token(user.id, ttl=timedelta(minutes=5))
    clock.advance(minutes=5)
    with pytest.raises(TokenExpiredError):
        await users.reset_password(short, "new")
    clock.advance(minutes=25, microseconds=-1)
    await users.reset_password(default, "new")  # 30 minutes minus a microsecond: still valid
    late = await users.make_reset_token(user.id)
    clock.advance(minutes=30)
    with pytest.raises(TokenExpiredError):
        await users.reset_password(late, "newer")
    assert await users.authenticate("alice", "new") is not None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "reset_",
        "reset_" + "A" * 64,
        "reset_" + "a" * 63,
        "token_x",
        "reset-" + "a" * 64,
        None,
        7,
    ],
)
async def test_malformed_tokens_are_refused(users: BaseUserStore, bad: object) -> None:
    with pytest.raises(MalformedTokenError):
        await users.reset_password(bad, "new")  # type: ignore[arg-type]
    with pytest.raises(MalformedTokenError):
        await users.verify_email(bad)  # type: ignore[arg-type]


async def test_unknown_and_cross_purpose_tokens_are_refused(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw", email="alice@example.com")
    for unknown in ("reset_" + "0" * 64, "verify_" + "0" * 64):
        with pytest.raises(InvalidTokenError) as caught:
            await (users.reset_password if unknown[0] == "r" else users.verify_email)(
                unknown, *(("new",) if unknown[0] == "r" else ())
            )
        assert type(caught.value) is InvalidTokenError
    verify = await users.make_verify_token(user.id)
    reset = await users.make_reset_token(user.id)
    with pytest.raises(InvalidTokenError):
        await users.reset_password(verify, "new")
    with pytest.raises(InvalidTokenError):
        await users.verify_email(reset)
    await users.reset_password(reset, "new")  # neither was spent by the wrong use
    assert (await users.verify_email(verify)).is_verified


async def test_an_inactive_users_reset_token_is_refused(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw")
    token = await users.make_reset_token(user.id)
    await users.set_active(user.id, False)
    with pytest.raises(InvalidTokenError):
        await users.reset_password(token, "new")
    await users.set_active(user.id, True)
    await users.reset_password(token, "new")
    assert await users.authenticate("alice", "new") is not None


async def test_concurrent_resets_exactly_one_wins(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw")
    # Eight tokens, each presented twice at once: the losers must all be refused
    # (two of them deadlocked each other on PostgreSQL when token rows were locked first).
    tokens = [await users.make_reset_token(user.id) for _ in range(8)]
    attempts = [*tokens, *tokens]
    results = await asyncio.gather(
        *(users.reset_password(t, f"new {i}") for i, t in enumerate(attempts)),
        return_exceptions=True,
    )
    winners = [i for i, r in enumerate(results) if isinstance(r, User)]
    assert len(winners) == 1, results
    assert all(isinstance(r, InvalidTokenError) for r in results if not isinstance(r, User))
    assert await users.authenticate("alice", f"new {winners[0]}") is not None


async def test_token_arguments_are_checked(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw")
    for make in (users.make_reset_token, users.make_verify_token):
        with pytest.raises(UserNotFoundError):
            await make("0" * 32)
        for ttl, error in ((timedelta(0), ValueError), (60, TypeError)):
            with pytest.raises(error):
                await make(user.id, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no email"):
        await users.make_verify_token(user.id)


# -- email verification --------------------------------------------------------------


async def test_verify_email(users: BaseUserStore, clock: FakeClock) -> None:
    user = await users.create_user("alice", "pw", email="alice@example.com")
    token = await users.make_verify_token(user.id)
    assert token.startswith("verify_")
    clock.advance(days=2, microseconds=-1)
    verified = await users.verify_email(token)
    assert verified.is_verified
    assert verified.id == user.id
    assert (await users.get_user(user.id)).is_verified  # type: ignore[union-attr]
    with pytest.raises(InvalidTokenError):
        await users.verify_email(token)  # used
    expiring = await users.make_verify_token(user.id, ttl=timedelta(hours=1))
    clock.advance(hours=1)
    with pytest.raises(TokenExpiredError):
        await users.verify_email(expiring)


async def test_a_verify_token_dies_with_an_email_change(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw", email="alice@example.com")
    old = await users.make_verify_token(user.id)
    await users.set_email(user.id, "alice@example.org")
    with pytest.raises(InvalidTokenError):
        await users.verify_email(old)
    assert not (await users.get_user(user.id)).is_verified  # type: ignore[union-attr]
    new = await users.make_verify_token(user.id)
    await users.set_email(user.id, "alice@example.com")  # back to the first: still obsolete
    with pytest.raises(InvalidTokenError):
        await users.verify_email(old)
    with pytest.raises(InvalidTokenError):
        await users.verify_email(new)
    assert (await users.verify_email(await users.make_verify_token(user.id))).is_verified


async def test_a_password_change_does_not_touch_verification(users: BaseUserStore) -> None:
    user = await users.create_user("alice", "pw", email="alice@example.com")
    token = await users.make_verify_token(user.id)
    await users.set_password(user.id, "new")
    assert (await users.verify_email(token)).is_verified


# -- listing and secrecy -------------------------------------------------------------


async def test_list_users(users: BaseUserStore, clock: FakeClock) -> None:
    assert await users.list_users() == []
    created = []
    for name in ("carol", "alice", "bob"):
        created.append(await users.create_user(name, "pw"))
        clock.advance(seconds=1)
    assert await users.list_users() == created
    assert await users.list_users(limit=2) == created[:2]
    assert await users.list_users(offset=1) == created[1:]
    assert await users.list_users(limit=1, offset=2) == created[2:]
    assert await users.list_users(limit=0) == []
    for kwargs, error in (({"limit": -1}, ValueError), ({"offset": "1"}, TypeError)):
        with pytest.raises(error):
            await users.list_users(**kwargs)  # type: ignore[arg-type]


async def test_tokens_and_passwords_never_leak(users: BaseUserStore) -> None:
    user = await users.create_user("alice", SECRET, email="alice@example.com")
    reset = await users.make_reset_token(user.id)
    verify = await users.make_verify_token(user.id)
    texts = [repr(users), repr(user), repr(await users.get_user(user.id))]
    for call in (
        lambda: users.reset_password(reset + "0", SECRET),
        lambda: users.reset_password("reset_" + "1" * 64, SECRET),
        lambda: users.verify_email(verify[:-1]),
    ):
        with pytest.raises(InvalidTokenError) as caught:
            await call()
        texts.append(str(caught.value))
    for message in texts:
        assert SECRET not in message
        assert reset not in message
        assert verify not in message
        assert reset[6:20] not in message
