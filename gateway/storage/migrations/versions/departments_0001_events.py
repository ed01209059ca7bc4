"""Departments: the events department systems pushed (one row per department and event id).

Revision ID: departments_0001
Revises: 0001_foundation
Depends on: intake_0001 (events refer to applications)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "departments_0001"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("departments",)
depends_on: str | Sequence[str] | None = ("intake_0001",)


def upgrade() -> None:
    op.create_table(
        "department_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer_status", sa.Integer(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_department_events_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department_events")),
        sa.UniqueConstraint("department", "event_id", name=op.f("uq_department_events_department_event_id")),
    )


def downgrade() -> None:
    op.drop_table("department_events")
