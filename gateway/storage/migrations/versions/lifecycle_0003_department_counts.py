"""Lifecycle: applications per department and status, kept exact by triggers (the officer queue's total).

The officer queue answers an exact ``total`` with every page. Counting the busiest department's cases (23,000 of
100,000) took ~1–2.5 ms per request, half of the request's work; `application_counts` holds the same numbers,
changed by triggers in the writing transaction itself (insert: +1; delete: −1; a change of status or department:
−1 and +1), so every snapshot that sees a case also sees it counted. Cost on writes: one upsert (and one update on a
status change) of a row per (department, status) in the same transaction. On PostgreSQL those rows are locked
until commit, always in (department, status) order, so concurrent moves cannot deadlock on them.

Revision ID: lifecycle_0003
Revises: lifecycle_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "lifecycle_0003"
down_revision: str | Sequence[str] | None = "lifecycle_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = (
    "INSERT INTO application_counts (department, status, n) VALUES ({d}, {s}, 1) "
    "ON CONFLICT (department, status) DO UPDATE SET n = application_counts.n + 1"
)
_REMOVE = "UPDATE application_counts SET n = n - 1 WHERE department = {d} AND status = {s}"


def upgrade() -> None:
    op.create_table(
        "application_counts",
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("department", "status", name=op.f("pk_application_counts")),
    )
    op.execute(
        "INSERT INTO application_counts (department, status, n) "
        "SELECT department, status, count(*) FROM applications GROUP BY department, status"
    )
    if op.get_context().dialect.name == "postgresql":
        add, remove = (
            _ADD.format(d="NEW.department", s="NEW.status"),
            _REMOVE.format(d="OLD.department", s="OLD.status"),
        )
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION onewindow_application_counts() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    {add};
                ELSIF TG_OP = 'DELETE' THEN
                    {remove};
                ELSIF OLD.status IS DISTINCT FROM NEW.status OR OLD.department IS DISTINCT FROM NEW.department THEN
                    -- The two rows in one order, (department, status), whichever way the case moves: two
                    -- transactions moving cases in opposite directions (in review -> correction and back) would
                    -- otherwise lock the same two rows in opposite orders and deadlock.
                    IF ROW(OLD.department, OLD.status) < ROW(NEW.department, NEW.status) THEN
                        {remove};
                        {add};
                    ELSE
                        {add};
                        {remove};
                    END IF;
                END IF;
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER applications_counted AFTER INSERT OR DELETE OR UPDATE OF status, department "
            "ON applications FOR EACH ROW EXECUTE FUNCTION onewindow_application_counts()"
        )
        return
    op.execute(
        "CREATE TRIGGER applications_counted_insert AFTER INSERT ON applications "
        f"BEGIN {_ADD.format(d='NEW.department', s='NEW.status')}; END"
    )
    op.execute(
        "CREATE TRIGGER applications_counted_delete AFTER DELETE ON applications "
        f"BEGIN {_REMOVE.format(d='OLD.department', s='OLD.status')}; END"
    )
    op.execute(
        "CREATE TRIGGER applications_counted_update AFTER UPDATE OF status, department ON applications "
        "WHEN OLD.status IS NOT NEW.status OR OLD.department IS NOT NEW.department "
        f"BEGIN {_REMOVE.format(d='OLD.department', s='OLD.status')}; "
        f"{_ADD.format(d='NEW.department', s='NEW.status')}; END"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS applications_counted ON applications")
        op.execute("DROP FUNCTION IF EXISTS onewindow_application_counts()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS applications_counted_{name}")
    op.drop_table("application_counts")
