"""Tracking tables: evaluations (好差评, one per case) and the rectification tasks bad reviews open."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, Text

from gateway.cases.tables import applications
from gateway.storage.metadata import IdType, UTCDateTime, metadata

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", IdType(), primary_key=True),
    #: Unique: one evaluation per case (一次一评、一事一评), enforced by the database too.
    Column(
        "application_id",
        IdType(),
        ForeignKey(applications.c.id, ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    #: 5 非常满意 … 1 非常不满意.
    Column("level", Integer, nullable=False),
    Column("comment", Text, nullable=False),
    Column("overall", Integer, nullable=True),
    Column("efficiency", Integer, nullable=True),
    Column("service", Integer, nullable=True),
    Column("attitude", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

rectifications = Table(
    "rectifications",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("application_id", IdType(), ForeignKey(applications.c.id, ondelete="CASCADE"), nullable=False),
    Column("evaluation_id", IdType(), ForeignKey(evaluations.c.id, ondelete="CASCADE"), nullable=False, unique=True),
    #: open / closed.
    Column("status", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("handling_unit", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    #: 15 working days after the bad review (docs/domain.md#evaluation).
    Column("due_on", Date, nullable=False),
    Column("due_estimated", Boolean, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("closed_by", String(100), nullable=True),
    #: What was done and what the follow-up call (回访) found.
    Column("outcome", Text, nullable=True),
)
Index("ix_rectifications_status_due_on", rectifications.c.status, rectifications.c.due_on)

__all__ = ["evaluations", "rectifications"]
