"""Bodies of the webhook subscription routes and the live stream (msgspec Structs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from gateway.events.types import EVENT_TYPES

URL_MAX = 2000
CODES_MAX = 200
OVERLAP_MAX_SECONDS = 7 * 24 * 3600

Codes = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=CODES_MAX)]


class Filters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only events of these items, departments, units (filing or handling); an empty list: any."""

    items: Codes = msgspec.field(default_factory=list)
    departments: Codes = msgspec.field(default_factory=list)
    units: Codes = msgspec.field(default_factory=list)


class SubscriptionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/subscriptions``."""

    #: Where deliveries go: http(s), a public address unless the operator allows the network.
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=URL_MAX)]
    #: Event types (docs/events.md): application.accepted, application.status_changed, application.completed,
    #: evaluation.created, rectification.opened, rectification.closed, certificate.issued.
    events: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
        msgspec.Meta(min_length=1, max_length=len(EVENT_TYPES)),
    ]
    filters: Filters | None = None
    description: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class EndpointHealth(msgspec.Struct, kw_only=True):
    consecutive_failures: int
    #: The endpoint has been failing since then (null while it is healthy).
    failing_since: dt.datetime | None = None
    #: True once it failed longer than the configured time (the alert was raised).
    alerting: bool = False
    breaker_open_until: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None
    last_error: str | None = None


class SubscriptionView(msgspec.Struct, kw_only=True):
    id: str
    url: str
    events: list[str]
    filters: Filters
    #: ``active`` or ``disabled``.
    status: str
    created_at: dt.datetime
    health: EndpointHealth
    description: str | None = None
    disabled_reason: str | None = None
    #: After a rotation, the previous secret still signs until then.
    previous_secret_until: dt.datetime | None = None


class SubscriptionCreated(SubscriptionView, kw_only=True):
    """The new subscription with its secret — shown here only, never again."""

    secret: str


class Subscriptions(msgspec.Struct, kw_only=True):
    items: list[SubscriptionView]
    total: int


class RotateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/subscriptions/{id}/rotate``: how long the old secret keeps signing (default: the setting)."""

    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=OVERLAP_MAX_SECONDS)] | None = None


class Rotated(msgspec.Struct, kw_only=True):
    id: str
    #: The new secret — shown here only.
    secret: str
    #: Both signatures are sent until then.
    previous_secret_until: dt.datetime


class DeliveryView(msgspec.Struct, kw_only=True):
    id: str
    subscription_id: str
    #: The event's id, sent as ``webhook-id``.
    event_id: str
    event_type: str
    #: ``pending``, ``failed`` (will retry), ``succeeded`` or ``dead``.
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    application_id: str | None = None
    last_attempt_at: dt.datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    succeeded_at: dt.datetime | None = None


class Deliveries(msgspec.Struct, kw_only=True):
    items: list[DeliveryView]
    total: int


class EndpointAlert(msgspec.Struct, kw_only=True):
    subscription_id: str
    url: str
    failing_since: dt.datetime
    failing_for_seconds: int
    consecutive_failures: int
    last_error: str | None = None
    #: When the alert was raised (audit record ``webhook.endpoint_failing``); null: not yet swept.
    alerted_at: dt.datetime | None = None


class EndpointAlerts(msgspec.Struct, kw_only=True):
    """Endpoints failing longer than ``alert_after_seconds``."""

    items: list[EndpointAlert]
    total: int
    alert_after_seconds: int


__all__ = [
    "Deliveries",
    "DeliveryView",
    "EndpointAlert",
    "EndpointAlerts",
    "EndpointHealth",
    "Filters",
    "RotateIn",
    "Rotated",
    "SubscriptionCreated",
    "SubscriptionIn",
    "SubscriptionView",
    "Subscriptions",
]
