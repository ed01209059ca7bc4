"""Scheduled reports and the grid catch-up: what the background jobs do, once per deployment.

Every Monday (Beijing time) the previous week's reports are generated, every first of the month the previous
month's — for the district, every street and every community. However many processes run (``serve`` with several
workers, ``onewindow worker``), each run is generated once: a process first inserts the run's row in
``report_runs`` (period, start) — the primary key lets exactly one insert succeed — and only the process whose
insert committed generates. A claim left unfinished for `STALE_CLAIM` (its process died) is taken over by a
conditional update, which again only one process wins.

`run_jobs_once` is the one function a job runner calls (``serve`` runs `background_jobs_lifespan`; a separate
``onewindow worker`` can call `run_jobs_forever`). The figures of a claimed run are computed in the process's
report child (`gateway.reports.workers`), so a serving process's event loop keeps answering requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from catalog.calendar import local_date
from gateway.context import AppContext, context_of
from gateway.grid.tasks import catch_up
from gateway.reports.periods import PERIODS, Period, last_complete
from gateway.reports.services import ReportService
from gateway.reports.tables import report_runs
from gateway.storage.database import Database
from gateway.storage.faults import log_failed_round
from gateway.storage.metadata import utcnow

log = logging.getLogger("onewindow.reports.schedule")

#: A claim not finished after this long belongs to a process that died; another may take it over.
STALE_CLAIM = dt.timedelta(hours=1)
#: How often the jobs look for work (seconds), unless the settings say otherwise.
DEFAULT_INTERVAL = 60.0


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


async def claim(db: Database, period: Period, start: dt.date, *, by: str, now: dt.datetime) -> bool:
    """Whether this process won the run (period, start)."""
    try:
        async with db.transaction() as conn:
            await conn.execute(insert(report_runs).values(period=period, start=start, claimed_by=by, claimed_at=now))
        return True
    except IntegrityError:
        pass
    async with db.transaction() as conn:
        row = (
            await conn.execute(
                select(report_runs.c.claimed_at, report_runs.c.finished_at).where(
                    report_runs.c.period == period, report_runs.c.start == start
                )
            )
        ).first()
        if row is None or row.finished_at is not None or now - row.claimed_at < STALE_CLAIM:
            return False
        taken = await conn.execute(
            update(report_runs)
            .where(
                report_runs.c.period == period,
                report_runs.c.start == start,
                report_runs.c.finished_at.is_(None),
                report_runs.c.claimed_at == row.claimed_at,
            )
            .values(claimed_by=by, claimed_at=now)
        )
        return bool(taken.rowcount == 1)


async def finish(db: Database, period: Period, start: dt.date, now: dt.datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            update(report_runs)
            .where(report_runs.c.period == period, report_runs.c.start == start)
            .values(finished_at=now)
        )


async def run_due_reports(
    service: ReportService,
    *,
    now: dt.datetime | None = None,
    by: str | None = None,
) -> list[Any]:
    """Generate the most recent complete week's and month's reports unless some process already did:
    ``[(period, start)]`` of the runs this call generated."""
    now = now or utcnow()
    today = local_date(now)
    done: list[Any] = []
    for period in PERIODS:
        start = last_complete(period, today)
        if not await claim(service.db, period, start, by=by or process_name(), now=now):
            continue
        await service.generate(period, start, service.all_units(), actor="schedule")
        await finish(service.db, period, start, utcnow())
        log.info("generated the %s reports from %s", period, start.isoformat())
        done.append((period, start))
    return done


def report_service(context: AppContext) -> ReportService:
    return ReportService(
        database=context.database,
        calendar=context.calendar,
        catalog=context.catalog,
        workers=context.report_workers,
    )


async def run_jobs_once(context: AppContext) -> None:
    """One round of the background jobs: grid tasks caught up, due reports generated (each failure logged)."""
    try:
        await catch_up(context.database, context.calendar)
    except Exception as exc:
        log_failed_round(log, "grid task catch-up", exc)
    try:
        await run_due_reports(report_service(context))
    except Exception as exc:
        log_failed_round(log, "scheduled reports", exc)


async def run_jobs_forever(context: AppContext, interval: float = DEFAULT_INTERVAL) -> None:
    """A round every ``interval`` seconds, the first after one interval (startup stays quick)."""
    while True:
        await asyncio.sleep(interval)
        await run_jobs_once(context)


@contextlib.asynccontextmanager
async def background_jobs_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Run the grid and report jobs in this process while it serves (``Settings.report_jobs_seconds``; 0: off;
    not in a process told to leave the background jobs to ``onewindow worker``, ``jobs_in_process`` off)."""
    context = context_of(app)
    interval = context.settings.report_jobs_seconds
    if interval <= 0 or not context.settings.jobs_in_process:
        yield
        return
    task = asyncio.create_task(run_jobs_forever(context, interval), name="onewindow-grid-report-jobs")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = [
    "background_jobs_lifespan",
    "claim",
    "report_service",
    "run_due_reports",
    "run_jobs_forever",
    "run_jobs_once",
]
