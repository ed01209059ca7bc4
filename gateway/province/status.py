"""The reporting backlog as admins see it: how many steps were sent, are waiting and are retrying, the oldest one
waiting and the last error — so a platform that stopped taking reports cannot go unnoticed."""

from __future__ import annotations

import datetime as dt

import msgspec
from sqlalchemy import func, select

from catalog.calendar import local_time
from gateway.province.tables import province_reports
from gateway.storage.database import Database


class ReportingStatus(msgspec.Struct, kw_only=True):
    sent: int
    pending: int
    #: Pending steps that failed at least once.
    retrying: int
    oldest_pending_since: dt.datetime | None
    last_error: str | None


async def reporting_status(database: Database) -> ReportingStatus:
    r = province_reports
    async with database.read() as conn:
        counts = {
            row.state: int(row.n)
            for row in await conn.execute(select(r.c.state, func.count().label("n")).group_by(r.c.state))
        }
        retrying = (
            await conn.execute(select(func.count()).where(r.c.state == "pending", r.c.attempts > 0))
        ).scalar_one()
        oldest = (await conn.execute(select(func.min(r.c.created_at)).where(r.c.state == "pending"))).scalar_one()
        last_error = (
            await conn.execute(
                select(r.c.last_error)
                .where(r.c.state == "pending", r.c.last_error.is_not(None))
                .order_by(r.c.next_attempt_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    return ReportingStatus(
        sent=counts.get("sent", 0),
        pending=counts.get("pending", 0),
        retrying=int(retrying),
        oldest_pending_since=local_time(oldest) if oldest is not None else None,
        last_error=last_error,
    )


__all__ = ["ReportingStatus", "reporting_status"]
