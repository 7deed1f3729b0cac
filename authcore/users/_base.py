"""``BaseUserStore``: every rule of the user store contract, over a few storage primitives.

``UserStore`` (SQL) and ``authcore.testing.InMemoryUserStore`` implement the
primitives; everything a caller can observe (validation, the password policy,
timing of failed logins) is decided here, once; the one-time tokens are in
``_tokens.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from abc import abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from authcore._time import Clock, read_clock, system_clock
from authcore.errors import UserNotFoundError
from authcore.passwords import PasswordHasher
from authcore.policy import PasswordPolicy
from authcore.tokens import UserId, normalize_user_id
from authcore.users._model import (
    Account,
    Purpose,
    User,
    check_email,
    check_username,
    lookup_key,
)
from authcore.users._receipt import fingerprint, note_verified
from authcore.users._tokens import OneTimeTokens

__all__ = ["DEFAULT_POLICY", "BaseUserStore"]

DEFAULT_POLICY: Final = PasswordPolicy()
"""The policy a store applies unless told otherwise: ``PasswordPolicy()``."""


class BaseUserStore(OneTimeTokens):
    """The user store contract; subclasses supply storage.

    Guaranteed for every method: passwords, hashes and tokens never appear in
    a return value, a ``repr``, a message or a log line; bcrypt and the
    password policy run in worker threads; each change is atomic, so an
    operation that fails or is cancelled leaves all of its change or none of it.

    Args:
        hasher: Hashes new passwords and verifies stored ones; a default
            :class:`~authcore.PasswordHasher` (bcrypt_sha256, 12 rounds) if ``None``.
        policy: Checked wherever a password is set (create, change, reset);
            ``None`` turns it off (the hasher's own limits still apply).
        clock: Zero-argument callable returning aware UTC time; the system clock by default.
    """

    def __init__(
        self,
        *,
        hasher: PasswordHasher | None = None,
        policy: PasswordPolicy | None = DEFAULT_POLICY,
        clock: Clock | None = None,
    ) -> None:
        if hasher is not None and not isinstance(hasher, PasswordHasher):
            raise TypeError(f"hasher must be a PasswordHasher, got {type(hasher).__name__}")
        if policy is not None and not isinstance(policy, PasswordPolicy):
            raise TypeError(f"policy must be a PasswordPolicy or None, got {type(policy).__name__}")
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning a datetime")
        self.hasher = PasswordHasher() if hasher is None else hasher
        self.policy = policy
        self._clock: Clock = clock or system_clock
        self._dummy_hash: str | None = None

    # -- storage primitives ------------------------------------------------------------

    @abstractmethod
    async def _insert(self, account: Account) -> None:
        """Add *account*; ``UserExistsError`` when its username or email key is taken."""

    @abstractmethod
    async def _update(
        self,
        user_id: str,
        values: Mapping[str, Any],
        *,
        where: Mapping[str, Any] | None = None,
        drop_tokens: Purpose | None = None,
    ) -> bool:
        """Set *values* on the account if it exists and matches *where*; whether it did.

        With *drop_tokens*, the account's tokens of that purpose are deleted in
        the same change. ``UserExistsError`` when a new email key is taken.
        """

    @abstractmethod
    async def _record_login(
        self, user_id: str, now: datetime, old_hash: str, new_hash: str | None
    ) -> Account | None:
        """Set ``last_login_at`` (and *new_hash* if the hash is still *old_hash*) on an
        active account; the updated account, or ``None`` if it is gone or inactive."""

    @abstractmethod
    async def _list(self, limit: int | None, offset: int) -> list[Account]:
        """Accounts ordered by creation time, then id."""

    # -- helpers -----------------------------------------------------------------------

    def _now(self) -> datetime:
        return read_clock(self._clock)

    async def _account(self, user_id: UserId) -> Account:
        uid = normalize_user_id(user_id)
        account = await self._load("id", uid)
        if account is None:
            raise UserNotFoundError(f"no user with id {uid!r}")
        return account

    async def _new_hash(self, password: str, username: str) -> str:
        """Check *password* against the policy, then hash it (both in worker threads)."""
        if self.policy is not None:
            await asyncio.to_thread(self.policy.check, password, username=username)
        return await self.hasher.hash(password)

    async def _current_fingerprint(self, user_id: str) -> str | None:
        """The fingerprint of the user's current hash; ``None`` if gone or inactive."""
        account = await self._load("id", user_id)
        if account is None or not account.is_active:
            return None
        return fingerprint(account.password_hash)

    async def _waste_a_verification(self, password: str, hashed: str | None) -> None:
        """Spend what checking a wrong password costs, so failures all look alike."""
        if hashed is None:
            if self._dummy_hash is None:  # once per store, in the hasher's configuration
                self._dummy_hash = await self.hasher.hash(secrets.token_urlsafe(16))
            hashed = self._dummy_hash
        await self.hasher.verify(password, hashed)

    # -- the contract ------------------------------------------------------------------

    async def create_user(self, username: str, password: str, *, email: str | None = None) -> User:
        """Register a new, active, unverified user and return it.

        Guaranteed: usernames (and emails, when given) are unique after NFKC
        normalisation and case folding, so of concurrent registrations of
        ``"Alice"`` and ``"alice"`` exactly one succeeds. Leading and trailing
        whitespace is stripped; the rest of the display form is kept as given.
        The password is checked and hashed before anything is written, so a
        refused password, username or email stores nothing.

        Raises:
            TypeError: *username* or *email* has the wrong type.
            ValueError: the username is empty, over 150 characters (as given or
                normalised), or holds control, format, surrogate, private-use or
                line/paragraph separator characters; or the email is not an address.
            PasswordPolicyError: the policy or the hasher refuses the password.
            UserExistsError: the username or the email is taken.
            StorageError: the database failed.
        """
        display, key = check_username(username)
        email_display, email_key = (None, None) if email is None else check_email(email)
        password_hash = await self._new_hash(password, display)
        account = Account(
            id=uuid.uuid4().hex,
            username=display,
            username_key=key,
            email=email_display,
            email_key=email_key,
            password_hash=password_hash,
            is_active=True,
            is_verified=False,
            created_at=self._now(),
            last_login_at=None,
        )
        await self._insert(account)
        return account.user()

    async def authenticate(self, username: str, password: str) -> User | None:
        """Return the user when *username* and *password* match an active account.

        ``None`` for an unknown username, a wrong password or an inactive user,
        never saying which. Each of these costs one bcrypt verification, like a
        wrong password does (an unknown username is checked against a dummy
        hash made once per store with this store's hasher). On success, one
        change records ``last_login_at`` and replaces an outdated hash (other
        scheme, fewer rounds) with a fresh one; the replacement never
        overwrites a password changed in the meantime, and a user deactivated
        in the meantime is refused. The password policy is not applied here.

        Raises:
            TypeError: *username* is not a ``str``.
            PasswordPolicyError: the password is not a ``str``, is empty or is
                over 1024 characters, exactly as :meth:`PasswordHasher.verify`
                raises it; for every username alike, so it reveals nothing.
            StorageError: the database failed.
        """
        key = lookup_key(username)
        account = None if key is None else await self._load("username_key", key)
        if account is None or not account.is_active:
            hashed = None if account is None else account.password_hash
            await self._waste_a_verification(password, hashed)
            return None
        matched, new_hash = await self.hasher.verify_and_update(password, account.password_hash)
        if not matched:
            return None
        updated = await self._record_login(account.id, self._now(), account.password_hash, new_hash)
        if updated is None:
            return None
        # The hash this login vouches for: the one it checked, or the upgrade if that was
        # written (not simply updated's: a concurrent change may stand there; see _receipt.py).
        verified = account.password_hash
        if new_hash is not None and updated.password_hash == new_hash:
            verified = new_hash
        note_verified(account.id, verified, self._current_fingerprint)
        return updated.user()

    async def get_user(self, user_id: UserId) -> User | None:
        """Return the user with that id, active or not, or ``None``.

        Raises:
            TypeError, ValueError: *user_id* is not a valid user id
                (see :func:`authcore.tokens.normalize_user_id`).
            StorageError: the database failed.
        """
        account = await self._load("id", normalize_user_id(user_id))
        return None if account is None else account.user()

    async def get_user_by_username(self, username: str) -> User | None:
        """Return the user registered under *username* (compared by key), or ``None``.

        ``None`` without storage access for a string that could not have been
        registered (empty, too long, forbidden characters).

        Raises:
            TypeError: *username* is not a ``str``.
            StorageError: the database failed.
        """
        key = lookup_key(username)
        account = None if key is None else await self._load("username_key", key)
        return None if account is None else account.user()

    async def get_user_by_email(self, email: str) -> User | None:
        """Return the user with that email address (compared by key), or ``None``.

        ``None`` without storage access for a string that is not an address.

        Raises:
            TypeError: *email* is not a ``str``.
            StorageError: the database failed.
        """
        try:
            key = check_email(email)[1]
        except ValueError:
            return None
        account = await self._load("email_key", key)
        return None if account is None else account.user()

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Return users in registration order (oldest first), *offset* skipped, at most *limit*.

        Raises:
            TypeError, ValueError: *limit* or *offset* is not a non-negative ``int``.
            StorageError: the database failed.
        """
        for name, value in (("limit", limit), ("offset", offset)):
            if value is None and name == "limit":
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        return [account.user() for account in await self._list(limit, offset)]

    async def set_password(self, user_id: UserId, new_password: str) -> None:
        """Replace the user's password, after the policy and the hasher accept it.

        A refused password changes nothing. Every outstanding reset token of
        the user stops working. Existing sessions are untouched; revoke them
        with the session store if the change should log other devices out.

        Raises:
            PasswordPolicyError: the policy or the hasher refuses *new_password*.
            UserNotFoundError: no user has that id.
            StorageError: the database failed.
        """
        account = await self._account(user_id)
        password_hash = await self._new_hash(new_password, account.username)
        if not await self._update(
            account.id, {"password_hash": password_hash}, drop_tokens="reset"
        ):
            raise UserNotFoundError(f"no user with id {account.id!r}")

    async def set_active(self, user_id: UserId, active: bool) -> None:
        """Activate or deactivate the user; inactive users cannot authenticate.

        Existing sessions are untouched; revoke them with the session store
        when deactivating.

        Raises:
            TypeError: *active* is not a ``bool``.
            UserNotFoundError: no user has that id.
            StorageError: the database failed.
        """
        if not isinstance(active, bool):
            raise TypeError(f"active must be a bool, got {type(active).__name__}")
        uid = normalize_user_id(user_id)
        if not await self._update(uid, {"is_active": active}):
            raise UserNotFoundError(f"no user with id {uid!r}")

    async def set_email(self, user_id: UserId, email: str | None) -> None:
        """Set (or, with ``None``, remove) the user's email address.

        A new address is unverified: ``is_verified`` is cleared and every
        outstanding verification token stops working. Setting the address
        the user already has (compared by key) changes nothing, so a profile
        form that re-submits it does not unverify the user.

        Raises:
            TypeError, ValueError: *email* is not an address (see :meth:`create_user`).
            UserExistsError: another user has that address.
            UserNotFoundError: no user has that id.
            StorageError: the database failed.
        """
        display, key = (None, None) if email is None else check_email(email)
        account = await self._account(user_id)
        if key == account.email_key and display == account.email:
            return
        values: dict[str, Any] = {"email": display, "email_key": key}
        new_address = key != account.email_key
        if new_address:
            values["is_verified"] = False
        drop: Purpose | None = "verify" if new_address else None
        if not await self._update(account.id, values, drop_tokens=drop):
            raise UserNotFoundError(f"no user with id {account.id!r}")
