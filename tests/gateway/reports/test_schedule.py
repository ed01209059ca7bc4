"""The scheduled reports run once per deployment: several processes (here: several services on their own
database connections, concurrently) claim the run and exactly one generates it; a stale claim is taken over."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal

from sqlalchemy import func, select, update

from catalog.calendar import DEFAULT_CONFIG_DIR, DISTRICT_TZ, cached_calendar
from catalog.loader import cached_catalog
from gateway.reports.schedule import STALE_CLAIM, run_due_reports
from gateway.reports.services import ReportService
from gateway.reports.tables import report_runs, reports
from gateway.reports.workers import ReportWorkers, decode_settings, encode_settings
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


async def test_a_scheduled_run_is_computed_in_the_report_child(db_settings: Settings) -> None:
    """With the serving process's report child, a claimed run's figures are computed in another process (the
    serving loop only waits) and stored by this one — the same bodies as computed here."""
    db = Database.from_settings(db_settings)
    workers = ReportWorkers(db_settings)
    try:
        service = _service(db)
        service.workers = workers
        generated = await run_due_reports(service, now=NOW, by="serving")
        assert generated == [("weekly", dt.date(2026, 2, 23)), ("monthly", dt.date(2026, 2, 1))]
        child = workers.child_pid()
        assert child is not None and child != os.getpid()
        async with db.read() as conn:
            stored = (await conn.execute(select(func.count()).select_from(reports))).scalar_one()
            finished = list((await conn.execute(select(report_runs.c.finished_at))).scalars())
        assert stored == 2 * len(service.all_units())
        assert len(finished) == 2 and all(at is not None for at in finished)
        units = service.all_units()[:3]
        here = await _service(db).compute("weekly", dt.date(2026, 2, 23), units)
        assert await workers.compute("weekly", dt.date(2026, 2, 23), units) == here
    finally:
        workers.close()
        await db.dispose()


async def test_a_dead_report_child_is_replaced(db_settings: Settings) -> None:
    workers = ReportWorkers(db_settings)
    try:
        first = await workers.compute("weekly", dt.date(2026, 2, 23), [])
        pid = workers.child_pid()
        assert first == {} and pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert await workers.compute("weekly", dt.date(2026, 2, 23), []) == {}
        assert workers.child_pid() not in (None, pid)
    finally:
        workers.close()


def test_settings_travel_whole_to_the_child(db_settings: Settings) -> None:
    assert decode_settings(encode_settings(db_settings)) == db_settings
