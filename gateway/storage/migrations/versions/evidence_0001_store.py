"""Evidence: the applicants' verified copies (evidence store) and the checks of commitments (事后核查).

Revision ID: evidence_0001
Revises: 0001_foundation
Depends on: intake_0001 (checks refer to applications)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "evidence_0001"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("evidence",)
depends_on: str | Sequence[str] | None = ("intake_0001",)


def upgrade() -> None:
    op.create_table(
        "evidence_materials",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("holder_index", sa.String(64), nullable=False),
        sa.Column("material_key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_enc", sa.Text(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("item_code", sa.String(64), nullable=False),
        sa.Column("verified_unit", sa.String(64), nullable=False),
        sa.Column("verified_by", sa.String(100), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_materials")),
        sa.UniqueConstraint(
            "application_id", "material_key", name=op.f("uq_evidence_materials_application_id_material_key")
        ),
    )
    op.create_index(
        "ix_evidence_materials_holder_key", "evidence_materials", ["holder_index", "material_key"], unique=False
    )
    op.create_table(
        "evidence_checks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("material_key", sa.String(64), nullable=False),
        sa.Column("material_name", sa.String(200), nullable=False),
        sa.Column("commitment", sa.Text(), nullable=False),
        sa.Column("item_code", sa.String(64), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("handling_unit", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_estimated", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_evidence_checks_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_checks")),
        sa.UniqueConstraint(
            "application_id", "material_key", name=op.f("uq_evidence_checks_application_id_material_key")
        ),
    )
    op.create_index("ix_evidence_checks_status_due_on", "evidence_checks", ["status", "due_on"], unique=False)
    op.create_index("ix_evidence_checks_department", "evidence_checks", ["department", "status"], unique=False)
    op.create_index("ix_evidence_checks_handling_unit", "evidence_checks", ["handling_unit", "status"], unique=False)


def downgrade() -> None:
    op.drop_table("evidence_checks")
    op.drop_table("evidence_materials")
