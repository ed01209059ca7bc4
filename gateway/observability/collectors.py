"""The scrape-time collectors `create_app` registers (`gateway.observability.metrics`): facts that live in the shared
database or Redis, read when ``/metrics`` is scraped.

* ``onewindow_breaker_state{department, state}`` — 1 for each department's current circuit-breaker state
  (closed, half_open, open), 0 for the others; shared through Redis when it is configured, so every process shows
  the same.
* ``onewindow_cases{department, clock}`` — accepted cases whose clock is open (``open``), of them ``due_soon``
  (at least 80 % of the promised time used) and ``overdue``, per department (`gateway.lifecycle.supervision`).
* ``onewindow_sync_last_success_timestamp_seconds{department}`` — when a department's certificate sync last
  saved its cursor; ``onewindow_sync_certificates{department}`` — certificates stored;
  ``onewindow_sync_rejections{department}`` — certificates the sync refused (bad signature, unknown type…).
* ``onewindow_outbox_lag_seconds`` — age of the oldest event not yet fanned out to its subscriptions (0 when none),
  ``onewindow_outbox_undispatched`` — how many such events; ``onewindow_webhook_deliveries{state}`` — deliveries
  pending, failed (to be retried) and dead; ``onewindow_webhook_endpoints_failing`` — endpoints failing longer than
  ``webhook_alert_after_seconds`` (alert on > 0; `gateway.events.subscriptions`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from prometheus_client.core import Metric
from sqlalchemy import func, select

from gateway.certificates.tables import certificate_rejections, certificates, sync_cursors
from gateway.context import AppContext
from gateway.events.subscriptions import failing_endpoint_count
from gateway.events.tables import outbox_events, webhook_deliveries
from gateway.identity.principal import Principal, Role
from gateway.lifecycle.supervision import SupervisionService
from gateway.observability.metrics import ScrapeCollector, gauge
from gateway.storage.metadata import utcnow

BREAKER_STATES = ("closed", "half_open", "open")
#: The summary is read as a district-wide reader would (no audit: it holds no personal data).
_READER = Principal(token_id="metrics", role=Role.SUPERVISOR, label="metrics")  # noqa: S106 - an id, not a secret


def breaker_collector(context: AppContext) -> ScrapeCollector:
    async def collect() -> Sequence[Metric]:
        family = gauge(
            "onewindow_breaker_state", "Circuit breaker state per department (1 = current)", ["department", "state"]
        )
        pool = context.connectors
        if pool is None:
            return [family]
        for code in pool.codes:
            if code in pool.broken:  # a department whose client could not be built has no breaker
                continue
            state = await pool.client(code).breaker_state()
            for name in BREAKER_STATES:
                family.add_metric([code, name], 1.0 if name == state else 0.0)
        return [family]

    return collect


def cases_collector(context: AppContext) -> ScrapeCollector:
    async def collect() -> Sequence[Metric]:
        summary = await SupervisionService(database=context.database, calendar=context.calendar).summary(_READER)
        open_, due_soon, overdue = Counter[str](), Counter[str](), Counter[str]()
        for row in summary.rows:
            open_[row.department] += row.open
            due_soon[row.department] += row.due_soon
            overdue[row.department] += row.overdue
        family = gauge(
            "onewindow_cases",
            "Accepted cases with a running clock (open), of them due soon and overdue, per department",
            ["department", "clock"],
        )
        for department in sorted(open_):
            family.add_metric([department, "open"], open_[department])
            family.add_metric([department, "due_soon"], due_soon[department])
            family.add_metric([department, "overdue"], overdue[department])
        return [family]

    return collect


def sync_collector(context: AppContext) -> ScrapeCollector:
    async def collect() -> Sequence[Metric]:
        last = gauge(
            "onewindow_sync_last_success_timestamp_seconds",
            "When each department's certificate sync last saved its cursor (Unix time)",
            ["department"],
        )
        stored = gauge("onewindow_sync_certificates", "Certificates stored per department", ["department"])
        rejected = gauge("onewindow_sync_rejections", "Certificates the sync refused, per department", ["department"])
        async with context.database.read() as conn:
            for department, at in await conn.execute(select(sync_cursors.c.department, sync_cursors.c.updated_at)):
                last.add_metric([department], at.timestamp())
            count = func.count()
            for department, n in await conn.execute(
                select(certificates.c.department, count).group_by(certificates.c.department)
            ):
                stored.add_metric([department], n)
            for department, n in await conn.execute(
                select(certificate_rejections.c.department, count).group_by(certificate_rejections.c.department)
            ):
                rejected.add_metric([department], n)
        return [last, stored, rejected]

    return collect


def events_collector(context: AppContext) -> ScrapeCollector:
    async def collect() -> Sequence[Metric]:
        lag = gauge("onewindow_outbox_lag_seconds", "Age of the oldest event not yet dispatched (0 when none)", [])
        waiting = gauge("onewindow_outbox_undispatched", "Events not yet dispatched to their subscriptions", [])
        deliveries = gauge(
            "onewindow_webhook_deliveries",
            "Webhook deliveries not yet succeeded: pending, failed (retrying), dead",
            ["state"],
        )
        failing = gauge(
            "onewindow_webhook_endpoints_failing", "Webhook endpoints failing longer than the alert time", []
        )
        async with context.database.read() as conn:
            oldest, count = (
                await conn.execute(
                    select(func.min(outbox_events.c.created_at), func.count()).where(
                        outbox_events.c.dispatched_at.is_(None)
                    )
                )
            ).one()
            by_state: dict[str, int] = {
                state: n
                for state, n in await conn.execute(
                    select(webhook_deliveries.c.state, func.count())
                    .where(webhook_deliveries.c.state != "succeeded")  # the history grows; the rest is work
                    .group_by(webhook_deliveries.c.state)
                )
            }
        lag.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0)
        waiting.add_metric([], count)
        for state in ("pending", "failed", "dead"):
            deliveries.add_metric([state], by_state.get(state, 0))
        failing.add_metric([], await failing_endpoint_count(context.database, context.settings))
        return [lag, waiting, deliveries, failing]

    return collect


def register_collectors(context: AppContext) -> None:
    """The gateway's own scrape-time collectors (breakers every scrape, the database ones every 10 s)."""
    context.metrics.add_collector("breakers", breaker_collector(context), ttl=1.0)
    context.metrics.add_collector("cases", cases_collector(context), ttl=10.0)
    context.metrics.add_collector("sync", sync_collector(context), ttl=10.0)
    context.metrics.add_collector("events", events_collector(context), ttl=5.0)


__all__ = [
    "BREAKER_STATES",
    "breaker_collector",
    "cases_collector",
    "events_collector",
    "register_collectors",
    "sync_collector",
]
