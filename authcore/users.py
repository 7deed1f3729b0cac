"""``UserStore``: accounts with bcrypt passwords, persisted through async SQLAlchemy.

Usernames are compared by a key: the NFKC normal form, case-folded, then NFKC
again, so ``"Alice"``, ``"alice"`` and ``"ALICE"`` typed in full-width letters
are one user. A unique index on that key enforces uniqueness in the database
itself, so two concurrent registrations can never both win. The display form
(the username as given, minus leading and trailing whitespace) is kept for showing.
"""

from __future__ import annotations

import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock, read_clock, system_clock
from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import storage_errors, uncancellable
from authcore.db._schema import users_table as t
from authcore.errors import UserExistsError, UserNotFoundError
from authcore.passwords import PasswordHasher
from authcore.tokens import UserId, normalize_user_id

__all__ = ["User", "UserStore"]

MAX_USERNAME_LENGTH: Final = 150
# Control, format (bidi overrides, zero-width characters), surrogate and
# private-use characters, and line/paragraph separators: invisible or spoofable.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

_USER_COLUMNS = (t.c.id, t.c.username, t.c.is_active, t.c.created_at, t.c.last_login_at)


@dataclass(frozen=True, slots=True)
class User:
    """An account as the application sees it. It never carries the password hash.

    Attributes:
        id: Random, opaque and permanent: 32 lowercase hex digits (a UUID4).
        username: The display form, as registered (without surrounding whitespace).
        is_active: Inactive users cannot authenticate.
        created_at: When the account was created (aware UTC).
        last_login_at: The last successful :meth:`UserStore.authenticate`
            (aware UTC), or ``None`` if there was none.
    """

    id: str
    username: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


def _to_user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        is_active=bool(row.is_active),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def _check_username(username: object) -> tuple[str, str]:
    """Return ``(display, key)``; raises as :meth:`UserStore.create_user` documents."""
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, got {type(username).__name__}")
    display = username.strip()
    if not display:
        raise ValueError("username must not be empty")
    if len(display) > MAX_USERNAME_LENGTH:
        raise ValueError(f"username must be at most {MAX_USERNAME_LENGTH} characters")
    key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", display).casefold())
    if len(key) > MAX_USERNAME_LENGTH:
        raise ValueError(f"username must be at most {MAX_USERNAME_LENGTH} characters normalised")
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in display + key):
        raise ValueError(
            "username must not contain control, format, surrogate, private-use "
            "or line/paragraph separator characters"
        )
    return display, key


def _lookup_key(username: object) -> str | None:
    """The key to look *username* up by; ``None`` when it could not have been registered."""
    try:
        return _check_username(username)[1]
    except ValueError:
        return None


class UserStore:
    """User accounts in a SQL database through an async SQLAlchemy engine.

    Guaranteed for every method: passwords and hashes never appear in a return
    value, a ``repr``, a message or a log line; bcrypt runs in worker threads;
    each change is one transaction, so an operation that fails or is cancelled
    leaves all of its change or none of it; database failures raise
    :class:`~authcore.errors.StorageError` with the driver's error chained.

    Example:
        >>> users = UserStore(engine)  # doctest: +SKIP
        >>> alice = await users.create_user("Alice", "correct horse")  # doctest: +SKIP
        >>> (await users.authenticate("ALICE", "correct horse")).id == alice.id  # doctest: +SKIP
        True

    Args:
        engine: The engine to use (see :func:`authcore.create_engine`).
        hasher: Hashes new passwords and verifies stored ones; a default
            :class:`~authcore.PasswordHasher` (bcrypt_sha256, 12 rounds) if ``None``.
        clock: Zero-argument callable returning aware UTC time; the system clock by default.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"engine must be an AsyncEngine, got {type(engine).__name__}")
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning a datetime")
        self.engine = engine
        self.hasher = PasswordHasher() if hasher is None else hasher
        self._clock: Clock = clock or system_clock
        self._dummy_hash: str | None = None

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"UserStore(engine={url!r}, hasher={self.hasher!r})"

    @uncancellable
    async def _find(self, where: ColumnElement[bool], *, action: str) -> Any:
        with storage_errors(action):
            async with read_connection(self.engine) as conn:
                query = select(*_USER_COLUMNS, t.c.password_hash).where(where)
                return (await conn.execute(query)).first()

    @uncancellable
    async def _update(self, user_id: UserId, *, action: str, **values: Any) -> None:
        uid = normalize_user_id(user_id)
        with storage_errors(action):
            async with write_transaction(self.engine) as conn:
                result = await conn.execute(update(t).where(t.c.id == uid).values(**values))
        if result.rowcount != 1:
            raise UserNotFoundError(f"no user with id {uid!r}")

    @uncancellable
    async def _insert(self, display: str, **values: Any) -> None:
        with storage_errors("creating a user"):
            try:
                async with write_transaction(self.engine) as conn:
                    await conn.execute(insert(t).values(**values))
            except IntegrityError:
                # from None: SQLAlchemy's rendering of the error lists the parameters.
                raise UserExistsError(f"username {display!r} is already taken") from None

    @uncancellable
    async def _record_login(self, user_id: str, values: dict[str, Any]) -> Any:
        with storage_errors("recording a login"):
            async with write_transaction(self.engine) as conn:
                result = await conn.execute(
                    update(t)
                    .where(t.c.id == user_id, t.c.is_active)
                    .values(**values)
                    .returning(*_USER_COLUMNS)
                )
                return result.first()

    async def _waste_a_verification(self, password: str, hashed: str | None) -> None:
        """Spend what checking a wrong password costs, so failures all look alike."""
        if hashed is None:
            if self._dummy_hash is None:  # once per store, in the hasher's configuration
                self._dummy_hash = await self.hasher.hash(secrets.token_urlsafe(16))
            hashed = self._dummy_hash
        await self.hasher.verify(password, hashed)

    async def create_user(self, username: str, password: str) -> User:
        """Register a new, active user and return it.

        Guaranteed: usernames are unique after NFKC normalisation and case
        folding, enforced by a unique index, so of concurrent registrations of
        ``"Alice"`` and ``"alice"`` exactly one succeeds. Leading and trailing
        whitespace is stripped; the rest of the display form is kept as given.
        The password is hashed before anything is written, so a refused
        password or username stores nothing.

        Raises:
            TypeError: *username* is not a ``str``.
            ValueError: the username is empty, over 150 characters (as given or
                normalised), or holds control, format, surrogate, private-use or
                line/paragraph separator characters.
            PasswordPolicyError: the hasher refuses the password.
            UserExistsError: the username is taken (the message names it).
            StorageError: the database failed.
        """
        display, key = _check_username(username)
        password_hash = await self.hasher.hash(password)
        user = User(
            id=uuid.uuid4().hex,
            username=display,
            is_active=True,
            created_at=read_clock(self._clock),
            last_login_at=None,
        )
        await self._insert(
            display,
            id=user.id,
            username=user.username,
            username_key=key,
            password_hash=password_hash,
            is_active=True,
            created_at=user.created_at,
            last_login_at=None,
        )
        return user

    async def authenticate(self, username: str, password: str) -> User | None:
        """Return the user when *username* and *password* match an active account.

        ``None`` for an unknown username, a wrong password or an inactive user,
        never saying which. Each of these costs one bcrypt verification, like a
        wrong password does (an unknown username is checked against a dummy
        hash made once per store with this store's hasher). On success, one
        statement records ``last_login_at`` and replaces an outdated hash (other
        scheme, fewer rounds) with a fresh one; the replacement never
        overwrites a password changed in the meantime, and a user deactivated
        in the meantime is refused.

        Raises:
            TypeError: *username* is not a ``str``.
            PasswordPolicyError: the password is not a ``str``, is empty or is
                over 1024 characters, exactly as :meth:`PasswordHasher.verify`
                raises it; for every username alike, so it reveals nothing.
            StorageError: the database failed.
        """
        key = _lookup_key(username)
        row = None
        if key is not None:
            row = await self._find(t.c.username_key == key, action="authenticating a user")
        if row is None or not row.is_active:
            await self._waste_a_verification(password, None if row is None else row.password_hash)
            return None
        matched, new_hash = await self.hasher.verify_and_update(password, row.password_hash)
        if not matched:
            return None
        values: dict[str, Any] = {"last_login_at": read_clock(self._clock)}
        if new_hash is not None:
            old = row.password_hash
            values["password_hash"] = case(
                (t.c.password_hash == old, new_hash), else_=t.c.password_hash
            )
        updated = await self._record_login(row.id, values)
        return None if updated is None else _to_user(updated)

    async def get_user(self, user_id: UserId) -> User | None:
        """Return the user with that id, active or not, or ``None``.

        Raises:
            TypeError, ValueError: *user_id* is not a valid user id
                (see :func:`authcore.tokens.normalize_user_id`).
            StorageError: the database failed.
        """
        uid = normalize_user_id(user_id)
        row = await self._find(t.c.id == uid, action="reading a user")
        return None if row is None else _to_user(row)

    async def get_user_by_username(self, username: str) -> User | None:
        """Return the user registered under *username* (compared by key), or ``None``.

        ``None`` without database access for a string that could not have been
        registered (empty, too long, forbidden characters).

        Raises:
            TypeError: *username* is not a ``str``.
            StorageError: the database failed.
        """
        key = _lookup_key(username)
        if key is None:
            return None
        row = await self._find(t.c.username_key == key, action="reading a user")
        return None if row is None else _to_user(row)

    async def set_password(self, user_id: UserId, new_password: str) -> None:
        """Replace the user's password. Hashes first: a refused password changes nothing.

        Existing sessions are untouched; revoke them with the session store if
        the change should log other devices out.

        Raises:
            PasswordPolicyError: the hasher refuses *new_password*.
            UserNotFoundError: no user has that id.
            StorageError: the database failed.
        """
        normalize_user_id(user_id)
        password_hash = await self.hasher.hash(new_password)
        await self._update(user_id, action="setting a password", password_hash=password_hash)

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
        await self._update(user_id, action="updating a user", is_active=active)
