"""What every user store shares: the ``User`` record, name and email rules, one-time tokens.

Usernames and emails are compared by a key: the NFKC normal form, case-folded,
then NFKC again, so ``"Alice"``, ``"alice"`` and ``"ALICE"`` typed in
full-width letters are one user.

Password reset and email verification tokens are ``reset_<64 hex>`` and
``verify_<64 hex>``: 256 random bits behind a prefix naming the purpose, safe
in a URL. Storage keeps only the token's SHA-256 (as it does for sessions), with
the purpose, the user, the expiry and a *binding*: the SHA-256 of the user's
password hash (reset) or email key (verify) when the token was made. A token
whose binding no longer matches the account is obsolete, so any password
change kills every reset token and any email change every verification token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from authcore.errors import InvalidTokenError, MalformedTokenError
from authcore.tokens import hash_token

__all__ = [
    "MAX_EMAIL_LENGTH",
    "MAX_USERNAME_LENGTH",
    "Account",
    "Purpose",
    "TokenRecord",
    "User",
    "binding",
    "check_email",
    "check_username",
    "lookup_key",
    "name_key",
    "new_token",
    "token_digest",
]

MAX_USERNAME_LENGTH: Final = 150
MAX_EMAIL_LENGTH: Final = 254  # RFC 5321's limit on a forward path
# Control, format (bidi overrides, zero-width characters), surrogate and
# private-use characters, and line/paragraph separators: invisible or spoofable.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_TOKEN_RE: Final = re.compile(r"(reset|verify)_[0-9a-f]{64}")

Purpose = Literal["reset", "verify"]
#: A user holds at most this many unexpired tokens of each purpose: making one more
#: drops the oldest, so a flood of "forgot password" requests cannot grow the table.
MAX_TOKENS_PER_PURPOSE: Final = 5


@dataclass(frozen=True, slots=True)
class User:
    """An account as the application sees it. It never carries the password hash.

    Attributes:
        id: Random, opaque and permanent: 32 lowercase hex digits (a UUID4).
        username: The display form, as registered (without surrounding whitespace).
        email: The address as given (without surrounding whitespace), or ``None``.
        is_active: Inactive users cannot authenticate.
        is_verified: The email address was confirmed with :meth:`verify_email`;
            cleared when the address changes.
        created_at: When the account was created (aware UTC).
        last_login_at: The last successful :meth:`authenticate` (aware UTC),
            or ``None`` if there was none.
    """

    id: str
    username: str
    # Keyword-only with defaults: code that built a User before they existed still works.
    email: str | None = field(default=None, kw_only=True)
    is_active: bool
    is_verified: bool = field(default=False, kw_only=True)
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class Account:
    """A stored user row, hash included: internal to the stores, never returned."""

    id: str
    username: str
    username_key: str
    email: str | None
    email_key: str | None
    password_hash: str
    is_active: bool
    is_verified: bool
    created_at: datetime
    last_login_at: datetime | None

    def __repr__(self) -> str:  # the hash stays out of any traceback or log
        return f"Account(id={self.id!r}, username={self.username!r})"

    def user(self) -> User:
        return User(
            id=self.id,
            username=self.username,
            email=self.email,
            is_active=self.is_active,
            is_verified=self.is_verified,
            created_at=self.created_at,
            last_login_at=self.last_login_at,
        )


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored one-time token: its digest, never the token."""

    token_hash: str
    purpose: str
    user_id: str
    binding: str
    created_at: datetime
    expires_at: datetime


def name_key(text: str) -> str:
    """The comparison key of a username or an email: NFKC, case-folded, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _forbidden(text: str) -> bool:
    return any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text)


def check_username(username: object) -> tuple[str, str]:
    """Return ``(display, key)``; raises as ``create_user`` documents."""
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, got {type(username).__name__}")
    display = username.strip()
    if not display:
        raise ValueError("username must not be empty")
    if len(display) > MAX_USERNAME_LENGTH:
        raise ValueError(f"username must be at most {MAX_USERNAME_LENGTH} characters")
    key = name_key(display)
    if len(key) > MAX_USERNAME_LENGTH:
        raise ValueError(f"username must be at most {MAX_USERNAME_LENGTH} characters normalised")
    if _forbidden(display + key):
        raise ValueError(
            "username must not contain control, format, surrogate, private-use "
            "or line/paragraph separator characters"
        )
    return display, key


def lookup_key(username: object) -> str | None:
    """The key to look *username* up by; ``None`` when it could not have been registered."""
    try:
        return check_username(username)[1]
    except ValueError:
        return None


def check_email(email: object) -> tuple[str, str]:
    """Return ``(display, key)`` of an email address, checked minimally.

    One ``@`` with something on each side, a dot-free-edged domain, no
    whitespace or invisible characters, at most 254 characters (as given and
    normalised). Whether the address exists is what verification is for.

    Raises:
        TypeError: *email* is not a ``str``.
        ValueError: it does not look like an email address.
    """
    if not isinstance(email, str):
        raise TypeError(f"email must be a str, got {type(email).__name__}")
    display = email.strip()
    key = name_key(display)
    local, _, domain = key.rpartition("@")
    if (
        not local
        or "@" in local
        or not domain
        or domain.startswith(".")
        or domain.endswith(".")
        or ".." in domain
        or any(char.isspace() for char in key)
        or _forbidden(display + key)
    ):
        raise ValueError("email must be an address like name@example.com")
    if max(len(display), len(key)) > MAX_EMAIL_LENGTH:
        raise ValueError(f"email must be at most {MAX_EMAIL_LENGTH} characters")
    return display, key


def binding(purpose: Purpose, value: str) -> str:
    """What a token of *purpose* is bound to: a digest of the password hash or the email key."""
    return hashlib.sha256(f"authcore-{purpose}\x00{value}".encode()).hexdigest()


def new_token(purpose: Purpose) -> str:
    """A fresh one-time token of *purpose*: 256 random bits."""
    return f"{purpose}_{secrets.token_hex(32)}"


def token_digest(token: object, purpose: Purpose) -> str:
    """The digest a token of *purpose* is stored under; raises before any storage access.

    Raises:
        MalformedTokenError: not a token authcore could have made.
        InvalidTokenError: a token made for the other purpose.
    """
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise MalformedTokenError("malformed token")
    if not token.startswith(f"{purpose}_"):
        raise InvalidTokenError("invalid token")
    return hash_token(token)
