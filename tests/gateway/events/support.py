"""Dispatcher tests without the HTTP app: a subscription and events written straight through the services."""

from __future__ import annotations

import uuid

import msgspec

from gateway.events import outbox, types
from gateway.events.dispatcher import Dispatcher
from gateway.events.schemas import SubscriptionIn
from gateway.events.subscriptions import SubscriptionService
from gateway.identity.principal import Principal, Role
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.storage import Database

ADMIN = Principal(token_id="t-admin", role=Role.ADMIN)


def loopback_settings(settings: Settings, **extra: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allowed_networks": "127.0.0.0/8",
        "webhook_time_scale": 0.001,
        "webhook_timeout_seconds": 3.0,
        "events_poll_seconds": 0.02,
        # A Redis channel of this test's own: tests running side by side share the Redis server, and pub/sub
        # ignores the database number.
        "redis_channel_prefix": f"test-{uuid.uuid4().hex[:12]}",
    }
    values.update(extra)
    return msgspec.structs.replace(settings, **values)


def cipher_for(settings: Settings) -> FieldCipher:
    return FieldCipher(KeyRing.load(settings.data_dir))


async def subscribe(db: Database, settings: Settings, url: str, events: tuple[str, ...] = types.EVENT_TYPES) -> str:
    """A subscription to ``url``; returns its secret."""
    service = SubscriptionService(database=db, cipher=cipher_for(settings), settings=settings)
    created = await service.create(ADMIN, SubscriptionIn(url=url, events=list(events)))
    return created.secret


def case(n: int) -> outbox.CaseRef:
    return outbox.CaseRef(
        id=f"{n:032x}",
        item_code="0205006100",
        department="civil_affairs",
        filing_unit="430302001000",
        handling_unit="430302001000",
        tracking_number=f"T{n}",
        status="accepted",
    )


async def emit_many(db: Database, cases: int, per_case: int) -> None:
    """``per_case`` status changes for each of ``cases`` cases, one transaction per event, interleaved."""
    for step in range(per_case):
        for n in range(cases):
            async with db.transaction() as conn:
                await outbox.emit(
                    conn, types.APPLICATION_STATUS_CHANGED, case(n), {"status": "in_review", "step": step}
                )


def dispatcher(db: Database, settings: Settings) -> Dispatcher:
    return Dispatcher(database=db, cipher=cipher_for(settings), settings=settings)
