"""The durable idempotency records (`gateway.stores.records`): one row per caller and ``Idempotency-Key``.

A row is written in the same transaction as the change it protects, so it exists exactly when the change does.
``key`` is a digest of the method, the path and the ``Idempotency-Key`` (`IdempotencyMiddleware` computes it);
``principal`` is the caller (``token:<id>``, or ``anonymous`` on the public routes). ``response`` is the kept
answer, sealed with the data key (AES-GCM bound to ``key``) because answers can hold personal data;
``fingerprint`` is a keyed digest of the request. Rows past ``expires_at`` are purged.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table

from gateway.storage.metadata import UTCDateTime, metadata

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_idempotency_records_expires_at", idempotency_records.c.expires_at)

__all__ = ["idempotency_records"]
