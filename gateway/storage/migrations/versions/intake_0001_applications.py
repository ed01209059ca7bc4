"""Intake: applications, their materials, and the per-day tracking-number counter.

Revision ID: intake_0001
Revises: 0001_foundation
Create Date: 2026-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0001"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("intake",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("item_code", sa.String(64), nullable=False),
        sa.Column("item_name", sa.String(200), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("filing_unit", sa.String(64), nullable=False),
        sa.Column("handling_unit", sa.String(64), nullable=False),
        sa.Column("grid", sa.String(64), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("applicant_id_number", sa.Text(), nullable=False),
        sa.Column("applicant_id_index", sa.String(64), nullable=False),
        sa.Column("applicant_id_number_masked", sa.String(32), nullable=False),
        sa.Column("applicant_name", sa.Text(), nullable=False),
        sa.Column("applicant_name_masked", sa.String(64), nullable=False),
        sa.Column("applicant_phone", sa.Text(), nullable=False),
        sa.Column("applicant_phone_masked", sa.String(32), nullable=False),
        sa.Column("applicant_address", sa.Text(), nullable=True),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_on", sa.Date(), nullable=True),
        sa.Column("tracking_number", sa.String(32), nullable=True),
        sa.Column("query_code_hash", sa.String(64), nullable=True),
        sa.Column("promised_days", sa.Integer(), nullable=True),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("deadline_estimated", sa.Boolean(), nullable=False),
        sa.Column("paused_on", sa.Date(), nullable=True),
        sa.Column("days_left_at_pause", sa.Integer(), nullable=True),
        sa.Column("stopped_on", sa.Date(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_applications_tracking_number")),
    )
    op.create_index("ix_applications_status_deadline", "applications", ["status", "deadline"])
    op.create_index("ix_applications_handling_unit", "applications", ["handling_unit", "status"])
    op.create_index("ix_applications_filing_unit", "applications", ["filing_unit", "status"])
    op.create_index("ix_applications_department", "applications", ["department", "status"])
    op.create_index("ix_applications_applicant_id_index", "applications", ["applicant_id_index"])
    op.create_index("ix_applications_status_created_at", "applications", ["status", "created_at"])
    op.create_table(
        "application_materials",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("certificate_type", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("certificate", sa.JSON(), nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=True),
        sa.Column("file_type", sa.String(32), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_materials_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_materials")),
        sa.UniqueConstraint("application_id", "key", name=op.f("uq_application_materials_application_id_key")),
    )
    op.create_index("ix_application_materials_file_sha256", "application_materials", ["file_sha256"])
    op.create_table(
        "tracking_sequences",
        sa.Column("day", sa.String(8), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_tracking_sequences")),
    )


def downgrade() -> None:
    op.drop_table("tracking_sequences")
    op.drop_index("ix_application_materials_file_sha256", table_name="application_materials")
    op.drop_table("application_materials")
    for name in (
        "ix_applications_status_created_at",
        "ix_applications_applicant_id_index",
        "ix_applications_department",
        "ix_applications_filing_unit",
        "ix_applications_handling_unit",
        "ix_applications_status_deadline",
    ):
        op.drop_index(name, table_name="applications")
    op.drop_table("applications")
