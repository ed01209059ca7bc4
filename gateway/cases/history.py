"""The status history of an application: written inside the transaction that changes the status.

Shared by intake (draft, accepted) and the transitions endpoint, so every status an application ever had is in
`application_history` with who set it, when and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.cases.machine import Status
from gateway.cases.tables import application_history
from gateway.identity.principal import Principal, Role
from gateway.privacy import mask_text
from gateway.storage.metadata import new_id

#: Notes are free text typed at a window: cap them, and mask ID and phone numbers typed into them.
NOTE_MAX_CHARS = 2000


class HistoryEntry(msgspec.Struct, kw_only=True):
    """One status an application reached (``by`` is the actor: ``<role>:<unit or department>`` when bound)."""

    status: Status
    at: dt.datetime
    by: str
    note: str | None = None
    from_status: Status | None = None


def clean_note(note: str | None) -> str | None:
    if note is None:
        return None
    text = mask_text(note.strip())
    return text or None


def actor_scope(principal: Principal) -> str | None:
    if principal.role is Role.CLERK:
        return principal.unit
    if principal.role in (Role.OFFICER, Role.DEPARTMENT):
        return principal.department
    return None


def actor_label(role: str | None, scope: str | None, actor: str) -> str:
    """How the history names who acted: the role and where they work (never a person's name)."""
    if role is None:
        return actor
    return f"{role}:{scope}" if scope else role


async def record_status(
    conn: AsyncConnection,
    *,
    application_id: str,
    status: Status,
    from_status: Status | None,
    principal: Principal,
    at: dt.datetime,
    note: str | None = None,
    position: int | None = None,
) -> HistoryEntry:
    """Append the status reached to the application's history (inside the caller's transaction).

    ``position`` is the entry's place when the caller knows it (an application created in this very transaction:
    1, then 2 — `record_statuses` writes such entries in one statement); otherwise it is read: one past the last
    entry's."""
    if position is None:
        position = (
            await conn.execute(
                select(func.coalesce(func.max(application_history.c.position), 0)).where(
                    application_history.c.application_id == application_id
                )
            )
        ).scalar_one() + 1
    row = status_row(
        application_id=application_id,
        status=status,
        from_status=from_status,
        principal=principal,
        at=at,
        note=note,
        position=position,
    )
    await conn.execute(_INSERT, row)
    return HistoryEntry(
        status=status,
        at=at,
        by=actor_label(principal.role.value, row["actor_scope"], principal.actor),
        note=row["note"],
        from_status=from_status,
    )


def status_row(
    *,
    application_id: str,
    status: Status,
    from_status: Status | None,
    principal: Principal,
    at: dt.datetime,
    position: int,
    note: str | None = None,
) -> dict[str, Any]:
    """The history row of one status reached (`record_status`, `record_statuses`)."""
    return {
        "id": new_id(),
        "application_id": application_id,
        "position": position,
        "status": status,
        "from_status": from_status,
        "at": at,
        "actor": principal.actor,
        "actor_role": principal.role.value,
        "actor_scope": actor_scope(principal),
        "note": clean_note(note),
    }


async def record_statuses(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write several `status_row`s with known positions in one statement (a case created and accepted at once)."""
    if rows:
        await conn.execute(_INSERT, list(rows))


_INSERT = insert(application_history)


async def load_history(conn: AsyncConnection, application_id: str) -> list[HistoryEntry]:
    rows = await conn.execute(
        select(application_history)
        .where(application_history.c.application_id == application_id)
        .order_by(application_history.c.position)
    )
    return [
        HistoryEntry(
            status=r.status,
            at=r.at,
            by=actor_label(r.actor_role, r.actor_scope, r.actor),
            note=r.note,
            from_status=r.from_status,
        )
        for r in rows
    ]


__all__ = [
    "NOTE_MAX_CHARS",
    "HistoryEntry",
    "actor_label",
    "clean_note",
    "load_history",
    "record_status",
    "record_statuses",
    "status_row",
]
