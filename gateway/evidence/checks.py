"""Checks of commitments (告知承诺制 → 事后核查).

Accepting a case with a material replaced by the applicant's commitment (level D) opens one check per such
material, due the item's ``commitment_check_days`` working days after acceptance (the district calendar). The
department's officer (or a supervisor) records the outcome once: ``passed`` closes it; ``failed`` closes it, flags
the case (an ``application.flagged`` audit record on the case, next to ``evidence.check_failed``) and puts it on
the supervisors' list of flagged cases (``GET /api/v1/evidence/checks?status=failed``). Recording is conditional on
the check still being open (``UPDATE … WHERE status = 'open' AND version = :read``), so of concurrent outcomes
exactly one counts; the others answer 409.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from catalog.calendar import WorkingCalendar, local_date, local_time
from catalog.models import Item
from gateway import audit
from gateway.cases import clock
from gateway.cases.history import clean_note
from gateway.cases.views import MaterialView
from gateway.evidence.levels import COMMITTED
from gateway.evidence.schemas import CheckList, CheckOutcome, CheckView
from gateway.evidence.tables import evidence_checks
from gateway.identity.principal import Principal, Role
from gateway.problems import Conflict, FieldError, Forbidden, NotFound, Unprocessable
from gateway.storage.database import Database, locked
from gateway.storage.metadata import new_id, utcnow

CheckStatus = Literal["open", "passed", "failed"]
CHECK_STATUSES: tuple[str, ...] = ("open", "passed", "failed")
LIST_MAX = 500


async def open_checks(
    conn: AsyncConnection,
    *,
    calendar: WorkingCalendar,
    row: Row[Any],
    item: Item,
    materials: Sequence[MaterialView],
    principal: Principal,
    now: dt.datetime,
) -> list[str]:
    """Open a check for every material accepted under a commitment (in the accepting transaction)."""
    committed = [m for m in materials if m.level == COMMITTED and m.state in ("prefilled", "provided")]
    if not committed:
        return []
    # The working-day count of the case clock (its estimate flag kept; the calendar's warning logged once there).
    due = clock.start(calendar, local_date(now), item.commitment_check_days)
    ids: list[str] = []
    for m in committed:
        check_id = new_id()
        ids.append(check_id)
        await conn.execute(
            evidence_checks.insert().values(
                id=check_id,
                application_id=row.id,
                material_key=m.key,
                material_name=m.name,
                commitment=m.commitment or "",
                item_code=row.item_code,
                department=row.department,
                handling_unit=row.handling_unit,
                opened_at=now,
                due_on=due.deadline,
                due_estimated=due.deadline_estimated,
                status="open",
                version=1,
            )
        )
    await audit.append(
        conn,
        actor=principal.actor,
        role=principal.role.value,
        action="evidence.check_opened",
        object_type="application",
        object_id=row.id,
        purpose=f"application:{row.id}",
        detail={"materials": [m.key for m in committed], "due_on": due.deadline.isoformat(), "checks": ids},
    )
    return ids


def _scope(principal: Principal) -> ColumnElement[bool] | None:
    if principal.is_district_wide:
        return None
    if principal.role is Role.OFFICER and principal.department:
        return evidence_checks.c.department == principal.department
    if principal.role is Role.CLERK and principal.unit:
        return evidence_checks.c.handling_unit == principal.unit
    return evidence_checks.c.id.is_(None)


def _view(row: Row[Any], today: dt.date) -> CheckView:
    return CheckView(
        id=row.id,
        application_id=row.application_id,
        item_code=row.item_code,
        material_key=row.material_key,
        material_name=row.material_name,
        commitment=row.commitment,
        department=row.department,
        handling_unit=row.handling_unit,
        opened_at=local_time(row.opened_at),
        due_on=row.due_on,
        due_estimated=bool(row.due_estimated),
        status=row.status,
        overdue=row.status == "open" and row.due_on < today,
        closed_at=local_time(row.closed_at) if row.closed_at else None,
        closed_by=row.closed_by,
        note=row.note,
        version=row.version,
    )


class CheckService:
    def __init__(self, *, database: Database, now: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = database
        self.now = now

    async def list(
        self, principal: Principal, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> CheckList:
        """Checks in the caller's scope (officers: their department's; clerks: their unit's; supervisors: all),
        earliest due first. ``status=failed`` is the supervisors' list of flagged cases."""
        if status is not None and status not in CHECK_STATUSES:
            raise Unprocessable(
                "Unknown check status.", errors=[FieldError("status", f"must be one of {', '.join(CHECK_STATUSES)}")]
            )
        if principal.role not in (Role.OFFICER, Role.CLERK, Role.SUPERVISOR, Role.ADMIN):
            raise Forbidden("Checks are read by staff.")
        conditions: list[ColumnElement[bool]] = []
        scope = _scope(principal)
        if scope is not None:
            conditions.append(scope)
        if status:
            conditions.append(evidence_checks.c.status == status)
        today = local_date(self.now())
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(evidence_checks).where(*conditions))
            ).scalar_one()
            rows = await conn.execute(
                select(evidence_checks)
                .where(*conditions)
                .order_by(evidence_checks.c.due_on, evidence_checks.c.id)
                .limit(max(1, min(limit, LIST_MAX)))
                .offset(max(0, offset))
            )
            items = [_view(r, today) for r in rows]
        return CheckList(items=items, total=int(total))

    async def record(self, principal: Principal, check_id: str, body: CheckOutcome) -> CheckView:
        """The outcome of a check (see the module docstring)."""
        if principal.role not in (Role.OFFICER, Role.SUPERVISOR):
            raise Forbidden("A check's outcome is recorded by the department's officer or a supervisor.")
        note = clean_note(body.note)
        errors: list[FieldError] = []
        if body.passed is False and not note:
            errors.append(FieldError("note", "is required when the check failed: what was found"))
        if note and len(note) > 1000:
            errors.append(FieldError("note", "is too long (at most 1000 characters)"))
        if errors:
            raise Unprocessable("The check's outcome is incomplete.", errors=errors)
        now = self.now()
        async with self.db.transaction() as conn:
            query = select(evidence_checks).where(evidence_checks.c.id == check_id)
            scope = _scope(principal)
            if scope is not None:
                query = query.where(scope)
            row = (await conn.execute(locked(query, conn))).first()
            if row is None:
                raise NotFound(f"No check {check_id!r} in your scope.")
            if row.status != "open":
                raise Conflict(f"The check was already recorded ({row.status}).", extra={"current_status": row.status})
            status = "passed" if body.passed else "failed"
            done = await conn.execute(
                update(evidence_checks)
                .where(
                    evidence_checks.c.id == row.id,
                    evidence_checks.c.status == "open",
                    evidence_checks.c.version == row.version,
                )
                .values(status=status, version=row.version + 1, closed_at=now, closed_by=principal.actor, note=note)
            )
            if done.rowcount != 1:
                raise Conflict("The check changed meanwhile; reload it.")
            detail = {"check": row.id, "material": row.material_key, "outcome": status}
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action=f"evidence.check_{status}",
                object_type="application",
                object_id=row.application_id,
                purpose=f"application:{row.application_id}",
                detail=detail | ({"note": note} if note else {}),
            )
            if status == "failed":
                # The flag the supervisors see: on the case's own audit trail, and in the failed-checks list.
                await audit.append(
                    conn,
                    actor=principal.actor,
                    role=principal.role.value,
                    action="application.flagged",
                    object_type="application",
                    object_id=row.application_id,
                    purpose=f"application:{row.application_id}",
                    detail={"reason": "commitment_check_failed", "check": row.id, "material": row.material_key},
                )
            fresh = (await conn.execute(select(evidence_checks).where(evidence_checks.c.id == row.id))).one()
            return _view(fresh, local_date(now))


__all__ = ["CHECK_STATUSES", "CheckService", "CheckStatus", "open_checks"]
