"""Grids: grid workers' tasks, consultations, the catch-up watermark, and an index of cases by grid.

Revision ID: grids_0001
Revises: intake_0001 (tasks refer to applications)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "grids_0001"
down_revision: str | Sequence[str] | None = "intake_0001"
branch_labels: str | Sequence[str] | None = ("grids",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grid_tasks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=True),
        sa.Column("grid", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("completed_by", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("evaluation_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_grid_tasks_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_tasks")),
        sa.UniqueConstraint("application_id", "kind", "trigger", name="uq_grid_tasks_case_kind_trigger"),
    )
    op.create_index("ix_grid_tasks_grid_status_due", "grid_tasks", ["grid", "status", "due_on"])
    op.create_index("ix_grid_tasks_due_on", "grid_tasks", ["due_on"])
    op.create_index("ix_grid_tasks_application", "grid_tasks", ["application_id"])
    op.create_table(
        "grid_consultations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("grid", sa.String(64), nullable=False),
        sa.Column("item_code", sa.String(64), nullable=False),
        sa.Column("item_name", sa.String(200), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("covered", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_consultations")),
    )
    op.create_index("ix_grid_consultations_grid", "grid_consultations", ["grid", "created_at"])
    op.create_table(
        "grid_sync",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_grid_sync")),
    )
    op.create_index("ix_applications_grid_status", "applications", ["grid", "status"])


def downgrade() -> None:
    op.drop_index("ix_applications_grid_status", table_name="applications")
    op.drop_table("grid_sync")
    op.drop_index("ix_grid_consultations_grid", table_name="grid_consultations")
    op.drop_table("grid_consultations")
    op.drop_index("ix_grid_tasks_application", table_name="grid_tasks")
    op.drop_index("ix_grid_tasks_due_on", table_name="grid_tasks")
    op.drop_index("ix_grid_tasks_grid_status_due", table_name="grid_tasks")
    op.drop_table("grid_tasks")
