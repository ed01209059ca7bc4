"""Grid tables: the grid workers' tasks, the consultations they record, and the catch-up watermark.

A task is derived from a case's history rows, its clock or its rectification (`gateway.grid.tasks`); the unique key
(application, kind, trigger) makes deriving it again a no-op, so any number of processes may catch up at once.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Date, ForeignKey, Index, String, Table, Text, UniqueConstraint

from gateway.cases.tables import applications
from gateway.storage.metadata import IdType, UTCDateTime, metadata

grid_tasks = Table(
    "grid_tasks",
    metadata,
    Column("id", IdType(), primary_key=True),
    #: None for a consultation (办理前解答 happens before there is a case).
    Column("application_id", IdType(), ForeignKey(applications.c.id, ondelete="CASCADE"), nullable=True),
    Column("grid", String(64), nullable=False),
    #: before / during / after.
    Column("stage", String(8), nullable=False),
    #: consultation, accepted, correction, special_procedure, due_soon, overdue, follow_up, callback.
    Column("kind", String(24), nullable=False),
    #: What opened it: ``h<history position>``, ``d<deadline>``, ``r<rectification id>``, ``c<consultation id>``.
    Column("trigger", String(64), nullable=False),
    Column("opened_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    #: open / done.
    Column("status", String(8), nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("completed_on", Date, nullable=True),
    Column("completed_by", String(100), nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("note", Text, nullable=True),
    #: The evaluation recorded on the resident's behalf (a paper form collected by the grid).
    Column("evaluation_id", IdType(), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("application_id", "kind", "trigger", name="uq_grid_tasks_case_kind_trigger"),
)
Index("ix_grid_tasks_grid_status_due", grid_tasks.c.grid, grid_tasks.c.status, grid_tasks.c.due_on)
Index("ix_grid_tasks_due_on", grid_tasks.c.due_on)
Index("ix_grid_tasks_application", grid_tasks.c.application_id)

grid_consultations = Table(
    "grid_consultations",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("grid", String(64), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("item_name", String(200), nullable=False),
    #: The item's 一次性告知 list as given to the resident (key, name, required, source).
    Column("materials", JSON, nullable=False),
    #: Certificate lookup (with the resident's consent): which certificate-sourced materials are covered.
    Column("consent", Boolean, nullable=False),
    Column("covered", JSON, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_by", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_grid_consultations_grid", grid_consultations.c.grid, grid_consultations.c.created_at)

#: One row per catch-up scan: history rows up to ``last_at`` have been turned into tasks.
grid_sync = Table(
    "grid_sync",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("last_at", UTCDateTime, nullable=False),
)

__all__ = ["grid_consultations", "grid_sync", "grid_tasks"]

#: The grid task list and a grid worker's case list filter applications by grid.
Index("ix_applications_grid_status", applications.c.grid, applications.c.status)
