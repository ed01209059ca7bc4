"""The periodic purge of drafts nobody submitted (``Settings.draft_retention_hours``), with their uploads, and the
sweep of orphaned uploads (files no material references, older than a grace period: `gateway.intake.files`).

`draft_purge_lifespan` runs `IntakeService.purge_drafts` in the background while the application lives; tests and
operators call `purge_drafts` directly. The periodic purge runs once per interval across the deployment (each slot
is claimed in ``scheduled_runs`` by one process: `gateway.scheduling`); a purge run by hand beside it is still
safe: each purge locks the drafts it deletes (PostgreSQL), so each draft is deleted and audited once, and a file is
deleted only under its lock after checking that no row references it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from litestar import Litestar

from gateway.context import context_of
from gateway.intake.deps import provide_intake
from gateway.intake.schemas import PurgeResult
from gateway.scheduling.periodic import periodic_task

log = logging.getLogger("onewindow.intake.purge")

#: Bounds of the interval between purges (seconds): a quarter of the retention time, within these.
MIN_INTERVAL_SECONDS = 60.0
MAX_INTERVAL_SECONDS = 3600.0


def purge_interval(retention_hours: float) -> float:
    return min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, retention_hours * 3600 / 4))


async def purge_drafts(app: Litestar) -> PurgeResult:
    """Purge expired drafts now (the same work the periodic task does)."""
    return await provide_intake(context_of(app)).purge_drafts()


@contextlib.asynccontextmanager
async def draft_purge_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Run the purge periodically after the database is up, once per interval across the deployment
    (`gateway.scheduling`: each slot is claimed in the database by one process); stop it at shutdown."""
    context = context_of(app)
    settings = context.settings
    interval = settings.draft_purge_interval_seconds or purge_interval(settings.draft_retention_hours)

    async def purge() -> None:
        result = await purge_drafts(app)
        log.info("draft purge done", extra={"purge": msgspec.to_builtins(result)})

    async with periodic_task(context.database, "draft_purge", interval, purge):
        yield


__all__ = ["draft_purge_lifespan", "purge_drafts", "purge_interval"]
