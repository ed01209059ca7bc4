"""Webhook subscriptions: register (the ``whsec_`` secret shown once), list, read, delete, rotate the secret with an
overlap window; their deliveries listed by state, dead letters replayed; endpoints failing too long (the alert).

Who: admins (every subscription) and system tokens (their own only; another's answers 404 like a missing one).
Every change is audited (``webhook.subscription_created`` / ``_deleted`` / ``_rotated``, ``webhook.delivery_retried``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from gateway import audit
from gateway.events import signing
from gateway.events.dispatcher import DELIVERY_STATES
from gateway.events.guard import RefusedTarget, TargetPolicy, check_target
from gateway.events.schemas import (
    Deliveries,
    DeliveryView,
    EndpointAlert,
    EndpointAlerts,
    EndpointHealth,
    Filters,
    Rotated,
    RotateIn,
    SubscriptionCreated,
    SubscriptionIn,
    Subscriptions,
    SubscriptionView,
)
from gateway.events.tables import outbox_events, webhook_deliveries, webhook_subscriptions
from gateway.events.types import EVENT_TYPES, is_event_type
from gateway.identity.principal import Principal, Role
from gateway.privacy import FieldCipher
from gateway.problems import BadRequest, Conflict, FieldError, NotFound, Unprocessable
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.metadata import new_id, utcnow
from gateway.stores import IdempotentRequest

TABLE = "webhook_subscriptions"
DELIVERIES_MAX_LIMIT = 500


def _health(row: Row[Any]) -> EndpointHealth:
    return EndpointHealth(
        consecutive_failures=row.consecutive_failures,
        failing_since=row.failing_since,
        alerting=row.alerted_at is not None,
        breaker_open_until=row.breaker_open_until,
        last_success_at=row.last_success_at,
        last_failure_at=row.last_failure_at,
        last_error=row.last_error,
    )


def subscription_view(row: Row[Any]) -> SubscriptionView:
    filters = row.filters or {}
    return SubscriptionView(
        id=row.id,
        url=row.url,
        events=list(row.events),
        filters=Filters(
            items=list(filters.get("items", [])),
            departments=list(filters.get("departments", [])),
            units=list(filters.get("units", [])),
        ),
        status=row.status,
        created_at=row.created_at,
        health=_health(row),
        description=row.description,
        disabled_reason=row.disabled_reason,
        previous_secret_until=row.previous_secret_until,
    )


def delivery_view(row: Row[Any]) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        application_id=row.application_id,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        succeeded_at=row.succeeded_at,
    )


def check_events(events: list[str]) -> list[str]:
    """The requested types, deduplicated in order; 422 naming each unknown one."""
    errors = [
        FieldError(f"events[{i}]", f"unknown event type; one of: {', '.join(EVENT_TYPES)}")
        for i, name in enumerate(events)
        if not is_event_type(name)
    ]
    if errors:
        raise Unprocessable("Unknown event type.", errors=errors)
    return list(dict.fromkeys(events))


def deliveries_query() -> Any:
    d = webhook_deliveries.c
    return select(
        webhook_deliveries, outbox_events.c.id.label("event_id"), outbox_events.c.type.label("event_type")
    ).select_from(webhook_deliveries.join(outbox_events, outbox_events.c.seq == d.event_seq))


class SubscriptionService:
    def __init__(
        self,
        *,
        database: Database,
        cipher: FieldCipher,
        settings: Settings,
        idempotency: IdempotentRequest | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.cipher = cipher
        self.settings = settings
        self.idempotency = idempotency
        self.now = now
        self.policy = TargetPolicy.parse(settings.webhook_allowed_networks)

    # -- scope -----------------------------------------------------------------------------------------------

    @staticmethod
    def _mine(principal: Principal) -> ColumnElement[bool]:
        s = webhook_subscriptions.c
        if principal.role is Role.ADMIN:
            return s.id.is_not(None)
        return s.owner == principal.actor

    async def _row(self, principal: Principal, subscription_id: str) -> Row[Any]:
        s = webhook_subscriptions.c
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(webhook_subscriptions).where(s.id == subscription_id, self._mine(principal)))
            ).first()
        if row is None:
            raise NotFound(f"No subscription {subscription_id!r} of yours.")
        return row

    # -- subscriptions ---------------------------------------------------------------------------------------

    async def create(self, principal: Principal, body: SubscriptionIn) -> SubscriptionCreated:
        events = check_events(body.events)
        url = body.url.strip()
        try:
            await check_target(self.policy, url)
        except RefusedTarget as exc:
            raise Unprocessable(
                f"This webhook target is refused: {exc.message}",
                errors=[FieldError("url", exc.message)],
                extra={"rule": exc.rule},
            ) from None
        filters = body.filters or Filters()
        now = self.now()
        subscription_id = new_id()
        secret = signing.new_secret()
        values = {
            "id": subscription_id,
            "url": url,
            "events": events,
            "filters": {"items": filters.items, "departments": filters.departments, "units": filters.units},
            "description": (body.description or "").strip() or None,
            "owner": principal.actor,
            "owner_role": principal.role.value,
            "status": "active",
            "secret": self.cipher.encrypt(secret, table=TABLE, column="secret", row_id=subscription_id),
            "consecutive_failures": 0,
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.transaction() as conn:
            await conn.execute(webhook_subscriptions.insert().values(**values))
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="webhook.subscription_created",
                object_type="webhook_subscription",
                object_id=subscription_id,
                detail={"url": url, "events": events},
            )
            row = (
                await conn.execute(select(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id))
            ).one()
            view = subscription_view(row)
            created = SubscriptionCreated(**{f: getattr(view, f) for f in view.__struct_fields__}, secret=secret)
            if self.idempotency is not None:
                await self.idempotency.record(
                    conn, created, headers={"Location": f"/api/v1/subscriptions/{subscription_id}"}
                )
        return created

    async def list(self, principal: Principal) -> Subscriptions:
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    select(webhook_subscriptions)
                    .where(self._mine(principal))
                    .order_by(webhook_subscriptions.c.created_at)
                )
            )
        return Subscriptions(items=[subscription_view(r) for r in rows], total=len(rows))

    async def get(self, principal: Principal, subscription_id: str) -> SubscriptionView:
        return subscription_view(await self._row(principal, subscription_id))

    async def delete(self, principal: Principal, subscription_id: str) -> None:
        s = webhook_subscriptions.c
        async with self.db.transaction() as conn:
            gone = await conn.execute(
                delete(webhook_subscriptions).where(s.id == subscription_id, self._mine(principal))
            )
            if gone.rowcount != 1:
                raise NotFound(f"No subscription {subscription_id!r} of yours.")
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="webhook.subscription_deleted",
                object_type="webhook_subscription",
                object_id=subscription_id,
            )

    async def rotate(self, principal: Principal, subscription_id: str, body: RotateIn) -> Rotated:
        """A new secret; the current one keeps signing (a second signature) for the overlap window."""
        s = webhook_subscriptions.c
        overlap = body.overlap_seconds
        seconds = self.settings.webhook_rotation_overlap_seconds if overlap is None else overlap
        now = self.now()
        until = now + dt.timedelta(seconds=seconds)
        secret = signing.new_secret()
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(select(webhook_subscriptions).where(s.id == subscription_id, self._mine(principal)))
            ).first()
            if row is None:
                raise NotFound(f"No subscription {subscription_id!r} of yours.")
            current = self.cipher.decrypt(row.secret, table=TABLE, column="secret", row_id=row.id)
            changed = await conn.execute(
                update(webhook_subscriptions)
                .where(s.id == row.id, s.secret == row.secret)
                .values(
                    secret=self.cipher.encrypt(secret, table=TABLE, column="secret", row_id=row.id),
                    previous_secret=self.cipher.encrypt(current, table=TABLE, column="previous_secret", row_id=row.id),
                    previous_secret_until=until,
                    updated_at=now,
                )
            )
            if changed.rowcount != 1:
                raise Conflict("The secret was rotated meanwhile; rotate again if you need another one.")
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="webhook.subscription_rotated",
                object_type="webhook_subscription",
                object_id=row.id,
                detail={"previous_secret_until": until.isoformat()},
            )
            rotated = Rotated(id=row.id, secret=secret, previous_secret_until=until)
            if self.idempotency is not None:
                await self.idempotency.record(conn, rotated)
        return rotated

    # -- deliveries ------------------------------------------------------------------------------------------

    async def deliveries(
        self, principal: Principal, subscription_id: str, *, state: str | None = None, limit: int = 100
    ) -> Deliveries:
        if state is not None and state not in DELIVERY_STATES:
            raise BadRequest("Unknown state.", errors=[FieldError("state", f"one of: {', '.join(DELIVERY_STATES)}")])
        if not 1 <= limit <= DELIVERIES_MAX_LIMIT:
            raise BadRequest("Bad page size.", errors=[FieldError("limit", f"must be 1..{DELIVERIES_MAX_LIMIT}")])
        await self._row(principal, subscription_id)
        d = webhook_deliveries.c
        conditions = [d.subscription_id == subscription_id]
        if state is not None:
            conditions.append(d.state == state)
        async with self.db.read() as conn:
            total = int(
                (
                    await conn.execute(select(func.count()).select_from(webhook_deliveries).where(*conditions))
                ).scalar_one()
            )
            rows = list(await conn.execute(deliveries_query().where(*conditions).order_by(d.event_seq).limit(limit)))
        return Deliveries(items=[delivery_view(r) for r in rows], total=total)

    async def retry(self, principal: Principal, subscription_id: str, delivery_id: str) -> DeliveryView:
        """Replay a dead (or failed) delivery now, with a fresh retry schedule."""
        await self._row(principal, subscription_id)
        return (
            await retry_deliveries(
                self.db,
                actor=principal.actor,
                role=principal.role.value,
                subscription_id=subscription_id,
                delivery_id=delivery_id,
                now=self.now(),
            )
        )[0]

    # -- alerts ----------------------------------------------------------------------------------------------

    async def alerts(self) -> EndpointAlerts:
        return await failing_endpoints(self.db, self.settings, self.now())


async def retry_deliveries(
    db: Database,
    *,
    actor: str,
    role: str | None = None,
    subscription_id: str | None = None,
    delivery_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[DeliveryView]:
    """Put dead (or, by id, failed) deliveries back to ``pending``, due now, with a fresh schedule; audited.

    With ``delivery_id``: that one (404 unknown, 409 when it is not dead or failed). Without: every dead letter
    (of ``subscription_id`` when given). Returns the deliveries replayed.
    """
    when = now or utcnow()
    d = webhook_deliveries.c
    conditions: list[ColumnElement[bool]] = []
    if subscription_id is not None:
        conditions.append(d.subscription_id == subscription_id)
    if delivery_id is not None:
        conditions.append(d.id == delivery_id)
        states: tuple[str, ...] = ("dead", "failed")
    else:
        states = ("dead",)
    async with db.transaction() as conn:
        rows = list(await conn.execute(deliveries_query().where(*conditions)))
        if delivery_id is not None and not rows:
            raise NotFound(f"No delivery {delivery_id!r} of this subscription.")
        if delivery_id is not None and rows[0].state not in states:
            raise Conflict(
                f"Only a dead or failed delivery can be retried; this one is {rows[0].state}.",
                extra={"current_status": rows[0].state, "allowed": []},
            )
        ids = [r.id for r in rows if r.state in states]
        if not ids:
            return []
        await conn.execute(
            update(webhook_deliveries)
            .where(d.id.in_(ids), d.state.in_(states))
            .values(
                state="pending", attempts=0, next_attempt_at=when, created_at=when, lease_owner=None, lease_until=None
            )
        )
        for delivery in ids:
            await audit.append(
                conn,
                actor=actor,
                role=role,
                action="webhook.delivery_retried",
                object_type="webhook_delivery",
                object_id=delivery,
            )
        fresh = list(await conn.execute(deliveries_query().where(d.id.in_(ids)).order_by(d.event_seq)))
    return [delivery_view(r) for r in fresh]


async def failing_endpoints(db: Database, settings: Settings, now: dt.datetime | None = None) -> EndpointAlerts:
    """Active subscriptions whose endpoint has been failing longer than ``webhook_alert_after_seconds``."""
    when = now or utcnow()
    after = dt.timedelta(seconds=settings.webhook_alert_after_seconds)
    s = webhook_subscriptions.c
    async with db.read() as conn:
        rows = list(
            await conn.execute(
                select(webhook_subscriptions)
                .where(and_(s.status == "active", s.failing_since.is_not(None), s.failing_since < when - after))
                .order_by(s.failing_since)
            )
        )
    items = [
        EndpointAlert(
            subscription_id=r.id,
            url=r.url,
            failing_since=r.failing_since,
            failing_for_seconds=int((when - r.failing_since).total_seconds()),
            consecutive_failures=r.consecutive_failures,
            last_error=r.last_error,
            alerted_at=r.alerted_at,
        )
        for r in rows
    ]
    return EndpointAlerts(items=items, total=len(items), alert_after_seconds=int(settings.webhook_alert_after_seconds))


async def failing_endpoint_count(db: Database, settings: Settings) -> int:
    """How many endpoints fail longer than the configured time: the gauge
    ``onewindow_webhook_endpoints_failing`` (alert when above 0)."""
    return (await failing_endpoints(db, settings)).total


async def dead_letter_count(db: Database) -> int:
    """Dead deliveries waiting for a replay: the gauge ``onewindow_webhook_dead_letters``."""
    async with db.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(webhook_deliveries).where(webhook_deliveries.c.state == "dead")
                )
            ).scalar_one()
        )


__all__ = [
    "SubscriptionService",
    "check_events",
    "dead_letter_count",
    "failing_endpoint_count",
    "failing_endpoints",
    "retry_deliveries",
]
