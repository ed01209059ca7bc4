"""The status-event feed: every status a case reached, in the order it was reached, for polling by cursor.

``GET /api/v1/status-events?after=<seq>`` answers the events after ``seq`` and ``next_after``, the cursor to send
next time; an external system that keeps its cursor sees every change exactly once, in order, without a
subscription (notifications by polling).

Why the cursor is the audit log's sequence number: a status change writes its history row and its audit record
(``application.created`` → draft, ``application.accepted``, ``status.changed``) in one transaction, and audit
records are appended under one lock held until commit (`gateway.audit.log`). So ``seq`` is gap-free and records
become visible strictly in ``seq`` order: once a reader sees record N, every record before N is committed. A
timestamp or a plain auto-increment would not promise that (a transaction that drew a lower number may commit
later, and a poller that had moved past it would never see it). The history table itself has no order across
cases, only a position per case.

Scope: the caller's cases (`gateway.lifecycle.services.scope_filter`); a system with ``status:read`` sees every
case that left the draft stage, and no draft events. Events carry no personal data and no free text (notes are
left out): the case id, tracking number, item, handling unit, the status reached, the one left and when.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from sqlalchemy import and_, func, select

from catalog.calendar import local_time
from gateway.audit.tables import audit_records
from gateway.cases.access import scope_filter
from gateway.cases.machine import STATUS_NAMES, Status, is_status
from gateway.cases.tables import applications
from gateway.cases.views import ItemRef
from gateway.identity.principal import Principal, Role
from gateway.problems import BadRequest, FieldError
from gateway.storage.database import Database

EVENTS_MAX_LIMIT = 500
#: Audit actions that record a status reached (and the status each one means when it names none).
STATUS_ACTIONS = {"application.created": "draft", "application.accepted": "accepted", "status.changed": None}
_NAMES: dict[str, str] = {str(k): v for k, v in STATUS_NAMES.items()}


class StatusEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One status a case reached."""

    #: The cursor position of this event (send the last one you processed as ``after``).
    seq: int
    application_id: str
    status: Status
    status_name: str
    at: dt.datetime
    item: ItemRef
    handling_unit: str
    from_status: Status | None = None
    #: The case's tracking number (absent while it has none: before acceptance, or when not accepted).
    tracking_number: str | None = None
    #: The deadline this change set (acceptance, or the clock resuming after a pause).
    deadline: dt.date | None = None


class StatusEventPage(msgspec.Struct, kw_only=True):
    """``GET /api/v1/status-events``: events after the cursor, oldest first."""

    events: list[StatusEvent]
    #: The cursor for the next call: everything up to it has been considered for this caller.
    next_after: int
    #: More events are waiting: call again with ``after=next_after`` right away.
    has_more: bool


def _event(row: Any) -> StatusEvent | None:
    detail: dict[str, Any] = dict(row.detail or {})
    status = STATUS_ACTIONS.get(row.action) or detail.get("to")
    if not is_status(status):
        return None
    from_status = "draft" if row.action == "application.accepted" else detail.get("from")
    deadline = detail.get("deadline")
    return StatusEvent(
        seq=int(row.seq),
        application_id=row.application_id,
        status=status,
        status_name=_NAMES.get(status, status),
        at=local_time(row.at),
        item=ItemRef(code=row.item_code, name=row.item_name, department=row.department),
        handling_unit=row.handling_unit,
        from_status=from_status if is_status(from_status) else None,
        tracking_number=row.tracking_number,
        deadline=dt.date.fromisoformat(deadline) if isinstance(deadline, str) else None,
    )


class StatusEventFeed:
    def __init__(self, *, database: Database) -> None:
        self.db = database

    async def page(self, principal: Principal, *, after: int = 0, limit: int = 100) -> StatusEventPage:
        """The caller's status events with ``seq > after``, oldest first, at most ``limit``."""
        if after < 0:
            raise BadRequest("Bad cursor.", errors=[FieldError("after", "must be 0 or a next_after you were given")])
        if not 1 <= limit <= EVENTS_MAX_LIMIT:
            raise BadRequest("Bad page size.", errors=[FieldError("limit", f"must be 1..{EVENTS_MAX_LIMIT}")])
        actions = [a for a in STATUS_ACTIONS if not (principal.role is Role.SYSTEM and a == "application.created")]
        a, c = audit_records.c, applications.c
        conditions = [a.object_type == "application", a.action.in_(actions)]
        scope = scope_filter(principal)
        if scope is not None:
            conditions.append(scope)
        async with self.db.read() as conn:
            # The head first, then only records up to it: on PostgreSQL each statement reads its own snapshot,
            # and every record up to a visible head is committed (see the module docstring).
            head = int((await conn.execute(select(func.coalesce(func.max(a.seq), 0)))).scalar_one())
            rows = list(
                await conn.execute(
                    select(
                        a.seq,
                        a.at,
                        a.action,
                        a.detail,
                        c.id.label("application_id"),
                        c.item_code,
                        c.item_name,
                        c.department,
                        c.handling_unit,
                        c.tracking_number,
                    )
                    .select_from(audit_records.join(applications, c.id == a.object_id))
                    .where(a.seq > after, a.seq <= head, and_(*conditions))
                    .order_by(a.seq)
                    .limit(limit + 1)
                )
            )
        has_more = len(rows) > limit
        rows = rows[:limit]
        events = [e for e in (_event(r) for r in rows) if e is not None]
        # A full page resumes after its last event; otherwise everything up to the head was considered.
        next_after = int(rows[-1].seq) if has_more else max(after, head)
        return StatusEventPage(events=events, next_after=next_after, has_more=has_more)


__all__ = ["EVENTS_MAX_LIMIT", "STATUS_ACTIONS", "StatusEvent", "StatusEventFeed", "StatusEventPage"]
