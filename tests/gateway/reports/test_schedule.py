"""The scheduled reports run once per deployment: several processes (here: several services on their own
database connections, concurrently) claim the run and exactly one generates it; a stale claim is taken over."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select, update

from catalog.calendar import DEFAULT_CONFIG_DIR, DISTRICT_TZ, cached_calendar
from catalog.loader import cached_catalog
from gateway.reports.schedule import STALE_CLAIM, run_due_reports
from gateway.reports.services import ReportService
from gateway.reports.tables import report_runs, reports
from gateway.settings import Settings
from gateway.storage import Database

#: Monday 2026-03-02, 00:05 Beijing time: the week of 2/23 and the month of February are due.
NOW = dt.datetime(2026, 3, 2, 0, 5, tzinfo=DISTRICT_TZ).astimezone(dt.UTC)


def _service(db: Database) -> ReportService:
    return ReportService(
        database=db,
        calendar=cached_calendar(DEFAULT_CONFIG_DIR),
        catalog=cached_catalog(DEFAULT_CONFIG_DIR),
        now=lambda: NOW,
    )


async def test_concurrent_processes_generate_each_run_once(db_settings: Settings) -> None:
    dbs = [Database.from_settings(db_settings) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(run_due_reports(_service(db), now=NOW, by=f"process-{i}") for i, db in enumerate(dbs))
        )
        runs = sorted(run for result in results for run in result)
        assert runs == [("monthly", dt.date(2026, 2, 1)), ("weekly", dt.date(2026, 2, 23))]
        units = len(_service(dbs[0]).all_units())
        async with dbs[0].read() as conn:
            stored = (await conn.execute(select(func.count()).select_from(reports))).scalar_one()
            top = (await conn.execute(select(func.max(reports.c.version)))).scalar_one()
        assert stored == 2 * units and top == 1
        # Later rounds find the runs claimed and do nothing.
        assert await run_due_reports(_service(dbs[1]), now=NOW + dt.timedelta(hours=2), by="late") == []
        # A claim whose process died (never finished, older than STALE_CLAIM) is taken over by one process.
        async with dbs[0].transaction() as conn:
            await conn.execute(
                update(report_runs)
                .where(report_runs.c.period == "weekly")
                .values(finished_at=None, claimed_at=NOW - STALE_CLAIM - dt.timedelta(minutes=1))
            )
        retaken = await asyncio.gather(*(run_due_reports(_service(db), now=NOW, by="again") for db in dbs))
        assert sorted(run for result in retaken for run in result) == [("weekly", dt.date(2026, 2, 23))]
        async with dbs[0].read() as conn:
            versions = (
                await conn.execute(select(func.max(reports.c.version)).where(reports.c.period == "weekly"))
            ).scalar_one()
        assert versions == 2  # regenerated: the first version is kept
    finally:
        for db in dbs:
            await db.dispose()
