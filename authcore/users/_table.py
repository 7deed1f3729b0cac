"""The ``authcore_users`` and ``authcore_user_tokens`` tables, owned by ``UserStore``."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, String, Table, false

from authcore.db._schema import UTCDateTime, metadata

__all__ = ["user_tokens_table", "users_table"]

users_table = Table(
    "authcore_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(150), nullable=False),
    # NFKC-normalised, case-folded username: what uniqueness is enforced on.
    Column("username_key", String(600), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("is_active", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime(), nullable=True),
    # Added in 0.2 (nullable or with a server default, so existing rows migrate as they are).
    Column("email", String(254), nullable=True),
    # NFKC-normalised, case-folded email: unique when present.
    Column("email_key", String(254), nullable=True),
    Column("is_verified", Boolean(), nullable=False, server_default=false()),
    Index("ux_authcore_users_username_key", "username_key", unique=True),
    Index("ux_authcore_users_email_key", "email_key", unique=True),
)

user_tokens_table = Table(
    "authcore_user_tokens",
    metadata,
    # SHA-256 of a password reset or email verification token: never the token itself.
    Column("token_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # "reset" or "verify"
    Column("user_id", String(32), nullable=False, index=True),
    # SHA-256 of what the token is bound to (the password hash, or the email key):
    # when that changes, the token is obsolete.
    Column("binding", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
)
