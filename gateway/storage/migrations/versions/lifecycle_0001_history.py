"""Lifecycle: the status history of each application.

Revision ID: lifecycle_0001
Revises: 0001_foundation
Depends on: intake_0001 (history rows refer to applications)
Create Date: 2026-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "lifecycle_0001"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("lifecycle",)
depends_on: str | Sequence[str] | None = ("intake_0001",)


def upgrade() -> None:
    op.create_table(
        "application_history",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=True),
        sa.Column("actor_scope", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_history_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_history")),
        sa.UniqueConstraint("application_id", "position", name=op.f("uq_application_history_application_id_position")),
    )


def downgrade() -> None:
    op.drop_table("application_history")
