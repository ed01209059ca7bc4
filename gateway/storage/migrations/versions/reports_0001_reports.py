"""Reports: stored reports (immutable, versioned), the scheduler's claims, and range indexes on the case tables.

Revision ID: reports_0001
Revises: tracking_0001 (indexes on evaluations, and on applications through it)
Depends on: lifecycle_0001 (an index on application_history)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reports_0001"
down_revision: str | Sequence[str] | None = "tracking_0001"
branch_labels: str | Sequence[str] | None = ("reports",)
depends_on: str | Sequence[str] | None = ("lifecycle_0001",)


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generated_by", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("period", "start", "unit", "version", name="uq_reports_period_start_unit_version"),
    )
    op.create_table(
        "report_runs",
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("period", "start", name=op.f("pk_report_runs")),
    )
    op.create_index("ix_applications_accepted_on", "applications", ["accepted_on"])
    op.create_index("ix_applications_stopped_on", "applications", ["stopped_on"])
    op.create_index("ix_applications_created_at", "applications", ["created_at"])
    op.create_index("ix_application_history_status_at", "application_history", ["status", "at"])
    op.create_index("ix_evaluations_created_at", "evaluations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_created_at", table_name="evaluations")
    op.drop_index("ix_application_history_status_at", table_name="application_history")
    op.drop_index("ix_applications_created_at", table_name="applications")
    op.drop_index("ix_applications_stopped_on", table_name="applications")
    op.drop_index("ix_applications_accepted_on", table_name="applications")
    op.drop_table("report_runs")
    op.drop_table("reports")
