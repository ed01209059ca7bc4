"""Claiming a periodic job's slot: ``INSERT … ON CONFLICT DO NOTHING``, the row count says who won.

On PostgreSQL concurrent inserts of one primary key wait for each other and all but one find the conflict; on
SQLite writers take turns. Rows older than `KEEP_SLOTS` slots of the same job are deleted by the winner.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.scheduling.tables import scheduled_runs
from gateway.storage import Database, utcnow

#: How many past slots of a job keep their row (for operators: who ran what, when).
KEEP_SLOTS = 1000


def this_process() -> str:
    """``host:pid``, as written in ``scheduled_runs.claimed_by``."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


async def claim(database: Database, job: str, slot: int, holder: str | None = None) -> bool:
    """True when this call claimed ``(job, slot)`` (and so must run it); False when another process had."""
    insert: Any = pg_insert if database.dialect == "postgresql" else sqlite_insert
    statement = (
        insert(scheduled_runs)
        .values(job=job, slot=slot, claimed_by=holder or this_process(), claimed_at=utcnow())
        .on_conflict_do_nothing(index_elements=[scheduled_runs.c.job, scheduled_runs.c.slot])
    )
    async with database.transaction() as conn:
        won = (await conn.execute(statement)).rowcount == 1
        if won:
            await conn.execute(
                delete(scheduled_runs).where(scheduled_runs.c.job == job, scheduled_runs.c.slot < slot - KEEP_SLOTS)
            )
    return won


__all__ = ["KEEP_SLOTS", "claim", "this_process"]
