"""Reports: the range indexes on `applications` carry the columns the grouped reads key on and count (covering),
plus a case's group by id, and two indexes on `grid_tasks` (coverage by due date, evaluations the grid collected).
The materials' index the reports use is intake's (`intake_0003`: it needs intake_0002's ``level``).

Revision ID: reports_0002
Revises: reports_0001
Depends on: grids_0001 (grid_tasks)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reports_0002"
down_revision: str | Sequence[str] | None = "reports_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = ("grids_0001",)

_KEY = ["grid", "filing_unit", "department", "item_code"]
_WIDENED = {
    "ix_applications_accepted_on": (["accepted_on"], ["accepted_on", "id", *_KEY]),
    "ix_applications_stopped_on": (
        ["stopped_on"],
        [
            "stopped_on",
            "status",
            "accepted_on",
            "promised_days",
            "deadline",
            "paused_on",
            "days_left_at_pause",
            "id",
            *_KEY,
        ],
    ),
    "ix_applications_created_at": (["created_at"], ["created_at", *_KEY]),
}


def upgrade() -> None:
    for name, (_before, after) in _WIDENED.items():
        op.drop_index(name, table_name="applications")
        op.create_index(name, "applications", after)
    op.create_index("ix_applications_report_key", "applications", ["id", *_KEY])
    op.create_index("ix_grid_tasks_due_coverage", "grid_tasks", ["due_on", "application_id", "completed_on"])
    collected = sa.text("evaluation_id IS NOT NULL")
    op.create_index(
        "ix_grid_tasks_evaluation_id",
        "grid_tasks",
        ["evaluation_id"],
        postgresql_where=collected,
        sqlite_where=collected,
    )


def downgrade() -> None:
    op.drop_index("ix_grid_tasks_evaluation_id", table_name="grid_tasks")
    op.drop_index("ix_grid_tasks_due_coverage", table_name="grid_tasks")
    op.drop_index("ix_applications_report_key", table_name="applications")
    for name, (before, _after) in _WIDENED.items():
        op.drop_index(name, table_name="applications")
        op.create_index(name, "applications", before)
