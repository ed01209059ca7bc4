"""Grid workers' work: their task list (caught up first), completing a task, consultations, their cases (masked),
the audited phone read, and a clerk's correction of a case's grid.

Scope: a grid worker sees their grid only; a supervisor bound to a street or community sees the grids under it;
a district-wide supervisor sees all. Anything outside answers 404, like a missing object.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Date, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from catalog.calendar import WorkingCalendar, local_date, local_time
from catalog.catalog import Catalog
from catalog.codes import citizen_id_problem
from gateway import audit
from gateway.cases.access import audit_case, load_application
from gateway.cases.history import clean_note
from gateway.cases.tables import applications
from gateway.cases.views import ItemRef
from gateway.certificates.lookup import CertificateService
from gateway.grid import tasks as task_rules
from gateway.grid.coverage import case_coverage
from gateway.grid.schemas import (
    OUTCOMES,
    CompleteTask,
    ConsultationView,
    CoverageReport,
    GridCase,
    GridCorrection,
    GridCoverage,
    NewConsultation,
    NoticeMaterial,
    PhoneRead,
    TaskList,
    TaskView,
)
from gateway.grid.tables import grid_consultations, grid_tasks
from gateway.identity.principal import Principal, Role, unit_covers, unit_prefix
from gateway.privacy import FieldCipher, mask_text
from gateway.problems import Conflict, FieldError, Forbidden, NotFound, Unprocessable
from gateway.storage.database import Database, locked
from gateway.storage.metadata import new_id, utcnow
from gateway.storage.prepared import PreparedRead

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PURPOSE_MIN, PURPOSE_MAX = 2, 200


class EvaluationRecorder(Protocol):
    """Records a paper evaluation in the caller's transaction under the evaluation rules (tracking's)."""

    async def __call__(
        self,
        conn: AsyncConnection,
        application_id: str,
        level: int | None,
        comment: str,
        *,
        actor: str,
        collected_by: str,
        now: dt.datetime,
    ) -> str: ...


def check_purpose(raw: str | None) -> str:
    """The stated purpose of a personal-data read (422 naming ``purpose``), masked for the audit log."""
    text = " ".join((raw or "").split())
    if not PURPOSE_MIN <= len(text) <= PURPOSE_MAX or _CONTROL.search(text):
        raise Unprocessable(
            "Reading personal data needs a stated purpose.",
            errors=[FieldError("purpose", f"is required: {PURPOSE_MIN} to {PURPOSE_MAX} characters saying why")],
        )
    return mask_text(text)


def task_not_found(task_id: str) -> NotFound:
    return NotFound(f"No grid task {task_id!r} in your scope.")


def grid_scope(principal: Principal) -> ColumnElement[bool] | None:
    """Which tasks the caller sees (None: all)."""
    if principal.role is Role.GRID_WORKER and principal.unit:
        return grid_tasks.c.grid == principal.unit
    if principal.role is Role.SUPERVISOR and principal.unit:
        return grid_tasks.c.grid.like(unit_prefix(principal.unit) + "%")
    if principal.role in (Role.SUPERVISOR, Role.ADMIN):
        return None
    return grid_tasks.c.id.is_(None)


def sees_grid(principal: Principal, grid: str | None) -> bool:
    if grid is None:
        return False
    if principal.role is Role.GRID_WORKER:
        return grid == principal.unit
    if principal.role is Role.SUPERVISOR:
        return principal.unit is None or unit_covers(principal.unit, grid)
    return principal.role is Role.ADMIN


@functools.cache
def _grid_page(by_stage: bool, by_status: bool, overdue: bool) -> PreparedRead:
    """A grid worker's page of tasks with the total (a scalar subquery: the same snapshot), as one prepared
    statement per combination of filters (eight at most)."""
    conditions: list[ColumnElement[bool]] = [grid_tasks.c.grid == bindparam("grid")]
    if by_stage:
        conditions.append(grid_tasks.c.stage == bindparam("stage"))
    if by_status:
        conditions.append(grid_tasks.c.status == bindparam("status"))
    if overdue:
        conditions.extend([grid_tasks.c.status == "open", grid_tasks.c.due_on < bindparam("today", type_=Date())])
    total = select(func.count()).select_from(grid_tasks).where(*conditions).scalar_subquery()
    return PreparedRead(
        select(
            grid_tasks,
            applications.c.tracking_number,
            applications.c.item_code,
            applications.c.item_name,
            total.label("list_total"),
        )
        .outerjoin(applications, applications.c.id == grid_tasks.c.application_id)
        .where(*conditions)
        .order_by(grid_tasks.c.due_on, grid_tasks.c.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset")),
        name="grid.task_page",
        step_budget=1000,  # a grid's tasks: hundreds to a few thousand rows counted
    )


class GridService:
    def __init__(
        self,
        *,
        database: Database,
        calendar: WorkingCalendar,
        catalog: Catalog,
        cipher: FieldCipher,
        certificates: CertificateService | None,
        evaluations: EvaluationRecorder | None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.calendar = calendar
        self.catalog = catalog
        self.cipher = cipher
        self.certificates = certificates
        self.evaluations = evaluations
        self.now = now

    # -- tasks --------------------------------------------------------------------------------------------------
    def _view(self, r: Row[Any], today: dt.date) -> TaskView:
        return TaskView(
            id=r.id,
            application_id=r.application_id,
            stage=r.stage,
            kind=r.kind,
            due_on=r.due_on,
            status=r.status,
            grid=r.grid,
            opened_on=r.opened_on,
            overdue=r.status == "open" and today > r.due_on,
            tracking_number=r.tracking_number,
            item=ItemRef(code=r.item_code, name=r.item_name) if r.item_code else None,
            completed_on=r.completed_on,
            outcome=r.outcome,
            note=r.note,
            evaluation_id=r.evaluation_id,
        )

    def _task_query(self) -> Any:
        return select(
            grid_tasks, applications.c.tracking_number, applications.c.item_code, applications.c.item_name
        ).outerjoin(applications, applications.c.id == grid_tasks.c.application_id)

    async def list_tasks(
        self,
        principal: Principal,
        *,
        stage: str | None = None,
        status: str | None = None,
        overdue: bool = False,
        limit: int = 200,
        offset: int = 0,
    ) -> TaskList:
        now = self.now()
        today = local_date(now)
        # Caught up before the list is served: history since the last scan, and the clock of the caller's grid.
        await task_rules.catch_up(
            self.db, self.calendar, now=now, grid=principal.unit if principal.role is Role.GRID_WORKER else None
        )
        if principal.role is Role.GRID_WORKER and principal.unit:
            # A grid worker's list: one prepared statement (page and total in one snapshot; inline on SQLite).
            params: dict[str, Any] = {"grid": principal.unit, "limit": limit, "offset": offset}
            if stage is not None:
                params["stage"] = stage
            if status is not None:
                params["status"] = status
            if overdue:
                params["today"] = today
            rows: list[Any] = await self.db.fetch(_grid_page(stage is not None, status is not None, overdue), **params)
            if rows or offset == 0:
                total = rows[0].list_total if rows else 0
                return TaskList(items=[self._view(r, today) for r in rows], total=int(total))
            # A page past the end: the total alone, as below.
        conditions: list[ColumnElement[bool]] = []
        scope = grid_scope(principal)
        if scope is not None:
            conditions.append(scope)
        if stage is not None:
            conditions.append(grid_tasks.c.stage == stage)
        if status is not None:
            conditions.append(grid_tasks.c.status == status)
        if overdue:
            conditions.extend([grid_tasks.c.status == "open", grid_tasks.c.due_on < today])
        async with self.db.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(grid_tasks).where(*conditions))).scalar_one()
            rows = list(
                await conn.execute(
                    self._task_query()
                    .where(*conditions)
                    .order_by(grid_tasks.c.due_on, grid_tasks.c.id)
                    .limit(limit)
                    .offset(offset)
                )
            )
            items = [self._view(r, today) for r in rows]
        return TaskList(items=items, total=int(total))

    async def complete(self, principal: Principal, task_id: str, body: CompleteTask) -> TaskView:
        """Complete a task once (409 the second time), with its outcome; a follow-up may carry a paper evaluation
        recorded in the same transaction."""
        now = self.now()
        async with self.db.transaction() as conn:
            row = (await conn.execute(locked(select(grid_tasks).where(grid_tasks.c.id == task_id), conn))).first()
            if row is None or not sees_grid(principal, row.grid):
                raise task_not_found(task_id)
            if principal.role is not Role.GRID_WORKER:
                raise Forbidden("Only the grid's worker completes its tasks.")
            if row.status != "open":
                raise Conflict("This task is already done.", extra={"current_status": row.status, "allowed": []})
            allowed = OUTCOMES.get(row.kind, ("done",))
            if body.outcome not in allowed:
                raise Unprocessable(
                    "Say what came of the task.",
                    errors=[FieldError("outcome", f"must be one of: {', '.join(allowed)}")],
                )
            evaluation_id = None
            if body.outcome == "paper_evaluation":
                if body.evaluation is None:
                    raise Unprocessable(
                        "A paper evaluation needs the resident's answers.",
                        errors=[
                            FieldError("evaluation", "is required with outcome paper_evaluation: {level, comment}")
                        ],
                    )
                if self.evaluations is None:  # pragma: no cover - create_app always wires it
                    raise Conflict("Evaluations cannot be recorded here.")
                evaluation_id = await self.evaluations(
                    conn,
                    row.application_id,
                    body.evaluation.level,
                    body.evaluation.comment,
                    actor=principal.actor,
                    collected_by=f"grid:{row.grid}",
                    now=now,
                )
            done = await conn.execute(
                update(grid_tasks)
                .where(grid_tasks.c.id == task_id, grid_tasks.c.status == "open")
                .values(
                    status="done",
                    completed_at=now,
                    completed_on=local_date(now),
                    completed_by=principal.actor,
                    outcome=body.outcome,
                    note=clean_note(body.note),
                    evaluation_id=evaluation_id,
                )
            )
            if done.rowcount != 1:
                raise Conflict("This task is already done.", extra={"current_status": "done", "allowed": []})
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="grid_task.completed",
                object_type="grid_task",
                object_id=task_id,
                purpose=f"application:{row.application_id}" if row.application_id else f"grid:{row.grid}",
                detail={"kind": row.kind, "outcome": body.outcome, "evaluation": evaluation_id},
            )
            result = (await conn.execute(self._task_query().where(grid_tasks.c.id == task_id))).one()
        return self._view(result, local_date(now))

    # -- 办理前解答 ------------------------------------------------------------------------------------------------
    async def consult(self, principal: Principal, body: NewConsultation) -> ConsultationView:
        if principal.role is not Role.GRID_WORKER or principal.unit is None:
            raise Forbidden("Consultations are recorded by a grid worker.")
        item = self.catalog.item(body.item_code.strip())
        errors: list[FieldError] = []
        if item is None:
            errors.append(FieldError("item_code", f"{body.item_code!r} is not a catalog item"))
        if body.id_number is not None and not body.consent:
            errors.append(FieldError("consent", "must be true to look up the resident's certificates"))
        if body.id_number is not None and citizen_id_problem(
            body.id_number.strip().upper(), today=local_date(self.now())
        ):
            errors.append(FieldError("id_number", "is not a valid citizen ID number (GB 11643)"))
        if errors:
            raise Unprocessable("The consultation is not complete.", errors=errors)
        assert item is not None
        covered: dict[str, str] | None = None
        now = self.now()
        consultation_id = new_id()
        if body.consent and body.id_number and self.certificates is not None:
            types = [m.certificate_type for m in item.materials if m.certificate_type]
            holder = self.certificates.store.holder(body.id_number.strip().upper())
            found = await self.certificates.lookup(
                holder, types, purpose=f"grid_consultation:{consultation_id}", actor=principal.actor
            )
            covered = {
                key: ("covered" if outcome.state == "found" else "bring") for key, outcome in found.outcomes.items()
            }
        materials = [
            NoticeMaterial(
                key=m.key,
                name=m.name,
                required=m.required,
                source=m.source,
                certificate_type=m.certificate_type,
                coverage=(covered.get(m.certificate_type or "", "bring") if covered is not None else None),
            )
            for m in item.materials
        ]
        note = clean_note(body.note)
        async with self.db.transaction() as conn:
            await conn.execute(
                grid_consultations.insert().values(
                    id=consultation_id,
                    grid=principal.unit,
                    item_code=item.code,
                    item_name=item.name,
                    materials=[
                        {
                            "key": m.key,
                            "name": m.name,
                            "required": m.required,
                            "source": m.source,
                            "certificate_type": m.certificate_type,
                            "coverage": m.coverage,
                        }
                        for m in materials
                    ],
                    consent=body.consent,
                    covered=covered,
                    note=note,
                    created_by=principal.actor,
                    created_at=now,
                )
            )
            today = local_date(now)
            await conn.execute(
                grid_tasks.insert().values(
                    id=new_id(),
                    application_id=None,
                    grid=principal.unit,
                    stage="before",
                    kind="consultation",
                    trigger=f"c{consultation_id}",
                    opened_on=today,
                    due_on=today,
                    status="done",
                    completed_at=now,
                    completed_on=today,
                    completed_by=principal.actor,
                    outcome="answered",
                    note=None,
                    created_at=now,
                )
            )
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="grid.consultation",
                object_type="grid_consultation",
                object_id=consultation_id,
                purpose=f"grid:{principal.unit}",
                detail={"item": item.code, "certificate_lookup": covered is not None},
            )
        return ConsultationView(
            id=consultation_id,
            grid=principal.unit,
            item=ItemRef(code=item.code, name=item.name),
            materials=materials,
            consent=body.consent,
            note=note,
            created_at=local_time(now),
            notice_url=f"/api/v1/grid/consultations/{consultation_id}/notice",
        )

    async def consultation(self, principal: Principal, consultation_id: str) -> ConsultationView:
        async with self.db.read() as conn:
            r = (
                await conn.execute(select(grid_consultations).where(grid_consultations.c.id == consultation_id))
            ).first()
        if r is None or not sees_grid(principal, r.grid):
            raise NotFound(f"No consultation {consultation_id!r} in your scope.")
        return ConsultationView(
            id=r.id,
            grid=r.grid,
            item=ItemRef(code=r.item_code, name=r.item_name),
            materials=[NoticeMaterial(**m) for m in r.materials],
            consent=bool(r.consent),
            note=r.note,
            created_at=local_time(r.created_at),
            notice_url=f"/api/v1/grid/consultations/{r.id}/notice",
        )

    # -- cases --------------------------------------------------------------------------------------------------
    async def case(self, principal: Principal, application_id: str) -> GridCase:
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
        return GridCase(
            id=row.id,
            tracking_number=row.tracking_number,
            item=ItemRef(code=row.item_code, name=row.item_name),
            status=row.status,
            grid=row.grid,
            applicant_name=row.applicant_name_masked,
            applicant_phone=row.applicant_phone_masked,
            deadline=row.deadline,
        )

    async def phone(self, principal: Principal, application_id: str, purpose: str | None) -> PhoneRead:
        """The applicant's phone number for a call, decrypted, with the read audited in the same transaction."""
        if principal.role is not Role.GRID_WORKER:
            raise Forbidden("This read is the grid worker's (others use the applicant record).")
        stated = check_purpose(purpose)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal)
            phone = self.cipher.decrypt(
                row.applicant_phone, table="applications", column="applicant_phone", row_id=row.id
            )
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="personal_data.read",
                object_type="application",
                object_id=row.id,
                purpose=stated,
                detail={"subject": "applicant", "fields": ["phone"], "actor_scope": principal.unit},
            )
        return PhoneRead(application_id=application_id, phone=phone, purpose=stated)

    async def correct_grid(self, principal: Principal, application_id: str, body: GridCorrection) -> GridCase:
        """A clerk corrects the applicant's grid (audited with the old and new codes and the reason)."""
        if principal.role is not Role.CLERK:
            raise Forbidden("A window clerk corrects a case's grid.")
        code = body.grid.strip()
        unit = self.catalog.unit(code)
        errors = []
        if unit is None or unit.level != "grid":
            errors.append(FieldError("grid", f"{code!r} is not a grid (网格) code"))
        reason = clean_note(body.reason)
        if not reason:
            errors.append(FieldError("reason", "is required: why the grid changes"))
        if errors:
            raise Unprocessable("The grid correction is not complete.", errors=errors)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal, for_update=True)
            changed = await conn.execute(
                update(applications)
                .where(applications.c.id == row.id, applications.c.version == row.version)
                .values(grid=code, version=row.version + 1, updated_at=self.now())
            )
            if changed.rowcount != 1:
                raise Conflict("The application changed meanwhile; reload it and try again.")
            await audit_case(
                conn, principal, row.id, "application.grid_corrected", {"from": row.grid, "to": code, "reason": reason}
            )
        return await self.case(principal, application_id)

    # -- coverage -----------------------------------------------------------------------------------------------
    async def coverage(self, principal: Principal, unit: str | None, start: dt.date, end: dt.date) -> CoverageReport:
        scope_unit = unit or principal.unit or "430302000000"
        if principal.role is Role.GRID_WORKER:
            scope_unit = principal.unit or ""
        elif principal.unit and not unit_covers(principal.unit, scope_unit):
            raise NotFound(f"No unit {scope_unit!r} in your scope.")
        if self.catalog.unit(scope_unit) is None:
            raise NotFound(f"No unit {scope_unit!r} in your scope.")
        today = local_date(self.now())
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    select(
                        grid_tasks.c.application_id,
                        grid_tasks.c.grid,
                        grid_tasks.c.due_on,
                        grid_tasks.c.completed_on,
                        grid_tasks.c.status,
                    ).where(
                        grid_tasks.c.grid.like(unit_prefix(scope_unit) + "%"),
                        grid_tasks.c.due_on >= start,
                        grid_tasks.c.due_on <= end,
                        grid_tasks.c.application_id.is_not(None),
                    )
                )
            )
        by_grid: dict[str, list[Any]] = {}
        for r in rows:
            by_grid.setdefault(r.grid, []).append(r)
        grids = []
        for code in sorted(by_grid):
            covered = case_coverage(by_grid[code], start, end)
            cases = len(covered)
            done = sum(covered.values())
            g = self.catalog.unit(code)
            grids.append(
                GridCoverage(
                    grid=code,
                    name=g.name if g else code,
                    cases=cases,
                    covered=done,
                    coverage=done / cases if cases else None,
                    open_overdue=sum(1 for r in by_grid[code] if r.status == "open" and r.due_on < today),
                )
            )
        return CoverageReport(unit=scope_unit, start=start, end=end, grids=grids)


__all__ = ["EvaluationRecorder", "GridService", "check_purpose", "grid_scope", "sees_grid"]
