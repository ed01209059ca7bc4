"""Events departments pushed: one row per (department, event id), written in the transaction that applied it, so
that a replayed event id answers what the first delivery answered and changes nothing."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, UniqueConstraint

from gateway.storage.metadata import IdType, UTCDateTime, metadata

department_events = Table(
    "department_events",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("department", String(64), nullable=False),
    #: The department's own id of the event (its idempotency key).
    Column("event_id", String(100), nullable=False),
    Column("application_id", IdType(), ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("status", String(24), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    #: The answer given (HTTP status and JSON body), replayed for the same event id.
    Column("answer_status", Integer, nullable=False),
    Column("answer", JSON, nullable=False),
    UniqueConstraint("department", "event_id"),
)

__all__ = ["department_events"]
