"""Certificates: the verified certificate store, rejections, and the per-department sync cursors.

Revision ID: certificates_0001
Revises: 0001_foundation
Create Date: 2026-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "certificates_0001"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("certificates",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("identifier", sa.String(128), nullable=False),
        sa.Column("type_key", sa.String(64), nullable=False),
        sa.Column("type_code", sa.String(32), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("number", sa.String(128), nullable=False),
        sa.Column("issuer_name", sa.String(200), nullable=False),
        sa.Column("issuer_code", sa.String(32), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(2), nullable=False),
        sa.Column("holder_code_type", sa.String(3), nullable=False),
        sa.Column("holder_index", sa.String(64), nullable=False),
        sa.Column("holder_code_enc", sa.Text(), nullable=False),
        sa.Column("holder_name_enc", sa.Text(), nullable=False),
        sa.Column("payload_enc", sa.Text(), nullable=False),
        sa.Column("verification_status", sa.String(32), nullable=False),
        sa.Column("verification_reason", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("identifier", name=op.f("uq_certificates_identifier")),
    )
    op.create_index("ix_certificates_holder_index_type_key", "certificates", ["holder_index", "type_key"])
    op.create_index("ix_certificates_department", "certificates", ["department", "verification_status"])
    op.create_table(
        "certificate_rejections",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(128), nullable=False),
        sa.Column("type_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_rejections")),
    )
    op.create_index("ix_certificate_rejections_department_at", "certificate_rejections", ["department", "at"])
    op.create_index("ix_certificate_rejections_identifier", "certificate_rejections", ["identifier"])
    op.create_table(
        "sync_cursors",
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department", name=op.f("pk_sync_cursors")),
    )


def downgrade() -> None:
    op.drop_table("sync_cursors")
    op.drop_index("ix_certificate_rejections_identifier", table_name="certificate_rejections")
    op.drop_index("ix_certificate_rejections_department_at", table_name="certificate_rejections")
    op.drop_table("certificate_rejections")
    op.drop_index("ix_certificates_department", table_name="certificates")
    op.drop_index("ix_certificates_holder_index_type_key", table_name="certificates")
    op.drop_table("certificates")
