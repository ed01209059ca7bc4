"""Identity tables: bearer tokens, stored as SHA-256 hashes (the token itself is shown once and never stored)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, String, Table

from gateway.storage.metadata import IdType, UTCDateTime, metadata

tokens = Table(
    "tokens",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("unit", String(64), nullable=True),
    Column("department", String(64), nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("label", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

__all__ = ["tokens"]
