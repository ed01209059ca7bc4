"""What intake, lifecycle and tracking share about one case: loading it within the caller's scope, its ETag,
its local dates and times, and how its materials are shown.

Scope rule: an application outside the caller's scope answers 404 exactly like a missing one. Clerks see what
their unit filed or handles (a community's 代办 is visible to the community and the street); officers see their
department's items; supervisors and admins see all. A system token with the ``status:read`` scope sees every case
that left the draft stage (a draft is the window's unfinished work, not yet a case), in the masked form only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.identity.principal import Principal, Role
from gateway.intake.schemas import CertificateView, FileView, MaterialView
from gateway.intake.tables import application_materials, applications
from gateway.lifecycle.clock import ClockState
from gateway.problems import NotFound, PreconditionFailed

#: The district keeps China Standard Time (UTC+8, no daylight saving): acceptance dates and deadlines are local.
LOCAL_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


def local_date(at: dt.datetime) -> dt.date:
    return at.astimezone(LOCAL_TZ).date()


def local_time(at: dt.datetime) -> dt.datetime:
    """A timestamp as shown to people: ISO 8601 with the +08:00 offset."""
    return at.astimezone(LOCAL_TZ)


async def audit_case(
    conn: AsyncConnection, principal: Principal, application_id: str, action: str, detail: dict[str, Any]
) -> None:
    """Record what a member of staff did to a case, in the caller's transaction (purpose: the case itself)."""
    await audit.append(
        conn,
        actor=principal.actor,
        role=principal.role.value,
        action=action,
        object_type="application",
        object_id=application_id,
        purpose=f"application:{application_id}",
        detail=detail,
    )


def not_found(application_id: str) -> NotFound:
    return NotFound(f"No application {application_id!r} in your scope.")


#: The scope an external system needs to read cases' status (the case, the list, the status-event feed).
STATUS_READ_SCOPE = "status:read"


def visible(principal: Principal, row: Row[Any]) -> bool:
    if principal.role is Role.SYSTEM:
        return principal.has_scope(STATUS_READ_SCOPE) and row.status != "draft"
    return principal.can_see(units=(row.filing_unit, row.handling_unit), department=row.department)


async def load_application(
    conn: AsyncConnection, application_id: str, principal: Principal, *, for_update: bool = False
) -> Row[Any]:
    """The application row when it exists and the caller may see it; `NotFound` otherwise (same answer)."""
    query = select(applications).where(applications.c.id == application_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None or not visible(principal, row):
        raise not_found(application_id)
    return row


# --- ETag / If-Match --------------------------------------------------------------------------------------
def etag(row: Row[Any]) -> str:
    """A strong ETag from the row version (bumped by every change of the application or its materials)."""
    return f'"{row.id}.{row.version}"'


def check_if_match(row: Row[Any], if_match: str | None) -> None:
    """Optimistic concurrency: a stale ``If-Match`` answers 412; without the header the change goes ahead.

    ``*`` matches any existing application; weak tags (``W/"…"``) compare by their value.
    """
    if if_match is None or not if_match.strip():
        return
    current = etag(row)
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == current:
            return
    raise PreconditionFailed(
        "The application changed since you read it; reload it and try again.",
        extra={"etag": current},
        headers={"ETag": current},
    )


# --- clock ------------------------------------------------------------------------------------------------
def clock_state(row: Row[Any]) -> ClockState | None:
    """The stored clock, or None before acceptance."""
    if row.deadline is None or row.promised_days is None:
        return None
    return ClockState(
        promised_days=row.promised_days,
        deadline=row.deadline,
        deadline_estimated=bool(row.deadline_estimated),
        paused_on=row.paused_on,
        days_left_at_pause=row.days_left_at_pause,
        stopped_on=row.stopped_on,
    )


def clock_columns(state: ClockState) -> dict[str, Any]:
    return {
        "promised_days": state.promised_days,
        "deadline": state.deadline,
        "deadline_estimated": state.deadline_estimated,
        "paused_on": state.paused_on,
        "days_left_at_pause": state.days_left_at_pause,
        "stopped_on": state.stopped_on,
    }


# --- materials --------------------------------------------------------------------------------------------
def material_view(row: Row[Any]) -> MaterialView:
    certificate = None
    if row.certificate:
        certificate = msgspec.convert(row.certificate, CertificateView)
    file = None
    if row.file_sha256:
        file = FileView(sha256=row.file_sha256, content_type=row.file_type or "", size=row.file_size or 0)
    return MaterialView(
        key=row.key,
        name=row.name,
        required=row.required,
        source=row.source,
        state=row.state,
        certificate_type=row.certificate_type,
        reason=row.reason,
        certificate=certificate,
        file=file,
    )


async def load_materials(conn: AsyncConnection, application_id: str) -> list[Row[Any]]:
    rows = await conn.execute(
        select(application_materials)
        .where(application_materials.c.application_id == application_id)
        .order_by(application_materials.c.position)
    )
    return list(rows)


def missing_required(materials: list[MaterialView]) -> list[MaterialView]:
    """Required materials neither prefilled from a certificate nor provided as a scan."""
    return [m for m in materials if m.required and m.state not in ("prefilled", "provided")]


__all__ = [
    "LOCAL_TZ",
    "STATUS_READ_SCOPE",
    "check_if_match",
    "clock_columns",
    "clock_state",
    "etag",
    "load_application",
    "load_materials",
    "local_date",
    "local_time",
    "material_view",
    "missing_required",
    "not_found",
    "visible",
]
