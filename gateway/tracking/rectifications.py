"""Rectifications (整改) of bad reviews: opened with the review, listed for supervisors, closed with the outcome.

A review of level 1 or 2 opens one, due 15 working days later (`open_rectification`, in the evaluation's
transaction). Supervisors list them (open, closed or all; earliest due first, overdue marked) and close each with
what was done and what the follow-up call (回访) found.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import WorkingCalendar, local_date, local_time
from gateway import audit
from gateway.cases import clock
from gateway.cases.access import scope_filter
from gateway.cases.history import clean_note
from gateway.cases.tables import applications
from gateway.cases.views import ItemRef
from gateway.events import outbox, types
from gateway.identity.principal import Principal
from gateway.problems import BadRequest, Conflict, FieldError, NotFound, Unprocessable
from gateway.storage.database import Database, locked
from gateway.storage.metadata import new_id, utcnow
from gateway.tracking.schemas import (
    LEVEL_NAMES,
    RECTIFICATION_WORKING_DAYS,
    CloseRectification,
    RectificationRef,
    Rectifications,
    RectificationView,
)
from gateway.tracking.tables import evaluations, rectifications


async def open_rectification(
    conn: AsyncConnection,
    calendar: WorkingCalendar,
    app: Row[Any],
    evaluation_id: str,
    level: int,
    now: dt.datetime,
) -> RectificationRef:
    """Open the rectification of a bad review, in the evaluation's transaction: due in 15 working days."""
    due = clock.start(calendar, local_date(now), RECTIFICATION_WORKING_DAYS)
    rectification_id = new_id()
    await conn.execute(
        rectifications.insert().values(
            id=rectification_id,
            application_id=app.id,
            evaluation_id=evaluation_id,
            status="open",
            level=level,
            item_code=app.item_code,
            department=app.department,
            handling_unit=app.handling_unit,
            opened_at=now,
            due_on=due.deadline,
            due_estimated=due.deadline_estimated,
        )
    )
    await outbox.emit(
        conn,
        types.RECTIFICATION_OPENED,
        app,
        {"rectification_id": rectification_id, "level": level, "due_on": due.deadline},
        at=now,
    )
    await audit.append(
        conn,
        actor="system",
        action="rectification.opened",
        object_type="rectification",
        object_id=rectification_id,
        purpose=f"application:{app.id}",
        detail={"level": level, "due_on": due.deadline.isoformat()},
    )
    return RectificationRef(id=rectification_id, due_on=due.deadline, due_estimated=due.deadline_estimated)


def already_closed(status: str) -> Conflict:
    return Conflict("This rectification is already closed.", extra={"current_status": status, "allowed": []})


class RectificationService:
    def __init__(
        self, *, database: Database, calendar: WorkingCalendar, now: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.db = database
        self.calendar = calendar
        self.now = now

    async def list(self, principal: Principal, *, status: str = "open") -> Rectifications:
        if status not in ("open", "closed", "all"):
            raise BadRequest("Unknown status filter.", errors=[FieldError("status", "must be open, closed or all")])
        today = local_date(self.now())
        query = (
            select(
                rectifications,
                applications.c.tracking_number,
                applications.c.item_name,
                evaluations.c.comment,
            )
            .join(applications, applications.c.id == rectifications.c.application_id)
            .join(evaluations, evaluations.c.id == rectifications.c.evaluation_id)
            .order_by(rectifications.c.due_on, rectifications.c.opened_at)
        )
        if status != "all":
            query = query.where(rectifications.c.status == status)
        scope = scope_filter(principal)
        if scope is not None:
            query = query.where(scope)
        async with self.db.read() as conn:
            rows = list(await conn.execute(query))
        items = []
        for r in rows:
            left = self.calendar.working_days_between(today, r.due_on)
            items.append(
                RectificationView(
                    id=r.id,
                    application_id=r.application_id,
                    tracking_number=r.tracking_number or "",
                    item=ItemRef(code=r.item_code, name=r.item_name),
                    department=r.department,
                    unit=r.handling_unit,
                    level=r.level,
                    level_name=LEVEL_NAMES.get(r.level, str(r.level)),
                    comment=r.comment,
                    status=r.status,
                    opened_at=local_time(r.opened_at),
                    due_on=r.due_on,
                    due_estimated=bool(r.due_estimated),
                    working_days_left=left,
                    overdue=r.status == "open" and today > r.due_on,
                    closed_at=local_time(r.closed_at) if r.closed_at else None,
                    outcome=r.outcome,
                )
            )
        return Rectifications(items=items, total=len(items))

    async def close(self, principal: Principal, rectification_id: str, body: CloseRectification) -> RectificationView:
        """Close a rectification with what was done and what the follow-up call (回访) found.

        Once: the row is locked (PostgreSQL) and the update applies only to an open rectification, so of concurrent
        closes exactly one succeeds (and writes the one audit record); the others answer 409.
        """
        outcome = clean_note(body.outcome)
        if not outcome:
            raise Unprocessable(
                "Say how the complaint was rectified.",
                errors=[FieldError("outcome", "is required: what was done and the result of the follow-up call")],
            )
        now = self.now()
        async with self.db.transaction() as conn:
            # Concurrent closes queue here (PostgreSQL); each sees the status the one before it committed.
            query = select(rectifications).where(rectifications.c.id == rectification_id)
            row = (await conn.execute(locked(query, conn))).first()
            if row is None:
                raise NotFound(f"No rectification {rectification_id!r}.")
            if row.status != "open":
                raise already_closed(row.status)
            closed = await conn.execute(
                update(rectifications)
                .where(rectifications.c.id == rectification_id, rectifications.c.status == "open")
                .values(status="closed", closed_at=now, closed_by=principal.actor, outcome=outcome)
            )
            if closed.rowcount != 1:  # closed meanwhile (the lock above makes this a second line of defence)
                raise already_closed("closed")
            # The case's row too: its events leave in the order its changes commit (gateway.events.outbox).
            case_query = select(applications).where(applications.c.id == row.application_id)
            case = (await conn.execute(locked(case_query, conn))).one()
            await outbox.emit(conn, types.RECTIFICATION_CLOSED, case, {"rectification_id": rectification_id}, at=now)
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="rectification.closed",
                object_type="rectification",
                object_id=rectification_id,
                purpose=f"application:{row.application_id}",
            )
        listing = await self.list(principal, status="all")
        for item in listing.items:
            if item.id == rectification_id:
                return item
        raise NotFound(f"No rectification {rectification_id!r}.")  # pragma: no cover - just written


__all__ = ["RectificationService", "open_rectification"]
