"""Case lifecycle: reading an application, moving it through `gateway.cases.machine`, and officers' queues.

A transition is one transaction: the status (with an optimistic version check), the clock, the status history
and the audit record. Every refusal — unknown status (422), a move the table does not allow for this caller
(409 with ``allowed``), a missing note or result (422), a stale ``If-Match`` (412) — is decided before it.
``If-Match`` is optional: without it, a concurrent change still cannot be overwritten, because the update only
applies to the version that was checked (the loser gets 409 and reloads).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from catalog.calendar import DISTRICT_TZ, WorkingCalendar, local_date, local_time
from catalog.catalog import Catalog
from gateway.cases import clock
from gateway.cases.access import audit_case, check_if_match, load_application, scope_filter
from gateway.cases.clock import clock_columns, clock_state
from gateway.cases.history import NOTE_MAX_CHARS, HistoryEntry, clean_note, load_history, record_status
from gateway.cases.machine import (
    OPEN,
    STATUS_NAMES,
    STATUSES,
    Transition,
    allowed_targets,
    is_status,
    transition,
)
from gateway.cases.numbers import normalise_tracking_number, tracking_number_problem
from gateway.cases.tables import application_counts, application_history, applications
from gateway.cases.views import ItemRef, applicant_view, load_materials, material_view, missing_required
from gateway.events import outbox
from gateway.evidence.levels import level_problems, needed_levels
from gateway.evidence.results import ResultIssuer
from gateway.identity.principal import Principal, Role
from gateway.lifecycle.schemas import (
    RESULT_MAX_CHARS,
    ApplicationView,
    Queue,
    QueueEntry,
    TransitionIn,
)
from gateway.privacy.fields import FieldCipher
from gateway.problems import BadRequest, Conflict, FieldError, Unprocessable
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.storage.prepared import PreparedRead

QUEUE_MAX_LIMIT = 500
#: ``?status=``: one or more statuses separated by commas (the OpenAPI document states the same pattern).
STATUS_FILTER = re.compile(f"^(?:{'|'.join(STATUSES)})(?:,(?:{'|'.join(STATUSES)}))*$")


def scope_is_department(principal: Principal) -> bool:
    """Whether `scope_filter` limits the caller to one department's cases (officers, department systems)."""
    return (
        not principal.is_district_wide
        and principal.role in (Role.OFFICER, Role.DEPARTMENT)
        and bool(principal.department)
    )


def status_filter(raw: str | None) -> list[str]:
    """``?status=`` as a list of statuses; 400 naming ``status`` unless it is one or more separated by commas."""
    if raw is None:
        return []
    if STATUS_FILTER.match(raw) is None:
        raise BadRequest(
            "Unknown status filter.",
            errors=[FieldError("status", f"must be one or more of {', '.join(STATUSES)}, separated by commas")],
        )
    return raw.split(",")


#: The queue's order: earliest deadline first, cases without one (drafts) last by creation.
_QUEUE_ORDER = (applications.c.deadline.is_(None), applications.c.deadline, applications.c.created_at)
#: What a queue entry shows (and its clock): not the whole row — every datetime read is a conversion.
_QUEUE_COLUMNS = tuple(
    applications.c[name]
    for name in (
        "id", "status", "item_code", "item_name", "department", "filing_unit", "handling_unit",
        "applicant_name_masked", "created_at", "tracking_number", "accepted_at", *clock.COLUMNS,
    )
)  # fmt: skip


def _department_page() -> PreparedRead:
    """An officer's page of cases with a deadline and the department's total, as one prepared statement.

    The total is the sum of the department's `application_counts` (kept by triggers in every writing transaction,
    so exact in the statement's snapshot): a few rows instead of counting every case of the department."""
    department = applications.c.department == bindparam("department")
    counts = application_counts.c
    total = (
        select(func.coalesce(func.sum(counts.n), 0))
        .where(counts.department == bindparam("department"))
        .scalar_subquery()
    )
    return PreparedRead(
        select(*_QUEUE_COLUMNS, total.label("queue_total"))
        .where(department, applications.c.deadline.is_not(None))
        .order_by(applications.c.deadline, applications.c.created_at)
        .limit(bindparam("limit"))
        .offset(bindparam("offset")),
        name="lifecycle.department_page",
        # A deep page (a large offset) walks the index entries before it.
        step_budget=2000,
    )


#: The officer queue's usual page (no filters): one statement, read inline on SQLite (`Database.fetch`).
_DEPARTMENT_PAGE = _department_page()


class LifecycleService:
    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        calendar: WorkingCalendar,
        cipher: FieldCipher,
        now: Callable[[], dt.datetime] = utcnow,
        results: ResultIssuer | None = None,
    ) -> None:
        self.db = database
        self.catalog = catalog
        self.calendar = calendar
        self.cipher = cipher
        self.now = now
        #: Issues the district's e-certificate when an approved item's result is a certificate.
        self.results = results

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

    def _clock(self, row: Row[Any], today: dt.date) -> clock.ClockView | None:
        state = clock_state(row)
        return None if state is None else clock.view(self.calendar, state, today)

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
            applicant=applicant_view(row),
            purpose=None if redact else row.purpose,
            materials=materials,
            history=history,
            created_at=local_time(row.created_at),
            updated_at=local_time(row.updated_at),
            version=row.version,
            allowed_transitions=allowed_targets(row.status, principal.role.value),
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
        target = body.to
        allowed = [str(s) for s in allowed_targets(row.status, principal.role.value)]
        move = transition(row.status, target)
        if move is None or move.via != "transitions" or principal.role.value not in move.roles:
            raise Conflict(
                f"{row.status} → {target} is not allowed for a {principal.role.value}"
                + (f"; allowed: {', '.join(allowed)}." if allowed else "; nothing is allowed from here."),
                extra={"current_status": row.status, "allowed": allowed},
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
        """A resubmission brings corrected materials: at least one upload since the correction was requested, every
        required material in place, and each material present at the trust level the catalog asks for acceptance
        (the same rule as acceptance, `gateway.evidence.levels`)."""
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
                extra={"current_status": row.status, "allowed": ["withdrawn"]},
            )
        views = [material_view(m) for m in materials]
        missing = missing_required(views)
        if missing:
            raise Unprocessable(
                "Required materials are still missing.",
                errors=[FieldError(f"materials.{m.key}", f"{m.name} is required") for m in missing],
            )
        item = self.catalog.item(row.item_code)
        below = level_problems(item, views) if item is not None else []
        if below and item is not None:
            raise Unprocessable(
                f"{len(below)} material(s) below the trust level the catalog asks for acceptance.",
                errors=below,
                extra={"levels": needed_levels(item, [e.field.removeprefix("materials.") for e in below])},
            )

    async def transition(
        self,
        principal: Principal,
        application_id: str,
        body: TransitionIn,
        if_match: str | None = None,
        *,
        also: Callable[[AsyncConnection, Row[Any], HistoryEntry], Awaitable[None]] | None = None,
    ) -> tuple[ApplicationView, Row[Any]]:
        """``also`` runs inside the transition's transaction after the change (a department event's own record:
        both commit or neither)."""
        target = body.to
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
            await outbox.emit_status_change(
                conn, row, from_status=row.status, to_status=target, deadline=values.get("deadline"), at=now
            )
            detail: dict[str, Any] = {"from": row.status, "to": target}
            if "deadline" in values:
                detail["deadline"] = values["deadline"].isoformat()
                detail["clock"] = move.clock
            await audit_case(
                conn, principal, row.id, "status.changed", detail | ({"note": entry.note} if entry.note else {})
            )
            if target == "approved" and self.results is not None:
                # The result is itself a certificate: issued, signed and stored in this transaction.
                await self.results.issue(
                    conn, row=row, item=self.catalog.item(row.item_code), principal=principal, now=now
                )
            fresh = await load_application(conn, application_id, principal)
            if also is not None:
                await also(conn, fresh, entry)
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
            raise BadRequest("Unknown status.", errors=[FieldError("status", f"must be among: {', '.join(STATUSES)}")])
        if due not in (None, "", "soon", "overdue"):
            raise BadRequest("Unknown due filter.", errors=[FieldError("due", "must be soon or overdue")])
        if not 1 <= limit <= QUEUE_MAX_LIMIT or offset < 0:
            raise BadRequest("Bad paging.", errors=[FieldError("limit", f"1..{QUEUE_MAX_LIMIT}; offset 0 or more")])
        number = normalise_tracking_number(tracking_number) if tracking_number is not None else None
        if number is not None and (problem := tracking_number_problem(number)) is not None:
            raise BadRequest("Not a tracking number.", errors=[FieldError("tracking_number", problem)])
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
        where = and_(*conditions) if conditions else applications.c.id.is_not(None)
        entries: list[QueueEntry] = []
        page = None
        if scope_is_department(principal) and not wanted and number is None and not due:
            page = await self._department_page(principal, limit, offset)
        if page is not None:
            rows, total = page
        else:
            async with self.db.read() as conn:
                if due:
                    rows = list(await conn.execute(select(*_QUEUE_COLUMNS).where(where).order_by(*_QUEUE_ORDER)))
                    total = 0
                else:
                    rows, total = await self._queue_page(conn, where, limit, offset)
        item_refs: dict[tuple[str, str, str], ItemRef] = {}
        # A case's clock view depends only on its clock columns and today: rows in deadline order share them.
        clocks: dict[tuple[Any, ...], clock.ClockView | None] = {}
        for row in rows:
            clock_key = (
                row.promised_days, row.deadline, row.deadline_estimated, row.paused_on, row.days_left_at_pause,
                row.stopped_on,
            )  # fmt: skip
            try:
                clock_view = clocks[clock_key]
            except KeyError:
                clock_view = clocks[clock_key] = self._clock(row, today)
            if due == "soon" and not (clock_view and clock_view.due_soon):
                continue
            if due == "overdue" and not (clock_view and clock_view.overdue):
                continue
            key = (row.item_code, row.item_name, row.department)
            item = item_refs.get(key)
            if item is None:
                item = item_refs[key] = ItemRef(code=row.item_code, name=row.item_name, department=row.department)
            accepted_at = row.accepted_at
            entries.append(
                QueueEntry(
                    id=row.id,
                    status=row.status,
                    item=item,
                    filing_unit=row.filing_unit,
                    handling_unit=row.handling_unit,
                    applicant_name=row.applicant_name_masked,
                    created_at=row.created_at.astimezone(DISTRICT_TZ),
                    tracking_number=row.tracking_number,
                    accepted_at=accepted_at.astimezone(DISTRICT_TZ) if accepted_at else None,
                    deadline=row.deadline,
                    clock=clock_view,
                )
            )
        if due:
            total = len(entries)
            entries = entries[offset : offset + limit]
        return Queue(items=entries, total=total, limit=limit, offset=offset)

    async def _department_page(self, principal: Principal, limit: int, offset: int) -> tuple[list[Any], int] | None:
        """An officer's unfiltered page as one prepared statement (page and total in one snapshot, inline on
        SQLite); ``None`` when the page reaches past the cases with a deadline (or the queue is empty): the general
        path reads those."""
        rows = await self.db.fetch(_DEPARTMENT_PAGE, department=principal.department, limit=limit, offset=offset)
        if not rows:
            return None
        total = int(rows[0].queue_total)
        if len(rows) < limit and offset + len(rows) < total:
            return None
        return rows, total

    @staticmethod
    async def _queue_page(
        conn: AsyncConnection, where: ColumnElement[bool], limit: int, offset: int
    ) -> tuple[list[Any], int]:
        """One page of the queue in its order and the exact total, in as few statements as the page allows.

        Two keyset-friendly reads instead of one sort over every row in scope: the cases with a deadline in
        (deadline, created_at) order, then — only when the page reaches past them — those without one by creation.
        Each walks the index on (department, deadline, created_at) for an officer and stops after ``limit`` rows.
        The total rides on the first read as a scalar subquery (evaluated once, in the same statement, so the
        same snapshot as the page); it counts ``count(*)`` alone, which the database answers from its smallest
        covering index. The split point (cases with a deadline) is only needed when the page crosses it: then it
        is the rows the first read returned plus the offset, or — when the first read returned nothing — the
        total minus the cases without a deadline (few: drafts and refusals).
        """
        count = select(func.count()).select_from(applications).where(where).scalar_subquery()
        rows: list[Any] = list(
            await conn.execute(
                select(*_QUEUE_COLUMNS, count.label("queue_total"))
                .where(where, applications.c.deadline.is_not(None))
                .order_by(applications.c.deadline, applications.c.created_at)
                .limit(limit)
                .offset(offset)
            )
        )
        total = int(rows[0].queue_total) if rows else int((await conn.execute(select(count))).scalar_one())
        if len(rows) < limit and offset + len(rows) < total:
            if rows:
                with_deadline = offset + len(rows)
            else:
                without = (
                    await conn.execute(
                        select(func.count()).select_from(applications).where(where, applications.c.deadline.is_(None))
                    )
                ).scalar_one()
                with_deadline = total - int(without)
            rows += list(
                await conn.execute(
                    select(*_QUEUE_COLUMNS)
                    .where(where, applications.c.deadline.is_(None))
                    .order_by(applications.c.created_at)
                    .limit(limit - len(rows))
                    .offset(max(0, offset - with_deadline))
                )
            )
        return rows, total


__all__ = ["QUEUE_MAX_LIMIT", "RESULT_MAX_CHARS", "STATUS_FILTER", "LifecycleService", "status_filter"]
