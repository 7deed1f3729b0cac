"""The ``authcore_sessions`` table, owned by :class:`~authcore.SessionStore`."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text

from authcore.db._schema import UTCDateTime, metadata

__all__ = ["sessions_table"]

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
