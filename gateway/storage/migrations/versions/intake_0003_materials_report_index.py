"""Intake: an index on the materials the reports' prefill rate counts (case, required, trust level, own scan), so
the report reads a period's materials from the index alone. Added for the reports (gateway/reports/tables.py
declares it; its cost on writes is in bench/RESULTS.md).

Revision ID: intake_0003
Revises: intake_0002 (the ``level`` column)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "intake_0003"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_application_materials_report",
        "application_materials",
        ["application_id", "required", "level", "file_sha256"],
    )


def downgrade() -> None:
    op.drop_index("ix_application_materials_report", table_name="application_materials")
