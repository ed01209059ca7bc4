"""Audit tables: the hash-chained records and the signed checkpoints over them.

Both are append-only; the migration adds database triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, String, Table

from gateway.storage.metadata import IdType, UTCDateTime, metadata

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(16), nullable=True),
    Column("action", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(128), nullable=False),
    Column("purpose", String(200), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_records_object", audit_records.c.object_type, audit_records.c.object_id)
Index("ix_audit_records_actor", audit_records.c.actor, audit_records.c.seq)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", String(128), nullable=False),
)

__all__ = ["audit_checkpoints", "audit_records"]
