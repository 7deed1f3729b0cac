"""authcore's tables, on one ``MetaData`` with a naming convention for migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from authcore._time import EPOCH, as_utc

__all__ = [
    "UTCDateTime",
    "login_failures_table",
    "metadata",
    "sessions_table",
    "user_tokens_table",
    "users_table",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The ``MetaData`` holding authcore's tables, for an application's own Alembic environment."""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware-UTC datetime column, exact to the microsecond on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no datetime type, so the value
    is stored as integer microseconds since the Unix epoch: exact, compact,
    compared numerically by indexes, and never confused by time zones. Naive
    datetimes are refused on the way in; values always come back aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            delta = value - EPOCH
            return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return EPOCH + timedelta(microseconds=int(value))


sessions_table = Table(
    "authcore_sessions",
    metadata,
    # Public id (what a JWT's ``sid`` carries); random, unrelated to the token.
    Column("id", String(32), primary_key=True),
    # SHA-256 of the token: the only form in which a token is ever stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    # Id of the first session of a rotation chain; shared by all its successors.
    Column("family_id", String(32), nullable=False, index=True),
    Column("user_id", String(255), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    # Why it was revoked: "logout", "revoke_all", "rotated", "reuse".
    Column("revoke_reason", String(16), nullable=True),
    Column("data", Text(), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
)

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

login_failures_table = Table(
    "authcore_login_failures",
    metadata,
    Column("id", String(32), primary_key=True),
    # SHA-256 of the normalised username (known or not): no account names at rest.
    Column("username_key", String(64), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("failed_at", UTCDateTime(), nullable=False, index=True),
    Index("ix_authcore_login_failures_username_key_failed_at", "username_key", "failed_at"),
    Index("ix_authcore_login_failures_ip_failed_at", "ip", "failed_at"),
)
