"""Report tables: generated reports (immutable, versioned, hashed) and the scheduler's claims.

A report is never updated: regenerating inserts the next version. ``report_runs`` holds one row per scheduled
(period, start): inserting it is the claim, so of any number of processes exactly one generates that run.
The indexes on the case, grid and tracking tables serve the reports' range reads (by acceptance, completion, filing
and event date) and carry the columns those reads group by (bench/RESULTS.md has their cost on writes).
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Index, Integer, String, Table, Text, UniqueConstraint

from gateway.cases.tables import application_history, application_materials, applications
from gateway.grid.tables import grid_tasks
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

#: The columns every grouped read keys on: place (grid or filing unit), department, item.
_KEY = (applications.c.grid, applications.c.filing_unit, applications.c.department, applications.c.item_code)

# Range indexes that also carry what the read groups by and counts, so a month's rows are read from the index
# alone (PostgreSQL: an index-only scan where the table's pages are all-visible; SQLite: a covering index).
Index("ix_applications_accepted_on", applications.c.accepted_on, applications.c.id, *_KEY)
Index(
    "ix_applications_stopped_on",
    applications.c.stopped_on,
    applications.c.status,
    applications.c.accepted_on,
    applications.c.promised_days,
    applications.c.deadline,
    applications.c.paused_on,
    applications.c.days_left_at_pause,
    applications.c.id,
    *_KEY,
)
Index("ix_applications_created_at", applications.c.created_at, *_KEY)
#: A case's group from its id, for the reads that start from another table (tasks, evaluations, history rows).
Index("ix_applications_report_key", applications.c.id, *_KEY)
Index("ix_application_history_status_at", application_history.c.status, application_history.c.at)
Index("ix_evaluations_created_at", evaluations.c.created_at)
#: Materials of the cases accepted in a period: what the prefill rate counts, from the index alone.
Index(
    "ix_application_materials_report",
    application_materials.c.application_id,
    application_materials.c.required,
    application_materials.c.level,
    application_materials.c.file_sha256,
)
#: Grid coverage: the tasks due in a period with their case and completion day, from the index alone.
Index("ix_grid_tasks_due_coverage", grid_tasks.c.due_on, grid_tasks.c.application_id, grid_tasks.c.completed_on)
#: Evaluations collected by the grid (few rows have one).
Index(
    "ix_grid_tasks_evaluation_id",
    grid_tasks.c.evaluation_id,
    postgresql_where=grid_tasks.c.evaluation_id.is_not(None),
    sqlite_where=grid_tasks.c.evaluation_id.is_not(None),
)

__all__ = ["report_runs", "reports"]
