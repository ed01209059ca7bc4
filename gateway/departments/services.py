"""Applying a department's event to a case: the lifecycle's transition (state machine, clock, history, audit) with
the department as the actor, and the event's own record in the same transaction.

Order of the answers: a known event id replays its first answer (nothing else is checked: the case may have moved
on since); a body that does not fit the event type is 422 naming the field; a case that is not one of the
department's items is 404, as a missing one; a move the state machine does not allow from the case's status is 409
with ``allowed`` (the event types possible now) and ``allowed_statuses``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_time
from gateway.cases.history import HistoryEntry
from gateway.cases.machine import Status, allowed_targets, transition
from gateway.departments.schemas import PROCEDURE_NAMES, DepartmentEventAnswer, DepartmentEventIn
from gateway.departments.tables import department_events
from gateway.identity.principal import Principal
from gateway.lifecycle.schemas import TransitionIn
from gateway.lifecycle.services import LifecycleService
from gateway.problems import Conflict, FieldError, Unprocessable
from gateway.storage.database import Database
from gateway.storage.metadata import new_id

ROLE: Final = "department"

#: Event type -> the status it moves the case to.
TARGETS: Final[dict[str, Status]] = {
    "in_review": "in_review",
    "correction_required": "correction_required",
    "special_procedure_started": "special_procedure",
    "special_procedure_ended": "in_review",
    "approved": "approved",
    "denied": "denied",
    "delivered": "delivered",
}
#: Events that name one way into their target: "in review" starts the review, "special procedure ended" ends one.
SOURCES: Final[dict[str, frozenset[str]]] = {
    "in_review": frozenset({"accepted"}),
    "special_procedure_ended": frozenset({"special_procedure"}),
}

_ENCODER = msgspec.json.Encoder()


def allowed_events(status: str) -> list[str]:
    """The event types a department may send for a case in ``status`` (in `TARGETS` order)."""
    out: list[str] = []
    for kind, target in TARGETS.items():
        move = transition(status, target)
        if move is None or move.via != "transitions" or ROLE not in move.roles:
            continue
        if kind in SOURCES and status not in SOURCES[kind]:
            continue
        out.append(kind)
    return out


def transition_for(event: DepartmentEventIn) -> TransitionIn:
    """The officer-style transition the event stands for; 422 naming each field that does not fit its type."""
    errors: list[FieldError] = []
    kind = event.type
    note = (event.note or "").strip() or None
    result = (event.result or "").strip() or None
    if kind == "correction_required":
        if not event.missing:
            errors.append(FieldError("missing", "list what the applicant must bring (at least one entry)"))
        note = "需补齐补正：" + "；".join(m.strip() for m in event.missing) + (f"。{note}" if note else "")
    elif event.missing:
        errors.append(FieldError("missing", "is only sent with correction_required"))
    if kind == "special_procedure_started":
        if event.procedure is None:
            errors.append(FieldError("procedure", "say which special procedure ({kind, reason}) starts"))
        else:
            name = PROCEDURE_NAMES[event.procedure.kind]
            note = f"【{name}】{event.procedure.reason.strip()}" + (f"。{note}" if note else "")
    elif event.procedure is not None:
        errors.append(FieldError("procedure", "is only sent with special_procedure_started"))
    if kind in ("approved", "denied"):
        if not result:
            errors.append(FieldError("result", f"is required for {kind}: the decision (审批结果)"))
        if kind == "denied" and not note:
            errors.append(FieldError("note", "is required for denied: the reason"))
    elif result:
        errors.append(FieldError("result", f"is only sent with approved or denied, not with {kind}"))
    if errors:
        raise Unprocessable(f"The {kind} event needs other fields.", errors=errors)
    return TransitionIn(to=TARGETS[kind], note=note, result=result)


class DepartmentEventService:
    def __init__(self, *, database: Database, lifecycle: LifecycleService) -> None:
        self.db = database
        self.lifecycle = lifecycle

    async def _recorded(self, department: str, event_id: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(department_events.c.answer).where(
                        department_events.c.department == department, department_events.c.event_id == event_id
                    )
                )
            ).first()
        return None if row is None else dict(row.answer)

    def _conflict(self, event: DepartmentEventIn, status: str) -> Conflict:
        allowed = allowed_events(status)
        return Conflict(
            f"A {event.type} event is not possible while the case is {status}"
            + (f"; possible now: {', '.join(allowed)}." if allowed else "; no event is possible now."),
            extra={
                "current_status": status,
                "allowed": allowed,
                "allowed_statuses": [str(s) for s in allowed_targets(status, ROLE)],
            },
        )

    async def apply(self, principal: Principal, event: DepartmentEventIn) -> tuple[dict[str, Any], bool]:
        """The answer (a `DepartmentEventAnswer` as JSON) and whether it is a replay."""
        department = principal.department or ""
        first = await self._recorded(department, event.event_id)
        if first is not None:
            return first, True
        body = transition_for(event)
        stored: dict[str, Any] = {}

        async def record(conn: AsyncConnection, row: Row[Any], entry: HistoryEntry) -> None:
            if event.type in SOURCES and entry.from_status not in SOURCES[event.type]:
                raise self._conflict(event, entry.from_status or "")  # rolls the transition back
            answer = DepartmentEventAnswer(
                event_id=event.event_id,
                type=event.type,
                application_id=row.id,
                status=row.status,
                tracking_number=row.tracking_number,
                recorded_at=local_time(entry.at),
            )
            stored.update(msgspec.json.decode(_ENCODER.encode(answer)))
            await conn.execute(
                insert(department_events).values(
                    id=new_id(),
                    department=department,
                    event_id=event.event_id,
                    application_id=row.id,
                    type=event.type,
                    status=row.status,
                    received_at=entry.at,
                    answer_status=200,
                    answer=stored,
                )
            )

        try:
            await self.lifecycle.transition(principal, event.application_id, body, also=record)
        except IntegrityError:
            # The same event id, applied meanwhile by a concurrent delivery: its answer stands, this one rolled back.
            first = await self._recorded(department, event.event_id)
            if first is None:
                raise
            return first, True
        except Conflict as exc:
            first = await self._recorded(department, event.event_id)
            if first is not None:
                return first, True
            status = (exc.extra or {}).get("current_status")
            if isinstance(status, str):
                raise self._conflict(event, status) from None
            raise
        return stored, False


__all__ = ["SOURCES", "TARGETS", "DepartmentEventService", "allowed_events", "transition_for"]
