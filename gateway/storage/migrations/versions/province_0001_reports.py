"""Province: the delivery state of each history row reported to the provincial platform.

Revision ID: province_0001
Revises: 0001_foundation
Depends on: lifecycle_0001 (rows refer to application_history), intake_0001 (and to applications)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "province_0001"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("province",)
depends_on: str | Sequence[str] | None = ("intake_0001", "lifecycle_0001")


def upgrade() -> None:
    op.create_table(
        "province_reports",
        sa.Column("history_id", sa.String(32), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_province_reports_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["history_id"],
            ["application_history.id"],
            name=op.f("fk_province_reports_history_id_application_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("history_id", name=op.f("pk_province_reports")),
    )
    op.create_index(op.f("ix_province_reports_state_next_attempt_at"), "province_reports", ["state", "next_attempt_at"])
    op.create_index(
        op.f("ix_province_reports_application_id_position"), "province_reports", ["application_id", "position"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_province_reports_application_id_position"), table_name="province_reports")
    op.drop_index(op.f("ix_province_reports_state_next_attempt_at"), table_name="province_reports")
    op.drop_table("province_reports")
