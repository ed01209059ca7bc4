"""Dependency providers of the events routes."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.context import AppContext
from gateway.events.subscriptions import SubscriptionService
from gateway.stores import IdempotentRequest


def provide_subscriptions(
    context: NamedDependency[AppContext], idempotency: NamedDependency[IdempotentRequest | None]
) -> SubscriptionService:
    return SubscriptionService(
        database=context.database, cipher=context.cipher, settings=context.settings, idempotency=idempotency
    )


__all__ = ["provide_subscriptions"]
