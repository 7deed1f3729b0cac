"""One-time tokens for password reset and email verification, as a base of the user stores.

See :mod:`authcore.users._model` for the token format and what is stored.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from authcore._time import positive_timedelta
from authcore.errors import InvalidTokenError, TokenExpiredError
from authcore.tokens import UserId
from authcore.users._model import (
    Account,
    Purpose,
    TokenRecord,
    User,
    binding,
    new_token,
    token_digest,
)

__all__ = ["OneTimeTokens"]


class OneTimeTokens(ABC):
    """``make_reset_token``, ``reset_password``, ``make_verify_token``, ``verify_email``."""

    @abstractmethod
    def _now(self) -> datetime:
        """The store's clock, read and checked."""

    @abstractmethod
    async def _load(self, field: str, value: str) -> Account | None:
        """The account whose *field* (``id``, ``username_key``, ``email_key``) is *value*."""

    @abstractmethod
    async def _account(self, user_id: UserId) -> Account:
        """The account with that id, or ``UserNotFoundError``."""

    @abstractmethod
    async def _new_hash(self, password: str, username: str) -> str:
        """*password* checked against the policy, then hashed."""

    @abstractmethod
    async def _add_token(self, record: TokenRecord) -> None:
        """Store *record*, deleting the user's expired tokens and, of *record*'s purpose,
        all but the newest ``MAX_TOKENS_PER_PURPOSE - 1`` others."""

    @abstractmethod
    async def _get_token(self, token_hash: str) -> TokenRecord | None:
        """The stored token with that digest."""

    @abstractmethod
    async def _redeem(
        self, record: TokenRecord, values: Mapping[str, Any], where: Mapping[str, Any]
    ) -> bool:
        """Atomically: delete *record* (it must still exist), update its user with
        *values* if the account matches *where*, and delete the user's other tokens
        of that purpose. All of it, or nothing and ``False``."""

    def _expiry(self, ttl: timedelta) -> tuple[datetime, datetime]:
        """``(now, now + ttl)`` after checking *ttl*."""
        positive_timedelta(ttl, name="ttl")
        now = self._now()
        try:
            return now, now + ttl
        except OverflowError:
            raise ValueError("ttl is too long") from None

    async def _make_token(
        self, purpose: Purpose, account: Account, bound_to: str, ttl: timedelta
    ) -> str:
        now, expires_at = self._expiry(ttl)
        token = new_token(purpose)
        record = TokenRecord(
            token_hash=token_digest(token, purpose),
            purpose=purpose,
            user_id=account.id,
            binding=binding(purpose, bound_to),
            created_at=now,
            expires_at=expires_at,
        )
        await self._add_token(record)
        return token

    async def _check_token(self, token: str, purpose: Purpose) -> TokenRecord:
        record = await self._get_token(token_digest(token, purpose))
        if record is None or record.purpose != purpose:
            raise InvalidTokenError("invalid token")
        if self._now() >= record.expires_at:
            raise TokenExpiredError("token expired")
        return record

    async def make_reset_token(
        self, user_id: UserId, *, ttl: timedelta = timedelta(minutes=30)
    ) -> str:
        """Return a one-time password reset token for the user, valid for *ttl*.

        Only the token's SHA-256 is stored, bound to the user's current
        password hash: any password change, including a reset with another
        of the user's tokens, makes it obsolete. Send it to the user; never log it.
        A user holds at most five unexpired reset tokens: a sixth drops the oldest.

        Raises:
            TypeError, ValueError: *ttl* is not a positive ``timedelta``.
            UserNotFoundError: no user has that id.
            StorageError: the database failed.
        """
        self._expiry(ttl)
        account = await self._account(user_id)
        return await self._make_token("reset", account, account.password_hash, ttl)

    async def reset_password(self, token: str, new_password: str) -> User:
        """Set a new password with a reset token from :meth:`make_reset_token`.

        Guaranteed: a token works once. After a successful reset, it and every
        other reset token of the user are refused; of concurrent resets with
        tokens of one user, exactly one succeeds. A password the policy
        refuses changes nothing and leaves the token usable. An inactive
        user's token is refused. Sessions are untouched (revoke them).

        Raises:
            MalformedTokenError: not a reset token (a subclass of InvalidTokenError).
            TokenExpiredError: the token is past its expiry.
            InvalidTokenError: unknown, used, or obsolete (the password changed
                since, the user was deactivated or is gone).
            PasswordPolicyError: the policy or the hasher refuses *new_password*.
            StorageError: the database failed.
        """
        record = await self._check_token(token, "reset")
        account = await self._load("id", record.user_id)
        if (
            account is None
            or not account.is_active
            or binding("reset", account.password_hash) != record.binding
        ):
            raise InvalidTokenError("invalid token")
        password_hash = await self._new_hash(new_password, account.username)
        where = {"password_hash": account.password_hash, "is_active": True}
        if not await self._redeem(record, {"password_hash": password_hash}, where):
            raise InvalidTokenError("invalid token")
        return account.user()

    async def make_verify_token(
        self, user_id: UserId, *, ttl: timedelta = timedelta(days=2)
    ) -> str:
        """Return a one-time token that confirms the user's current email address.

        Only the token's SHA-256 is stored, bound to that address: after an
        email change the token is refused. A user holds at most five unexpired
        verification tokens: a sixth drops the oldest.

        Raises:
            TypeError, ValueError: *ttl* is not a positive ``timedelta``.
            ValueError: the user has no email address.
            UserNotFoundError: no user has that id.
            StorageError: the database failed.
        """
        self._expiry(ttl)
        account = await self._account(user_id)
        if account.email_key is None:
            raise ValueError("the user has no email address to verify")
        return await self._make_token("verify", account, account.email_key, ttl)

    async def verify_email(self, token: str) -> User:
        """Mark the user's email address verified with a token from :meth:`make_verify_token`.

        Returns the user, with ``is_verified`` set. The token then stops
        working (as do the user's other verification tokens).

        Raises:
            MalformedTokenError: not a verification token.
            TokenExpiredError: the token is past its expiry.
            InvalidTokenError: unknown, used, or obsolete (the address changed
                since, or the user is gone).
            StorageError: the database failed.
        """
        record = await self._check_token(token, "verify")
        account = await self._load("id", record.user_id)
        if (
            account is None
            or account.email_key is None
            or binding("verify", account.email_key) != record.binding
        ):
            raise InvalidTokenError("invalid token")
        if not await self._redeem(record, {"is_verified": True}, {"email_key": account.email_key}):
            raise InvalidTokenError("invalid token")
        return dataclasses.replace(account.user(), is_verified=True)
