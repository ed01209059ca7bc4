"""Who may see a case, and loading it so: scope, the ETag and ``If-Match``, and the audit record of a change.

Scope rule: an application outside the caller's scope answers 404 exactly like a missing one. Clerks see what
their unit filed or handles (a community's 代办 is visible to the community and the street); officers see their
department's items; grid workers the cases recorded under their grid; a supervisor bound to a street or community
what lies under it; other supervisors and admins see all. A system token with the ``status:read`` scope sees every case
that left the draft stage (a draft is the window's unfinished work, not yet a case), in the masked form only.
`visible` decides for one row, `scope_filter` is the same rule as SQL for lists; keep them together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway import audit
from gateway.cases.tables import application_materials, applications
from gateway.identity.principal import Principal, Role, unit_prefix
from gateway.problems import NotFound, PreconditionFailed
from gateway.storage.database import locked


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
    return principal.can_see(units=(row.filing_unit, row.handling_unit), department=row.department, grid=row.grid)


async def load_application(
    conn: AsyncConnection, application_id: str, principal: Principal, *, for_update: bool = False
) -> Row[Any]:
    """The application row when it exists and the caller may see it; `NotFound` otherwise (same answer).

    ``for_update`` (in a write transaction): the row stays locked until the transaction ends (`locked`), so a change
    decided on its status or version cannot be overtaken by another process's.
    """
    query = select(applications).where(applications.c.id == application_id)
    if for_update:
        query = locked(query, conn)
    row = (await conn.execute(query)).first()
    if row is None or not visible(principal, row):
        raise not_found(application_id)
    return row


async def load_material(conn: AsyncConnection, application: Row[Any], key: str) -> Row[Any]:
    """The material ``key`` of an application already loaded (and so in scope); `NotFound` naming the item when the
    item has no such material."""
    material = (
        await conn.execute(
            select(application_materials).where(
                application_materials.c.application_id == application.id, application_materials.c.key == key
            )
        )
    ).first()
    if material is None:
        raise NotFound(f"Item {application.item_code} has no material {key!r}.")
    return material


def scope_filter(principal: Principal) -> ColumnElement[bool] | None:
    """`visible` as SQL, for lists (None: district-wide)."""
    if principal.is_district_wide:
        return None
    if principal.role is Role.CLERK and principal.unit:
        return or_(applications.c.filing_unit == principal.unit, applications.c.handling_unit == principal.unit)
    if principal.role in (Role.OFFICER, Role.DEPARTMENT) and principal.department:
        return applications.c.department == principal.department
    if principal.role is Role.GRID_WORKER and principal.unit:
        return applications.c.grid == principal.unit
    if principal.role is Role.SUPERVISOR and principal.unit:
        prefix = unit_prefix(principal.unit) + "%"
        return or_(
            applications.c.filing_unit.like(prefix),
            applications.c.handling_unit.like(prefix),
            applications.c.grid.like(prefix),
        )
    if principal.role is Role.SYSTEM and principal.has_scope(STATUS_READ_SCOPE):
        return applications.c.status != "draft"
    return applications.c.id.is_(None)  # sees nothing


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


__all__ = [
    "STATUS_READ_SCOPE",
    "audit_case",
    "check_if_match",
    "etag",
    "load_application",
    "load_material",
    "not_found",
    "scope_filter",
    "visible",
]
