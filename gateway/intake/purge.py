"""The periodic purge of drafts nobody submitted (``Settings.draft_retention_hours``), with their uploads, and the
sweep of orphaned uploads (files no material references, older than a grace period: `gateway.intake.files`).

`draft_purge_lifespan` runs `IntakeService.purge_drafts` in the background while the application lives; tests and
operators call `purge_drafts` directly. Several gateway processes may purge at once: each purge locks the drafts
it deletes (PostgreSQL), so each draft is deleted and audited once, and a file is deleted only under its lock
after checking that no row references it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.intake.deps import provide_intake
from gateway.intake.schemas import PurgeResult

log = logging.getLogger("onewindow.intake.purge")

#: Bounds of the interval between purges (seconds): a quarter of the retention time, within these.
MIN_INTERVAL_SECONDS = 60.0
MAX_INTERVAL_SECONDS = 3600.0


def purge_interval(retention_hours: float) -> float:
    return min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, retention_hours * 3600 / 4))


async def purge_drafts(app: Litestar) -> PurgeResult:
    """Purge expired drafts now (the same work the periodic task does)."""
    return await provide_intake(context_of(app)).purge_drafts()


async def _run(app: Litestar, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await purge_drafts(app)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed round is logged and retried next time; the task must keep running
            log.exception("draft purge failed")


@contextlib.asynccontextmanager
async def draft_purge_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Start the periodic purge after the database is up; stop it at shutdown."""
    interval = purge_interval(context_of(app).settings.draft_retention_hours)
    task = asyncio.create_task(_run(app, interval), name="onewindow-draft-purge")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["draft_purge_lifespan", "purge_drafts", "purge_interval"]
