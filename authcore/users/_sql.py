"""``UserStore``: the user store contract on a SQL database through async SQLAlchemy.

A unique index on each key (username, email) enforces uniqueness in the
database itself, so two concurrent registrations can never both win. Every
change is one transaction; compare-and-set conditions (``WHERE password_hash
= :old``) keep a concurrent change from being overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock
from authcore.db._engine import read_connection, write_transaction
from authcore.db._errors import storage_errors, uncancellable
from authcore.errors import UserExistsError
from authcore.passwords import PasswordHasher
from authcore.policy import PasswordPolicy
from authcore.users._base import DEFAULT_POLICY, BaseUserStore
from authcore.users._model import MAX_TOKENS_PER_PURPOSE, Account, Purpose, TokenRecord
from authcore.users._table import user_tokens_table as k
from authcore.users._table import users_table as t

__all__ = ["UserStore"]

_ACCOUNT_COLUMNS = tuple(t.c[name] for name in Account.__dataclass_fields__)
_TOKEN_COLUMNS = tuple(k.c[name] for name in TokenRecord.__dataclass_fields__)


class _Abort(Exception):
    """Rolls a redemption back: its token or its account no longer qualifies."""


def _account(row: Any) -> Account:
    values = row._asdict()
    values["is_active"] = bool(values["is_active"])
    values["is_verified"] = bool(values["is_verified"])
    return Account(**values)


def _matching(where: Mapping[str, Any] | None) -> list[ColumnElement[bool]]:
    return [t.c[name] == value for name, value in (where or {}).items()]


class UserStore(BaseUserStore):
    """User accounts in a SQL database through an async SQLAlchemy engine.

    Guaranteed for every method: passwords, hashes and tokens never appear in
    a return value, a ``repr``, a message or a log line; bcrypt and the
    password policy run in worker threads; each change is one transaction,
    so an operation that fails or is cancelled leaves all of its change or
    none of it; database failures raise :class:`~authcore.errors.StorageError`
    with the driver's error chained.

    Example:
        >>> users = UserStore(engine)  # doctest: +SKIP
        >>> alice = await users.create_user("Alice", "long passphrase")  # doctest: +SKIP
        >>> (await users.authenticate("ALICE", "long passphrase")).id == alice.id  # doctest: +SKIP
        True

    Args:
        engine: The engine to use (see :func:`authcore.create_engine`).
        hasher: Hashes new passwords and verifies stored ones; a default
            :class:`~authcore.PasswordHasher` (bcrypt_sha256, 12 rounds) if ``None``.
        policy: Checked wherever a password is set (create, change, reset);
            ``None`` turns it off (the hasher's own limits still apply).
        clock: Zero-argument callable returning aware UTC time; the system clock by default.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        hasher: PasswordHasher | None = None,
        policy: PasswordPolicy | None = DEFAULT_POLICY,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"engine must be an AsyncEngine, got {type(engine).__name__}")
        super().__init__(hasher=hasher, policy=policy, clock=clock)
        self.engine = engine

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"UserStore(engine={url!r}, hasher={self.hasher!r}, policy={self.policy!r})"

    @uncancellable
    async def _load(self, field: str, value: str) -> Account | None:
        with storage_errors("reading a user"):
            async with read_connection(self.engine) as conn:
                query = select(*_ACCOUNT_COLUMNS).where(t.c[field] == value)
                row = (await conn.execute(query)).first()
        return None if row is None else _account(row)

    @uncancellable
    async def _insert(self, account: Account) -> None:
        values = {name: getattr(account, name) for name in Account.__dataclass_fields__}
        with storage_errors("creating a user"):
            try:
                async with write_transaction(self.engine) as conn:
                    await conn.execute(insert(t).values(**values))
            except IntegrityError:
                # from None: SQLAlchemy's rendering of the error lists the parameters.
                clash = await self._load("username_key", account.username_key)
                if clash is not None or account.email_key is None:
                    raise UserExistsError(
                        f"username {account.username!r} is already taken"
                    ) from None
                raise UserExistsError("that email address is already registered") from None

    @uncancellable
    async def _update(
        self,
        user_id: str,
        values: Mapping[str, Any],
        *,
        where: Mapping[str, Any] | None = None,
        drop_tokens: Purpose | None = None,
    ) -> bool:
        with storage_errors("updating a user"):
            try:
                async with write_transaction(self.engine) as conn:
                    result = await conn.execute(
                        update(t).where(t.c.id == user_id, *_matching(where)).values(**values)
                    )
                    if result.rowcount == 1 and drop_tokens is not None:
                        await conn.execute(
                            delete(k).where(k.c.user_id == user_id, k.c.purpose == drop_tokens)
                        )
            except IntegrityError:  # only an email can clash on update
                raise UserExistsError("that email address is already registered") from None
        return bool(result.rowcount == 1)

    @uncancellable
    async def _record_login(
        self, user_id: str, now: datetime, old_hash: str, new_hash: str | None
    ) -> Account | None:
        values: dict[str, Any] = {"last_login_at": now}
        if new_hash is not None:
            values["password_hash"] = case(
                (t.c.password_hash == old_hash, new_hash), else_=t.c.password_hash
            )
        with storage_errors("recording a login"):
            async with write_transaction(self.engine) as conn:
                result = await conn.execute(
                    update(t)
                    .where(t.c.id == user_id, t.c.is_active)
                    .values(**values)
                    .returning(*_ACCOUNT_COLUMNS)
                )
                row = result.first()
        return None if row is None else _account(row)

    @uncancellable
    async def _list(self, limit: int | None, offset: int) -> list[Account]:
        query = select(*_ACCOUNT_COLUMNS).order_by(t.c.created_at, t.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with storage_errors("listing users"):
            async with read_connection(self.engine) as conn:
                rows = (await conn.execute(query)).all()
        return [_account(row) for row in rows]

    @uncancellable
    async def _add_token(self, record: TokenRecord) -> None:
        values = {name: getattr(record, name) for name in TokenRecord.__dataclass_fields__}
        with storage_errors("storing a token digest"):
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    delete(k).where(
                        k.c.user_id == record.user_id, k.c.expires_at <= record.created_at
                    )
                )
                same = (k.c.user_id == record.user_id, k.c.purpose == record.purpose)
                newest = (
                    select(k.c.token_hash)
                    .where(*same)
                    .order_by(k.c.created_at.desc(), k.c.token_hash.desc())
                    .limit(MAX_TOKENS_PER_PURPOSE - 1)
                )
                await conn.execute(delete(k).where(*same, k.c.token_hash.not_in(newest)))
                await conn.execute(insert(k).values(**values))

    @uncancellable
    async def _get_token(self, token_hash: str) -> TokenRecord | None:
        with storage_errors("reading a token digest"):
            async with read_connection(self.engine) as conn:
                query = select(*_TOKEN_COLUMNS).where(k.c.token_hash == token_hash)
                row = (await conn.execute(query)).first()
        return None if row is None else TokenRecord(**row._asdict())

    @uncancellable
    async def _redeem(
        self, record: TokenRecord, values: Mapping[str, Any], where: Mapping[str, Any]
    ) -> bool:
        with storage_errors("redeeming a token"):
            try:
                async with write_transaction(self.engine) as conn:
                    # The user's row first: every redemption of this user's tokens then
                    # queues on that one lock (taking the token rows first deadlocked two
                    # concurrent resets on PostgreSQL).
                    changed = await conn.execute(
                        update(t)
                        .where(and_(t.c.id == record.user_id, *_matching(where)))
                        .values(**values)
                    )
                    taken = await conn.execute(delete(k).where(k.c.token_hash == record.token_hash))
                    if taken.rowcount != 1 or changed.rowcount != 1:
                        raise _Abort
                    await conn.execute(
                        delete(k).where(
                            k.c.user_id == record.user_id, k.c.purpose == record.purpose
                        )
                    )
            except _Abort:
                return False
        return True
