"""Certificates: the identifier keeps a plain index instead of a unique constraint.

A certificate's primary key is derived from its identifier, so the key already makes the identifier unique, and the
upsert's conflict target is the key. A second unique index let two PostgreSQL transactions storing the same new
certificate at once collide in whichever unique index was not the conflict target (a unique violation instead of
the update); with one unique index the later writer waits for the earlier and updates its row.

Revision ID: certificates_0003
Revises: certificates_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "certificates_0003"
down_revision: str | Sequence[str] | None = "certificates_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_constraint("uq_certificates_identifier", type_="unique")
    op.create_index("ix_certificates_identifier", "certificates", ["identifier"])


def downgrade() -> None:
    op.drop_index("ix_certificates_identifier", table_name="certificates")
    with op.batch_alter_table("certificates") as batch:
        batch.create_unique_constraint("uq_certificates_identifier", ["identifier"])
