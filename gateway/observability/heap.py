"""The serving process's garbage collector: settled once start-up is done.

A serving process holds a large, long-lived heap from start-up (the catalog's 104 items, the route table, the
OpenAPI schema, compiled statements, imported modules — a few hundred thousand objects) and churns through short
ones per request. With the interpreter's defaults every full collection walks the whole start-up heap again, and
the young generation is collected every 700 net allocations — several times per request under load. Both showed
in profiles of a loaded gateway (bench/RESULTS.md, "Garbage collector settled after start-up").

`settle_heap` runs as the last start-up step (`heap_lifespan`, the last lifespan of `gateway.app.create_app`):

* one full collection, then ``gc.freeze()``: what survived start-up moves to the permanent generation, which later
  collections do not traverse (objects freed later from it are still freed by reference counting; only cycles among
  them would be kept, and start-up objects do not churn);
* the young generation's threshold raised to `YOUNG_THRESHOLD` allocations (older generations keep their ratios),
  so the collector runs less often on a busy loop while still bounding the garbage of reference cycles. The
  threshold bounds each young collection's pause as well as their number: a public lookup leaves no net
  allocations behind (no young collection in 20,000 lookups at 700, 2,000 or 20,000), but an intake leaves
  reference cycles (exceptions, futures, driver objects) — at 20,000 each young collection freed ~20,000 objects in
  6–20 ms, a stall of every request in flight, every ~4 s at 17 intakes/s; at 2,000 none took over 3 ms
  (bench/RESULTS.md, "young generation threshold").

``Settings.gc_settle`` (default on) turns it off. Nothing here changes what the gateway answers.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from gateway.context import context_of

log = logging.getLogger("onewindow.observability")

#: Net allocations of container objects between two young-generation collections (the interpreter's default: 700).
YOUNG_THRESHOLD = 2_000


_settled = False


def settle_heap(young_threshold: int = YOUNG_THRESHOLD) -> int:
    """Collect, freeze what is left and raise the young generation's threshold; the number of frozen objects.
    Once per process (a process serves one app; a second app in the same process — tests — finds it done)."""
    global _settled
    if _settled:
        return gc.get_freeze_count()
    _settled = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    return gc.get_freeze_count()


@asynccontextmanager
async def heap_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Settle the heap once every other start-up step is done (see the module docstring)."""
    if context_of(app).settings.gc_settle:
        frozen = settle_heap()
        log.info(
            "start-up heap settled: %d objects frozen, young collection every %d allocations", frozen, YOUNG_THRESHOLD
        )
    yield


__all__ = ["YOUNG_THRESHOLD", "heap_lifespan", "settle_heap"]
