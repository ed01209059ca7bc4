"""Report tables: generated reports (immutable, versioned, hashed) and the scheduler's claims.

A report is never updated: regenerating inserts the next version. ``report_runs`` holds one row per scheduled
(period, start): inserting it is the claim, so of any number of processes exactly one generates that run.
The indexes on the case tables serve the reports' range reads (by acceptance, completion, filing and event date).
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Index, Integer, String, Table, Text, UniqueConstraint

from gateway.cases.tables import application_history, applications
from gateway.storage.metadata import IdType, UTCDateTime, metadata
from gateway.tracking.tables import evaluations

reports = Table(
    "reports",
    metadata,
    Column("id", IdType(), primary_key=True),
    #: weekly / monthly.
    Column("period", String(8), nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    #: The district, a street or a community code.
    Column("unit", String(64), nullable=False),
    #: 1, 2, … per (period, start, unit): regenerating keeps the earlier versions.
    Column("version", Integer, nullable=False),
    Column("generated_at", UTCDateTime, nullable=False),
    #: ``schedule`` or the actor who asked (``token:<id>``, ``cli``).
    Column("generated_by", String(100), nullable=False),
    #: SHA-256 (hex) of ``body``, the canonical JSON of the figures.
    Column("sha256", String(64), nullable=False),
    Column("body", Text, nullable=False),
    UniqueConstraint("period", "start", "unit", "version", name="uq_reports_period_start_unit_version"),
)

report_runs = Table(
    "report_runs",
    metadata,
    Column("period", String(8), primary_key=True),
    Column("start", Date, primary_key=True),
    Column("claimed_by", String(100), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)

Index("ix_applications_accepted_on", applications.c.accepted_on)
Index("ix_applications_stopped_on", applications.c.stopped_on)
Index("ix_applications_created_at", applications.c.created_at)
Index("ix_application_history_status_at", application_history.c.status, application_history.c.at)
Index("ix_evaluations_created_at", evaluations.c.created_at)

__all__ = ["report_runs", "reports"]
