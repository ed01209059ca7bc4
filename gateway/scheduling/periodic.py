"""`run_periodically`: a job every ``interval`` seconds, once per slot across the deployment (see `claims`).

Each process sleeps to the start of the next slot (plus a small random delay, so that processes do not all hit
the database in the same millisecond), claims it, and runs the job only if the claim was its. A failed run is
logged and counted; the next slot is tried as usual. ``onewindow_scheduled_job_runs_total{job, outcome}``
counts ``ran``, ``skipped`` (another process had the slot) and ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.observability.metrics import JOB_RUNS
from gateway.scheduling.claims import claim, this_process
from gateway.storage import Database
from gateway.storage.faults import log_failed_round

log = logging.getLogger("onewindow.scheduling")

Job = Callable[[], Awaitable[object]]
#: At most this much of a slot (fraction) is spent in the random start delay.
JITTER = 0.05


def slot_of(now: float, interval: float) -> int:
    return int(now // interval)


async def run_periodically(
    database: Database,
    job: str,
    interval: float,
    work: Job,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Forever: at each slot's start, claim it and run ``work`` if the claim is this process's."""
    holder = this_process()
    ran, skipped, failed = (JOB_RUNS.labels(job, outcome) for outcome in ("ran", "skipped", "failed"))
    while True:
        now = clock()
        delay = (slot_of(now, interval) + 1) * interval - now
        await asyncio.sleep(delay + random.uniform(0, interval * JITTER))
        slot = slot_of(clock(), interval)
        try:
            if not await claim(database, job, slot, holder):
                skipped.inc()
                continue
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed round is logged and retried next slot; the task must keep running
            failed.inc()
            log_failed_round(log, f"scheduled job {job}", exc, extra={"job": job, "slot": slot})
            continue
        ran.inc()


@contextlib.asynccontextmanager
async def periodic_task(database: Database, job: str, interval: float, work: Job) -> AsyncIterator[None]:
    """`run_periodically` in a background task while the block runs (a lifespan's body)."""
    task = asyncio.create_task(run_periodically(database, job, interval, work), name=f"onewindow-{job}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["periodic_task", "run_periodically", "slot_of"]
