"""`emit`: write a case event into the outbox, inside the transaction of the change it describes.

Call it on the connection of an open `Database.transaction()`, after the change (and before the audit record is
fine too: both commit or neither does)::

    from gateway.events import outbox, types

    async with db.transaction() as conn:
        ...                                            # the change itself (row locked or conditional)
        await outbox.emit(conn, types.APPLICATION_ACCEPTED, row, {"status": "accepted", "tracking_number": n})

``case`` is the application row as read in the transaction (anything with ``id``, ``item_code``, ``department``,
``filing_unit``, ``handling_unit``, and optionally ``tracking_number`` and ``status``: a `Row` of
``applications``, or a `CaseRef`). ``data`` adds to, or overrides, what the event takes from the row — pass the
status the change reached, since a row read before the update still shows the old one.

Payloads are thin: ids, statuses, item and unit codes, dates. Keys that would carry personal data or free text
(names, ID and phone numbers, addresses, notes, comments, results) are refused with `ValueError`: a receiver
fetches details with its own scoped token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import types
from gateway.events.tables import outbox_events
from gateway.storage.metadata import new_id, utcnow

#: Statuses that complete a case (办结): a move to one also emits ``application.completed``.
COMPLETED_STATUSES = frozenset({"approved", "denied"})

#: Keys never allowed in an event's data: personal data and free text.
FORBIDDEN_KEYS = frozenset(
    {
        "applicant",
        "name",
        "applicant_name",
        "id_number",
        "phone",
        "address",
        "note",
        "notes",
        "comment",
        "result",
        "outcome",
        "purpose",
    }
)

#: Types a data value may have (JSON scalars; dates are written as ISO 8601).
_Scalar = str | int | float | bool | None


class CaseLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def item_code(self) -> str: ...
    @property
    def department(self) -> str: ...
    @property
    def filing_unit(self) -> str: ...
    @property
    def handling_unit(self) -> str: ...


class CaseRef(msgspec.Struct, frozen=True, kw_only=True):
    """A case as an event needs it, for callers that hold no row of ``applications``."""

    id: str
    item_code: str
    department: str
    filing_unit: str
    handling_unit: str
    tracking_number: str | None = None
    status: str | None = None


def _value(key: str, value: Any) -> _Scalar | list[_Scalar]:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_value(key, v) for v in value]  # type: ignore[misc]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"event data {key!r}: {type(value).__name__} is not a JSON scalar, date or list")


def event_data(case: CaseLike, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event's ``data``: the case's ids, status and item, then ``data`` (checked: no personal data)."""
    base: dict[str, Any] = {
        "application_id": case.id,
        "tracking_number": getattr(case, "tracking_number", None),
        "status": getattr(case, "status", None),
        "item_code": case.item_code,
        "department": case.department,
        "handling_unit": case.handling_unit,
    }
    for key, value in (data or {}).items():
        if key in FORBIDDEN_KEYS:
            raise ValueError(f"event data {key!r}: personal data and free text stay out of events")
        base[key] = _value(key, value)
    return base


async def emit(
    conn: AsyncConnection,
    type: str,
    case: CaseLike,
    data: Mapping[str, Any] | None = None,
    *,
    at: dt.datetime | None = None,
) -> str:
    """Write one event of ``type`` about ``case`` into the outbox, in ``conn``'s transaction; returns its id."""
    if not types.is_event_type(type):
        raise ValueError(f"{type!r} is not an event type (gateway.events.types)")
    if not conn.in_transaction():
        raise RuntimeError("emit runs inside Database.transaction(): the event commits with its change")
    event_id = new_id()
    await conn.execute(
        _INSERT,
        {
            "id": event_id,
            "type": type,
            "application_id": case.id,
            "item_code": case.item_code,
            "department": case.department,
            "filing_unit": case.filing_unit,
            "handling_unit": case.handling_unit,
            "data": event_data(case, data),
            "created_at": at or utcnow(),
        },
    )
    return event_id


_INSERT = outbox_events.insert()


async def emit_status_change(
    conn: AsyncConnection,
    case: CaseLike,
    *,
    from_status: str,
    to_status: str,
    deadline: dt.date | None = None,
    at: dt.datetime | None = None,
) -> None:
    """A case moved from one status to another: ``application.status_changed``, and ``application.completed``
    too when the move completes it (approved or denied)."""
    data: dict[str, Any] = {"status": to_status, "from_status": from_status}
    if deadline is not None:
        data["deadline"] = deadline
    await emit(conn, types.APPLICATION_STATUS_CHANGED, case, data, at=at)
    if to_status in COMPLETED_STATUSES and from_status not in COMPLETED_STATUSES:
        await emit(conn, types.APPLICATION_COMPLETED, case, {"status": to_status}, at=at)


__all__ = ["COMPLETED_STATUSES", "FORBIDDEN_KEYS", "CaseLike", "CaseRef", "emit", "emit_status_change", "event_data"]
