"""The supervisors' summary (督查): counts per item and handling unit — by status, open, overdue and due soon, and
the cases flagged by a failed commitment check (事后核查) with the checks past due.

Read-only and district-wide for supervisors and admins; the same scope rule as every list (`scope_filter`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from catalog.calendar import WorkingCalendar, local_date
from gateway.cases import clock
from gateway.cases.access import scope_filter
from gateway.cases.clock import clock_state
from gateway.cases.machine import OPEN, Status
from gateway.cases.tables import applications
from gateway.evidence.tables import evidence_checks
from gateway.identity.principal import Principal
from gateway.lifecycle.schemas import Summary, SummaryRow
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow


class SupervisionService:
    def __init__(
        self, *, database: Database, calendar: WorkingCalendar, now: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.db = database
        self.calendar = calendar
        self.now = now

    async def summary(self, principal: Principal, *, unit: str | None = None, department: str | None = None) -> Summary:
        """Counts per item and handling unit: by status, open, overdue and due soon (drafts left out)."""
        today = local_date(self.now())
        conditions: list[ColumnElement[bool]] = [applications.c.status != "draft"]
        scope = scope_filter(principal)
        if scope is not None:
            conditions.append(scope)
        if unit:
            conditions.append(applications.c.handling_unit == unit)
        if department:
            conditions.append(applications.c.department == department)
        columns = [
            applications.c.item_code,
            applications.c.item_name,
            applications.c.department,
            applications.c.handling_unit,
            applications.c.status,
        ]
        async with self.db.read() as conn:
            counts = list(
                await conn.execute(select(*columns, func.count().label("n")).where(*conditions).group_by(*columns))
            )
            open_rows: list[Row[Any]] = list(
                await conn.execute(
                    select(
                        applications.c.item_code,
                        applications.c.handling_unit,
                        *[applications.c[c] for c in clock.COLUMNS],
                    ).where(*conditions, applications.c.status.in_(sorted(OPEN)))
                )
            )
            checks = evidence_checks.c
            check_rows = list(
                await conn.execute(
                    select(
                        applications.c.item_code,
                        applications.c.handling_unit,
                        func.count(func.distinct(case((checks.status == "failed", applications.c.id)))).label(
                            "flagged"
                        ),
                        func.count(case((and_(checks.status == "open", checks.due_on < today), 1))).label("late"),
                    )
                    .join(evidence_checks, checks.application_id == applications.c.id)
                    .where(*conditions)
                    .group_by(applications.c.item_code, applications.c.handling_unit)
                )
            )
        rows: dict[tuple[str, str], SummaryRow] = {}
        for r in counts:
            key = (r.item_code, r.handling_unit)
            row = rows.get(key)
            if row is None:
                row = rows[key] = SummaryRow(
                    item_code=r.item_code,
                    item_name=r.item_name,
                    department=r.department,
                    unit=r.handling_unit,
                    total=0,
                    by_status={},
                    open=0,
                    overdue=0,
                    due_soon=0,
                )
            row.by_status[r.status] = row.by_status.get(r.status, 0) + int(r.n)
            row.total += int(r.n)
            if r.status in OPEN:
                row.open += int(r.n)
        for open_row in open_rows:
            state = clock_state(open_row)
            target = rows.get((open_row.item_code, open_row.handling_unit))
            if state is None or target is None:
                continue
            v = clock.view(self.calendar, state, today)
            target.overdue += int(v.overdue)
            target.due_soon += int(v.due_soon)
        for check_row in check_rows:
            target = rows.get((check_row.item_code, check_row.handling_unit))
            if target is not None:
                target.flagged += int(check_row.flagged)
                target.checks_overdue += int(check_row.late)
        ordered = sorted(rows.values(), key=lambda s: (s.unit, s.item_code))
        by_status: Counter[Status] = Counter()
        for s in ordered:
            by_status.update(s.by_status)
        totals = SummaryRow(
            item_code="*",
            item_name="合计",
            department="*",
            unit=unit or "*",
            total=sum(s.total for s in ordered),
            by_status=dict(by_status),
            open=sum(s.open for s in ordered),
            overdue=sum(s.overdue for s in ordered),
            due_soon=sum(s.due_soon for s in ordered),
            flagged=sum(s.flagged for s in ordered),
            checks_overdue=sum(s.checks_overdue for s in ordered),
        )
        return Summary(as_of=today, rows=ordered, totals=totals)


__all__ = ["SupervisionService"]
