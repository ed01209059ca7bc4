"""``/api/v1/subscriptions`` (webhooks), ``/api/v1/webhook-alerts`` and ``/api/v1/events/stream`` (SSE). Thin: the
logic is in `gateway.events.subscriptions` and `gateway.events.stream`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import ServerSentEvent

from gateway.cases.access import STATUS_READ_SCOPE
from gateway.events.deps import provide_subscriptions
from gateway.events.schemas import (
    Deliveries,
    DeliveryView,
    EndpointAlerts,
    Rotated,
    RotateIn,
    SubscriptionCreated,
    SubscriptionIn,
    Subscriptions,
    SubscriptionView,
)
from gateway.events.stream import channels_of, events_for
from gateway.events.subscriptions import DELIVERIES_MAX_LIMIT, SubscriptionService
from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.problems import ServiceUnavailable, problem_spec

_SUBSCRIBERS = require_roles(Role.ADMIN, scope=STATUS_READ_SCOPE)
_NOT_FOUND = {404: problem_spec("No such subscription of yours (a system sees only its own)")}
_FORBIDDEN = {403: problem_spec("Not an admin, nor a system token with status:read")}


class SubscriptionController(Controller):
    path = "/api/v1/subscriptions"
    tags = ("events",)
    guards = [_SUBSCRIBERS]  # noqa: RUF012 - Litestar API
    dependencies = {"subscriptions": Provide(provide_subscriptions, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "",
        operation_id="createSubscription",
        summary="Register a webhook subscription; its secret is shown only in this answer",
        description=(
            "Deliveries follow Standard Webhooks 1.0 (`webhook-id`, `webhook-timestamp`, `webhook-signature`) "
            "with thin bodies `{type, timestamp, data}`: ids, status, item and unit codes, never personal data. "
            "`filters` keep only events of the listed items, departments or units (filing or handling). The URL "
            "must be http(s) and resolve to public addresses, unless the operator allows the network "
            "(`ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS`); a refused one answers 422 naming the rule."
        ),
        status_code=201,
        responses={**_FORBIDDEN, 422: problem_spec("Unknown event type, or a refused URL (`rule` names why)")},
    )
    async def create(
        self,
        data: JSONBody[SubscriptionIn],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[SubscriptionCreated]:
        created = await subscriptions.create(principal, data)
        return Response(created, status_code=201, headers={"Location": f"{self.path}/{created.id}"})

    @get(
        "",
        operation_id="listSubscriptions",
        summary="Subscriptions (admins: all; a system: its own), with each endpoint's health",
        responses=_FORBIDDEN,
    )
    async def list_all(
        self, principal: NamedDependency[Principal], subscriptions: NamedDependency[SubscriptionService]
    ) -> Subscriptions:
        return await subscriptions.list(principal)

    @get(
        "/{subscription_id:str}",
        operation_id="getSubscription",
        summary="One subscription with its endpoint's health",
        responses={**_NOT_FOUND, **_FORBIDDEN},
    )
    async def read(
        self,
        subscription_id: FromPath[str],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> SubscriptionView:
        return await subscriptions.get(principal, subscription_id)

    @delete(
        "/{subscription_id:str}",
        operation_id="deleteSubscription",
        summary="Delete a subscription and its deliveries",
        responses={**_NOT_FOUND, **_FORBIDDEN},
    )
    async def remove(
        self,
        subscription_id: FromPath[str],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> None:
        await subscriptions.delete(principal, subscription_id)

    @post(
        "/{subscription_id:str}/rotate",
        operation_id="rotateSubscriptionSecret",
        summary="A new secret (shown only here); the old one keeps signing during the overlap window",
        description=(
            "Until `previous_secret_until`, `webhook-signature` carries two `v1,` signatures, one per secret, so "
            "a receiver may switch at any moment within the window."
        ),
        status_code=200,
        responses={
            **_NOT_FOUND,
            **_FORBIDDEN,
            409: problem_spec("Rotated by someone else meanwhile"),
            422: problem_spec("overlap_seconds out of range, or an Idempotency-Key used for another request"),
        },
    )
    async def rotate(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[RotateIn],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Rotated:
        return await subscriptions.rotate(principal, subscription_id, data)

    @get(
        "/{subscription_id:str}/deliveries",
        operation_id="listDeliveries",
        summary="The subscription's deliveries, oldest event first; state=dead lists the dead letters",
        responses={**_NOT_FOUND, **_FORBIDDEN, 400: problem_spec("Unknown state or bad page size")},
    )
    async def deliveries(
        self,
        subscription_id: FromPath[str],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
        delivery_state: Annotated[
            str | None,
            QueryParameter(
                name="state",
                description="pending, failed (will retry), succeeded or dead",
                pattern="^(pending|failed|succeeded|dead)$",
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=DELIVERIES_MAX_LIMIT)] = 100,
    ) -> Deliveries:
        return await subscriptions.deliveries(principal, subscription_id, state=delivery_state, limit=limit)

    @post(
        "/{subscription_id:str}/deliveries/{delivery_id:str}/retry",
        operation_id="retryDelivery",
        summary="Replay a dead (or failed) delivery now, with a fresh retry schedule",
        status_code=200,
        responses={
            **_NOT_FOUND,
            **_FORBIDDEN,
            409: problem_spec("The delivery is pending or succeeded"),
            422: problem_spec("The Idempotency-Key was used for another request"),
        },
    )
    async def retry(
        self,
        subscription_id: FromPath[str],
        delivery_id: FromPath[str],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> DeliveryView:
        return await subscriptions.retry(principal, subscription_id, delivery_id)


@get(
    "/api/v1/webhook-alerts",
    operation_id="listWebhookAlerts",
    summary="Webhook endpoints failing longer than the configured time",
    description=(
        "Each active subscription whose endpoint has failed without a success for longer than "
        "`webhook_alert_after_seconds`. The alert is also an audit record (`webhook.endpoint_failing`) and a "
        "warning in the log."
    ),
    tags=("events",),
    guards=[require_roles(Role.ADMIN, Role.SUPERVISOR)],
    dependencies={"subscriptions": Provide(provide_subscriptions, sync_to_thread=False)},
    responses={403: problem_spec("Not an admin or supervisor")},
)
async def webhook_alerts(subscriptions: NamedDependency[SubscriptionService]) -> EndpointAlerts:
    return await subscriptions.alerts()


@get(
    "/api/v1/events/stream",
    operation_id="streamEvents",
    summary="Live case events for consoles (Server-Sent Events), in the caller's scope",
    description=(
        "`event:` is the type, `id:` the event's sequence number, `data:` the webhook body `{type, timestamp, "
        "data}`. Clerks see their unit's cases, officers their department's, supervisors and admins all, systems "
        "with status:read all. A comment every 15 s keeps the connection open."
    ),
    tags=("events",),
    media_type="text/event-stream",
    guards=[require_roles(Role.CLERK, Role.OFFICER, Role.SUPERVISOR, Role.ADMIN, scope=STATUS_READ_SCOPE)],
    responses={503: problem_spec("The live stream is not configured in this process")},
)
async def event_stream(request: Request[Any, Any, Any], principal: NamedDependency[Principal]) -> ServerSentEvent:
    channels = channels_of(request.app)
    if channels is None:
        raise ServiceUnavailable("The live stream is not available in this process.")
    return ServerSentEvent(events_for(channels, principal), headers={"Cache-Control": "no-store"})


__all__ = ["SubscriptionController", "event_stream", "webhook_alerts"]
