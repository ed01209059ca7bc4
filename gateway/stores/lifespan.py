"""The durable idempotency records of the application: opened on the context's database, purged periodically.

`idempotency_lifespan` runs after the database lifespan: it sets ``context.idempotency_records`` (which the
middleware reads on every keyed POST) and deletes expired records every quarter of the TTL (between one minute and
one hour), once per interval across the deployment (`gateway.scheduling`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.scheduling.periodic import periodic_task
from gateway.stores.records import IdempotencyRecords

log = logging.getLogger("onewindow.idempotency")

MIN_INTERVAL_SECONDS = 60.0
MAX_INTERVAL_SECONDS = 3600.0


def purge_interval(ttl_seconds: float) -> float:
    return min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, ttl_seconds / 4))


async def _purge(records: IdempotencyRecords) -> None:
    purged = await records.purge()
    if purged:
        log.info("purged %d expired idempotency records", purged)


@contextlib.asynccontextmanager
async def idempotency_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the durable records on the context's database and purge them periodically until shutdown."""
    context = context_of(app)
    records = IdempotencyRecords(context.database)
    context.idempotency_records = records
    interval = purge_interval(context.settings.idempotency_ttl_seconds)
    try:
        async with periodic_task(context.database, "idempotency_purge", interval, lambda: _purge(records)):
            yield
    finally:
        context.idempotency_records = None


__all__ = ["idempotency_lifespan", "purge_interval"]
