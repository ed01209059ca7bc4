"""The gateway's Prometheus metrics, in one registry module: add new ones here.

Two kinds of metric:

* **Counted in the process** (requests, department calls, scheduled jobs): module-level `prometheus_client`
  objects. With ``PROMETHEUS_MULTIPROC_DIR`` set (``onewindow serve --workers N`` sets it before the workers
  start) each worker writes its values to files in that directory and a scrape sums every worker's files, so the
  numbers are the deployment's on this host whichever worker answers.
* **Read at scrape time** (circuit breakers, cases due soon and overdue, certificate sync results): facts that
  live in the shared database or Redis, not in a process. A `ScrapeCollector` is an async callable returning
  metric families; `Metrics.add_collector` registers one under a name (each answer kept for ``ttl`` seconds, so
  frequent scrapes of several workers do not each query the database). Other domains register theirs the same
  way at start-up, e.g. an outbox-lag gauge::

      context.metrics.add_collector("outbox", outbox_lag_families, ttl=5.0)

A collector that fails is left out of that scrape and counted in ``onewindow_scrape_collector_errors_total``;
the scrape itself still answers.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger("onewindow.metrics")

#: The environment variable `prometheus_client` reads (at import) to switch to multi-process mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: What ``GET /metrics`` answers with (Prometheus text exposition format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds): the public lookup's targets sit at 25 ms, intake's at 200 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Requests by method, route template (``/api/v1/track/{tracking_number:str}``, never the path itself: it may carry
#: a tracking number) and status; ``_count`` is the number of requests, ``_sum`` / buckets the latency.
HTTP_REQUESTS = Histogram(
    "onewindow_http_request_duration_seconds",
    "HTTP requests served, by method, route template and status, and how long they took",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
#: Department calls (one call including its retries) by department and outcome.
DEPARTMENT_CALLS = Histogram(
    "onewindow_department_call_duration_seconds",
    "Calls to department systems, by department and outcome (ok, circuit_open, rate_limited, unavailable, "
    "rejected, misconfigured, cancelled), and how long they took including retries",
    ["department", "outcome"],
    buckets=LATENCY_BUCKETS,
)
#: Periodic jobs: ``ran`` (this process claimed the slot and ran it), ``skipped`` (another process had claimed
#: it), ``failed``.
JOB_RUNS = Counter(
    "onewindow_scheduled_job_runs_total",
    "Periodic job slots by job and outcome (ran, skipped: claimed by another process, failed)",
    ["job", "outcome"],
)
SCRAPE_ERRORS = Counter(
    "onewindow_scrape_collector_errors_total",
    "Scrape-time collectors that failed, by collector",
    ["collector"],
)

ScrapeCollector = Callable[[], Awaitable[Sequence[Metric]]]


class BatchedHistogram:
    """A histogram's observations counted in plain Python and added to it in batches (`flush`).

    ``Histogram.observe`` takes a lock per value it touches, and in multi-process mode writes each to the worker's
    memory-mapped file: ~3 µs per observation in one process, ~8 µs with several workers — a tenth of a public
    lookup. Counting in a dict costs well under a microsecond; `flush` (every second, and before each scrape)
    adds the batch through the histogram's own per-bucket values, so the exposition is the same.
    """

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds: list[float] = list(histogram._upper_bounds)
        self._pending: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        entry = self._pending.get(labels)
        if entry is None:
            entry = self._pending[labels] = [0.0] * (len(self.bounds) + 1)
        entry[0] += value
        entry[1 + bisect.bisect_left(self.bounds, value)] += 1

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for labels, entry in pending.items():
            child = self.histogram.labels(*labels)
            # The histogram's own (non-cumulative) bucket values and sum: what ``observe`` would have added.
            child._sum.inc(entry[0])
            for value, count in zip(child._buckets, entry[1:], strict=True):
                if count:
                    value.inc(count)


#: The request histogram, batched (`gateway.observability.requests` observes through it).
HTTP_REQUESTS_BATCHED = BatchedHistogram(HTTP_REQUESTS)
_BATCHED = (HTTP_REQUESTS_BATCHED,)


def flush_batched() -> None:
    """Add every batched observation to its histogram now (before a scrape, at shutdown)."""
    for batched in _BATCHED:
        batched.flush()


def observe_department_call(department: str, outcome: str, seconds: float) -> None:
    """The connectors' call observer (`connectors.client.CallObserver`)."""
    DEPARTMENT_CALLS.labels(department, outcome).observe(seconds)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """A gauge family for a scrape-time collector (``family.add_metric([label values…], value)``)."""
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def multiprocess_dir() -> str | None:
    """The multi-process directory when this process runs in multi-process mode, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class _Cached:
    __slots__ = ("at", "collect", "families", "lock", "ttl")

    def __init__(self, collect: ScrapeCollector, ttl: float) -> None:
        self.collect = collect
        self.ttl = ttl
        self.at = -1e18
        self.families: Sequence[Metric] = ()
        self.lock = asyncio.Lock()


class Metrics:
    """The process's scrape-time collectors and the exposition of everything (`render`)."""

    def __init__(self) -> None:
        self._collectors: dict[str, _Cached] = {}

    def add_collector(self, name: str, collect: ScrapeCollector, *, ttl: float = 10.0) -> None:
        """Register (or replace) a scrape-time collector; its answer is reused for ``ttl`` seconds."""
        self._collectors[name] = _Cached(collect, ttl)

    @property
    def collector_names(self) -> list[str]:
        return sorted(self._collectors)

    async def _scrape(self) -> list[Metric]:
        families: list[Metric] = []
        for name, cached in list(self._collectors.items()):
            async with cached.lock:
                now = time.monotonic()
                if now - cached.at >= cached.ttl:
                    try:
                        cached.families = list(await cached.collect())
                    except Exception:  # one broken collector must not take the scrape down
                        log.warning("metrics collector %s failed", name, exc_info=True)
                        SCRAPE_ERRORS.labels(name).inc()
                        cached.families = ()
                    cached.at = now
                families.extend(cached.families)
        return families

    async def render(self) -> bytes:
        """The text exposition: the process (or, in multi-process mode, every worker's) metrics, then the
        scrape-time collectors' families."""
        flush_batched()
        directory = multiprocess_dir()
        if directory:
            counted = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(counted, path=directory)  # type: ignore[no-untyped-call]
        else:
            counted = REGISTRY
        scraped = CollectorRegistry(auto_describe=False)
        scraped.register(_Families(await self._scrape()))
        return generate_latest(counted) + generate_latest(scraped)


__all__ = [
    "CONTENT_TYPE",
    "DEPARTMENT_CALLS",
    "HTTP_REQUESTS",
    "HTTP_REQUESTS_BATCHED",
    "JOB_RUNS",
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "SCRAPE_ERRORS",
    "BatchedHistogram",
    "Metrics",
    "ScrapeCollector",
    "flush_batched",
    "gauge",
    "multiprocess_dir",
    "observe_department_call",
]
