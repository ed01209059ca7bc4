"""Intake: each material's trust level (who set it, when), the commitment text and a reused copy's provenance.

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-12-06

Existing rows get the level their state implies: a prefilled certificate is A, an upload C.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0002"
down_revision: str | Sequence[str] | None = "intake_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("application_materials") as batch:
        batch.add_column(sa.Column("level", sa.String(1), nullable=True))
        batch.add_column(sa.Column("level_set_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("level_set_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("commitment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("evidence", sa.JSON(), nullable=True))
    op.execute(
        "UPDATE application_materials SET level = 'A', level_set_by = 'system', level_set_at = updated_at "
        "WHERE state = 'prefilled'"
    )
    op.execute(
        "UPDATE application_materials SET level = 'C', level_set_by = 'system', level_set_at = updated_at "
        "WHERE state = 'provided'"
    )


def downgrade() -> None:
    with op.batch_alter_table("application_materials") as batch:
        batch.drop_column("evidence")
        batch.drop_column("commitment")
        batch.drop_column("level_set_at")
        batch.drop_column("level_set_by")
        batch.drop_column("level")
