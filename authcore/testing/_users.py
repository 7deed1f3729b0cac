"""``InMemoryUserStore``: the user store contract with no database, for tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authcore._time import Clock
from authcore.errors import UserExistsError
from authcore.passwords import PasswordHasher
from authcore.policy import PasswordPolicy
from authcore.users._base import DEFAULT_POLICY, BaseUserStore
from authcore.users._model import MAX_TOKENS_PER_PURPOSE, Account, Purpose, TokenRecord

__all__ = ["InMemoryUserStore"]


class InMemoryUserStore(BaseUserStore):
    """The same methods, defaults, errors and guarantees as ``UserStore``, in dicts.

    For tests of code that uses a user store, e.g.
    ``AuthCore(sessions=InMemorySessionStore(), users=InMemoryUserStore(), ...)``:
    no engine, no schema, no disposal. The rules (normalised unique names,
    the password policy, one-time tokens stored as digests) are those of
    ``UserStore``; one contract test suite checks both. Passwords are still
    hashed with bcrypt: pass ``hasher=fast_hasher()`` for speed. Each storage
    step completes without yielding to the event loop, so it is atomic.

    Example:
        >>> users = InMemoryUserStore(hasher=fast_hasher(), clock=FakeClock())
    """

    def __init__(
        self,
        *,
        hasher: PasswordHasher | None = None,
        policy: PasswordPolicy | None = DEFAULT_POLICY,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(hasher=hasher, policy=policy, clock=clock)
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, TokenRecord] = {}

    def __repr__(self) -> str:
        return f"InMemoryUserStore(users={len(self._accounts)}, policy={self.policy!r})"

    def __len__(self) -> int:
        """How many users are held (active or not)."""
        return len(self._accounts)

    def _find(self, field: str, value: object) -> Account | None:
        if field == "id":
            return self._accounts.get(str(value))
        return next((a for a in self._accounts.values() if getattr(a, field) == value), None)

    def _clash(self, account: Account) -> UserExistsError | None:
        for other in self._accounts.values():
            if other.id == account.id:
                continue
            if other.username_key == account.username_key:
                return UserExistsError(f"username {account.username!r} is already taken")
            if account.email_key is not None and other.email_key == account.email_key:
                return UserExistsError("that email address is already registered")
        return None

    def _matches(self, account: Account, where: Mapping[str, Any] | None) -> bool:
        return all(getattr(account, name) == value for name, value in (where or {}).items())

    def _drop_tokens(self, user_id: str, purpose: str) -> None:
        for digest, record in list(self._tokens.items()):
            if record.user_id == user_id and record.purpose == purpose:
                del self._tokens[digest]

    async def _load(self, field: str, value: str) -> Account | None:
        return self._find(field, value)

    async def _insert(self, account: Account) -> None:
        error = self._clash(account)
        if error is not None:
            raise error
        self._accounts[account.id] = account

    async def _update(
        self,
        user_id: str,
        values: Mapping[str, Any],
        *,
        where: Mapping[str, Any] | None = None,
        drop_tokens: Purpose | None = None,
    ) -> bool:
        account = self._accounts.get(user_id)
        if account is None or not self._matches(account, where):
            return False
        changed = dataclasses.replace(account, **values)
        error = self._clash(changed)
        if error is not None:
            raise error
        self._accounts[user_id] = changed
        if drop_tokens is not None:
            self._drop_tokens(user_id, drop_tokens)
        return True

    async def _record_login(
        self, user_id: str, now: datetime, old_hash: str, new_hash: str | None
    ) -> Account | None:
        account = self._accounts.get(user_id)
        if account is None or not account.is_active:
            return None
        values: dict[str, Any] = {"last_login_at": now}
        if new_hash is not None and account.password_hash == old_hash:
            values["password_hash"] = new_hash
        self._accounts[user_id] = account = dataclasses.replace(account, **values)
        return account

    async def _list(self, limit: int | None, offset: int) -> list[Account]:
        accounts = sorted(self._accounts.values(), key=lambda a: (a.created_at, a.id))
        return accounts[offset:] if limit is None else accounts[offset : offset + limit]

    async def _add_token(self, record: TokenRecord) -> None:
        for digest, other in list(self._tokens.items()):
            if other.user_id == record.user_id and other.expires_at <= record.created_at:
                del self._tokens[digest]
        same = [
            other
            for other in self._tokens.values()
            if (other.user_id, other.purpose) == (record.user_id, record.purpose)
        ]
        same.sort(key=lambda other: (other.created_at, other.token_hash), reverse=True)
        for other in same[MAX_TOKENS_PER_PURPOSE - 1 :]:
            del self._tokens[other.token_hash]
        self._tokens[record.token_hash] = record

    async def _get_token(self, token_hash: str) -> TokenRecord | None:
        return self._tokens.get(token_hash)

    async def _redeem(
        self, record: TokenRecord, values: Mapping[str, Any], where: Mapping[str, Any]
    ) -> bool:
        account = self._accounts.get(record.user_id)
        if (
            record.token_hash not in self._tokens
            or account is None
            or not self._matches(account, where)
        ):
            return False
        self._accounts[account.id] = dataclasses.replace(account, **values)
        self._drop_tokens(account.id, record.purpose)
        return True
