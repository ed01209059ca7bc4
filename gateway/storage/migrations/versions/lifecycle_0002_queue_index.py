"""Lifecycle: an index for the officer queue (a department's cases in deadline order, a page at a time).

Revision ID: lifecycle_0002
Revises: lifecycle_0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "lifecycle_0002"
down_revision: str | Sequence[str] | None = "lifecycle_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_applications_department_deadline", "applications", ["department", "deadline", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_applications_department_deadline", table_name="applications")
