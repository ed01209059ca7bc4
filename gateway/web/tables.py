"""Console sessions: a signed-in member of staff, held in the database so that every gateway process sees it."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from gateway.privacy.registry import register_encrypted_column
from gateway.storage.metadata import UTCDateTime, metadata

staff_sessions = Table(
    "web_sessions",
    metadata,
    #: SHA-256 of the cookie's secret: a copy of the table does not sign anyone in.
    Column("id", String(64), primary_key=True),
    #: The bearer token the session was opened with, encrypted (AES-GCM, bound to this row): every request
    #: authenticates it again, so revoking the token ends its sessions.
    Column("token", Text, nullable=False),
    #: The CSRF token every form of this session carries (random, compared in constant time).
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    #: A receipt's query code, encrypted, kept from acceptance until the receipt is first shown (then cleared).
    Column("pending_receipt", Text, nullable=True),
)
Index("ix_web_sessions_seen_at", staff_sessions.c.seen_at)
# Key rotation re-encrypts them with the rest (`onewindow keys rotate`).
register_encrypted_column("web_sessions", "token")
register_encrypted_column("web_sessions", "pending_receipt")

__all__ = ["staff_sessions"]
