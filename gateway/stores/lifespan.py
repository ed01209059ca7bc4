"""The durable idempotency records of the application: opened on the context's database, purged periodically.

`idempotency_lifespan` runs after the database lifespan: it sets ``context.idempotency_records`` (which the
middleware reads on every keyed POST) and deletes expired records every quarter of the TTL (between one minute and
one hour). Several gateway processes may purge at once: deleting what another already deleted is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.stores.records import IdempotencyRecords

log = logging.getLogger("onewindow.idempotency")

MIN_INTERVAL_SECONDS = 60.0
MAX_INTERVAL_SECONDS = 3600.0


def purge_interval(ttl_seconds: float) -> float:
    return min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, ttl_seconds / 4))


async def _run(records: IdempotencyRecords, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await records.purge()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed round is logged and retried next time; the task must keep running
            log.exception("idempotency record purge failed")
            continue
        if purged:
            log.info("purged %d expired idempotency records", purged)


@contextlib.asynccontextmanager
async def idempotency_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the durable records on the context's database and purge them periodically until shutdown."""
    context = context_of(app)
    records = IdempotencyRecords(context.database)
    context.idempotency_records = records
    task = asyncio.create_task(
        _run(records, purge_interval(context.settings.idempotency_ttl_seconds)), name="onewindow-idempotency-purge"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        context.idempotency_records = None


__all__ = ["idempotency_lifespan", "purge_interval"]
