"""Case lifecycle: reading an application, moving it through `gateway.lifecycle.machine`, officers' queues and the
supervisor's summary.

A transition is one transaction: the status (with an optimistic version check), the clock, the status history
and the audit record. Every refusal — unknown status (422), a move the table does not allow for this caller
(409 with ``allowed``), a missing note or result (422), a stale ``If-Match`` (412) — is decided before it.
``If-Match`` is optional: without it, a concurrent change still cannot be overwritten, because the update only
applies to the version that was checked (the loser gets 409 and reloads).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from catalog.calendar import WorkingCalendar
from catalog.catalog import Catalog
from gateway.identity.principal import Principal, Role
from gateway.intake.cases import (
    STATUS_READ_SCOPE,
    audit_case,
    check_if_match,
    clock_columns,
    clock_state,
    load_application,
    load_materials,
    local_date,
    local_time,
    material_view,
    missing_required,
)
from gateway.intake.schemas import ApplicantView, ItemRef
from gateway.intake.tables import applications
from gateway.lifecycle import clock
from gateway.lifecycle.history import NOTE_MAX_CHARS, clean_note, load_history, record_status
from gateway.lifecycle.machine import (
    OPEN,
    STATUS_NAMES,
    STATUSES,
    Transition,
    allowed_targets,
    is_status,
    transition,
)
from gateway.lifecycle.schemas import (
    ApplicationView,
    ClockOut,
    Queue,
    QueueEntry,
    Summary,
    SummaryRow,
    TransitionIn,
)
from gateway.lifecycle.tables import application_history
from gateway.privacy.fields import FieldCipher
from gateway.problems import BadRequest, Conflict, FieldError, Unprocessable
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.tracking.numbers import normalise_tracking_number, tracking_number_problem

RESULT_MAX_CHARS = 2000
QUEUE_MAX_LIMIT = 500

DueFilter = str  # "soon" | "overdue"


def clock_out(view: clock.ClockView) -> ClockOut:
    return ClockOut(
        promised_days=view.promised_days,
        deadline=view.deadline,
        deadline_estimated=view.deadline_estimated,
        working_days_used=view.working_days_used,
        working_days_left=view.working_days_left,
        paused=view.paused,
        stopped=view.stopped,
        due_soon=view.due_soon,
        overdue=view.overdue,
    )


def scope_filter(principal: Principal) -> ColumnElement[bool] | None:
    """The SQL form of `Principal.can_see` for lists (None: district-wide)."""
    if principal.is_district_wide:
        return None
    if principal.role is Role.CLERK and principal.unit:
        return or_(applications.c.filing_unit == principal.unit, applications.c.handling_unit == principal.unit)
    if principal.role is Role.OFFICER and principal.department:
        return applications.c.department == principal.department
    if principal.role is Role.SYSTEM and principal.has_scope(STATUS_READ_SCOPE):
        return applications.c.status != "draft"
    return applications.c.id.is_(None)  # sees nothing


class LifecycleService:
    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        calendar: WorkingCalendar,
        cipher: FieldCipher,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.catalog = catalog
        self.calendar = calendar
        self.cipher = cipher
        self.now = now

    # -- reading ---------------------------------------------------------------------------------------------
    def _item_ref(self, row: Row[Any]) -> ItemRef:
        item = self.catalog.item(row.item_code)
        promised = row.promised_days if row.promised_days is not None else (item.promised_days if item else None)
        return ItemRef(
            code=row.item_code,
            name=row.item_name,
            department=row.department,
            department_name=self.catalog.department_name(row.department),
            promised_days=promised,
        )

    def _clock(self, row: Row[Any], today: dt.date) -> ClockOut | None:
        state = clock_state(row)
        return None if state is None else clock_out(clock.view(self.calendar, state, today))

    @staticmethod
    def _applicant(row: Row[Any]) -> ApplicantView:
        """Masked forms stored at intake: showing a case never decrypts personal data."""
        return ApplicantView(
            name=row.applicant_name_masked,
            id_number=row.applicant_id_number_masked,
            phone=row.applicant_phone_masked,
        )

    async def view_in(self, conn: AsyncConnection, row: Row[Any], principal: Principal) -> ApplicationView:
        today = local_date(self.now())
        materials = [material_view(m) for m in await load_materials(conn, row.id)]
        history = await load_history(conn, row.id)
        # Another system gets the case's status, not what people typed: notes, the decision text and the purpose
        # are free text that may name the applicant or others.
        redact = principal.role is Role.SYSTEM
        for entry in history:
            entry.at = local_time(entry.at)
            if redact:
                entry.note = None
        return ApplicationView(
            id=row.id,
            status=row.status,
            status_name=STATUS_NAMES.get(row.status, row.status),
            item=self._item_ref(row),
            filing_unit=row.filing_unit,
            handling_unit=row.handling_unit,
            grid=row.grid,
            applicant=self._applicant(row),
            purpose=None if redact else row.purpose,
            materials=materials,
            history=history,
            created_at=local_time(row.created_at),
            updated_at=local_time(row.updated_at),
            version=row.version,
            allowed_transitions=[str(s) for s in allowed_targets(row.status, principal.role.value)],
            tracking_number=row.tracking_number,
            accepted_at=local_time(row.accepted_at) if row.accepted_at else None,
            deadline=row.deadline,
            deadline_estimated=bool(row.deadline_estimated),
            clock=self._clock(row, today),
            result=None if redact else row.result,
        )

    async def get(self, principal: Principal, application_id: str) -> tuple[ApplicationView, Row[Any]]:
        """The application (404 outside the caller's scope) and its row (for the ETag)."""
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            return await self.view_in(conn, row, principal), row

    # -- transitions -----------------------------------------------------------------------------------------
    def _check(self, row: Row[Any], principal: Principal, body: TransitionIn, if_match: str | None) -> Transition:
        check_if_match(row, if_match)
        target = body.to.strip()
        allowed = [str(s) for s in allowed_targets(row.status, principal.role.value)]
        move = transition(row.status, target)
        if move is None or move.via != "transitions" or principal.role.value not in move.roles:
            raise Conflict(
                f"{row.status} → {target} is not allowed for a {principal.role.value}"
                + (f"; allowed: {', '.join(allowed)}." if allowed else "; nothing is allowed from here."),
                extra={"status": row.status, "allowed": allowed},
            )
        errors: list[FieldError] = []
        note = clean_note(body.note)
        if move.note_required and not note:
            errors.append(FieldError("note", f"is required for {target}: say why, for the applicant and the record"))
        if body.note and len(body.note) > NOTE_MAX_CHARS:
            errors.append(FieldError("note", f"is too long (at most {NOTE_MAX_CHARS} characters)"))
        result = (body.result or "").strip()
        if move.result_required and not result:
            errors.append(FieldError("result", f"is required for {target}: the decision (审批结果)"))
        if len(result) > RESULT_MAX_CHARS:
            errors.append(FieldError("result", f"is too long (at most {RESULT_MAX_CHARS} characters)"))
        if result and not move.result_required:
            errors.append(FieldError("result", f"is only given when completing (approved or denied), not for {target}"))
        if errors:
            raise Unprocessable(f"The move to {target} needs more information.", errors=errors)
        return move

    async def _check_resubmission(self, conn: AsyncConnection, row: Row[Any]) -> None:
        """A resubmission brings corrected materials: at least one upload since the correction was requested, and
        every required material in place."""
        since = (
            await conn.execute(
                select(func.max(application_history.c.at)).where(
                    application_history.c.application_id == row.id,
                    application_history.c.status == "correction_required",
                )
            )
        ).scalar_one()
        materials = await load_materials(conn, row.id)
        uploaded_since = any(m.file_sha256 and since is not None and m.updated_at >= since for m in materials)
        if not uploaded_since:
            raise Conflict(
                "Upload the corrected materials before resubmitting.",
                extra={"status": row.status, "allowed": ["withdrawn"]},
            )
        views = [material_view(m) for m in materials]
        missing = missing_required(views)
        if missing:
            raise Unprocessable(
                "Required materials are still missing.",
                errors=[FieldError(f"materials.{m.key}", f"{m.name} is required") for m in missing],
            )

    async def transition(
        self, principal: Principal, application_id: str, body: TransitionIn, if_match: str | None = None
    ) -> tuple[ApplicationView, Row[Any]]:
        target = body.to.strip()
        if not is_status(target):
            raise Unprocessable(
                f"{target!r} is not a status.",
                errors=[FieldError("to", f"must be one of: {', '.join(STATUSES)}")],
            )
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            move = self._check(row, principal, body, if_match)
            if move.needs_new_upload:
                await self._check_resubmission(conn, row)
        now = self.now()
        today = local_date(now)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal, for_update=True)
            move = self._check(row, principal, body, if_match)
            if move.needs_new_upload:
                await self._check_resubmission(conn, row)
            values: dict[str, Any] = {"status": target, "version": row.version + 1, "updated_at": now}
            state = clock_state(row)
            if state is not None:
                effects = {"pause": clock.pause, "resume": clock.resume, "stop": clock.stop}
                effect = effects.get(move.clock)
                if effect is not None:
                    values.update(clock_columns(effect(self.calendar, state, today)))
            result = (body.result or "").strip()
            if move.result_required:
                values["result"] = result
            updated = await conn.execute(
                update(applications)
                .where(applications.c.id == row.id, applications.c.version == row.version)
                .values(**values)
            )
            if updated.rowcount != 1:
                raise Conflict("The application changed meanwhile; reload it and try again.")
            entry = await record_status(
                conn,
                application_id=row.id,
                status=target,
                from_status=row.status,
                principal=principal,
                at=now,
                note=body.note,
            )
            detail: dict[str, Any] = {"from": row.status, "to": target}
            if "deadline" in values:
                detail["deadline"] = values["deadline"].isoformat()
                detail["clock"] = move.clock
            await audit_case(
                conn, principal, row.id, "status.changed", detail | ({"note": entry.note} if entry.note else {})
            )
            fresh = await load_application(conn, application_id, principal)
            return await self.view_in(conn, fresh, principal), fresh

    # -- queues ----------------------------------------------------------------------------------------------
    async def queue(
        self,
        principal: Principal,
        *,
        statuses: Iterable[str] = (),
        due: str | None = None,
        limit: int = 100,
        offset: int = 0,
        tracking_number: str | None = None,
    ) -> Queue:
        """The caller's applications, earliest deadline first (drafts, without one, last by creation);
        ``tracking_number`` finds the one case with that number (for systems that know only the number)."""
        wanted = [s for s in statuses if s]
        bad = [s for s in wanted if not is_status(s)]
        if bad:
            raise BadRequest(
                f"Unknown status {bad[0]!r}.", errors=[FieldError("status", f"must be among: {', '.join(STATUSES)}")]
            )
        if due not in (None, "", "soon", "overdue"):
            raise BadRequest(f"Unknown due filter {due!r}.", errors=[FieldError("due", "must be soon or overdue")])
        if not 1 <= limit <= QUEUE_MAX_LIMIT or offset < 0:
            raise BadRequest("Bad paging.", errors=[FieldError("limit", f"1..{QUEUE_MAX_LIMIT}; offset 0 or more")])
        number = normalise_tracking_number(tracking_number) if tracking_number is not None else None
        if number is not None and (problem := tracking_number_problem(number)) is not None:
            raise BadRequest(
                f"{tracking_number!r} is not a tracking number.", errors=[FieldError("tracking_number", problem)]
            )
        today = local_date(self.now())
        conditions: list[ColumnElement[bool]] = []
        scope = scope_filter(principal)
        if scope is not None:
            conditions.append(scope)
        if wanted:
            conditions.append(applications.c.status.in_(wanted))
        if number is not None:
            conditions.append(applications.c.tracking_number == number)
        if due:
            conditions.append(applications.c.status.in_(sorted(OPEN)))
        query = (
            select(applications)
            .where(and_(*conditions) if conditions else applications.c.id.is_not(None))
            .order_by(applications.c.deadline.is_(None), applications.c.deadline, applications.c.created_at)
        )
        entries: list[QueueEntry] = []
        total = 0
        async with self.db.read() as conn:
            if not due:
                count_query = select(func.count()).select_from(applications)
                if conditions:
                    count_query = count_query.where(and_(*conditions))
                total = int((await conn.execute(count_query)).scalar_one())
                query = query.limit(limit).offset(offset)
            rows = list(await conn.execute(query))
        for row in rows:
            clock_view = self._clock(row, today)
            if due == "soon" and not (clock_view and clock_view.due_soon):
                continue
            if due == "overdue" and not (clock_view and clock_view.overdue):
                continue
            entries.append(
                QueueEntry(
                    id=row.id,
                    status=row.status,
                    item=ItemRef(code=row.item_code, name=row.item_name, department=row.department),
                    filing_unit=row.filing_unit,
                    handling_unit=row.handling_unit,
                    applicant_name=row.applicant_name_masked,
                    created_at=local_time(row.created_at),
                    tracking_number=row.tracking_number,
                    accepted_at=local_time(row.accepted_at) if row.accepted_at else None,
                    deadline=row.deadline,
                    clock=clock_view,
                )
            )
        if due:
            total = len(entries)
            entries = entries[offset : offset + limit]
        return Queue(items=entries, total=total, limit=limit, offset=offset)

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
                        *[applications.c[c] for c in clock_columns_names()],
                    ).where(*conditions, applications.c.status.in_(sorted(OPEN)))
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
        ordered = sorted(rows.values(), key=lambda s: (s.unit, s.item_code))
        by_status: Counter[str] = Counter()
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
        )
        return Summary(as_of=today, rows=ordered, totals=totals)


def clock_columns_names() -> tuple[str, ...]:
    return ("promised_days", "deadline", "deadline_estimated", "paused_on", "days_left_at_pause", "stopped_on")


__all__ = ["LifecycleService", "clock_out", "scope_filter"]
