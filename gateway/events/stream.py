"""The live stream for consoles: Server-Sent Events of case events, filtered by the caller's scope.

Events reach the stream through Litestar channels: the dispatcher publishes every event it fans out (right after
the fan-out commits, so a change shows within a poll interval, 0.1 s by default) on the ``case-events`` channel.
The backend is in memory in the embedded default (the jobs run in the serving process) and Redis when
``ONEWINDOW_REDIS_URL`` is set — then a dispatcher in any process (``onewindow worker``, another ``serve``
worker) reaches every process's subscribers. The stream is a convenience for people watching: the webhooks and
the status-event feed are what systems rely on.

``GET /api/v1/events/stream``: ``event:`` is the event type, ``id:`` the outbox sequence number, ``data:`` the
webhook body (``{"type", "timestamp", "data"}``). A comment line every 15 s keeps proxies from closing an idle
stream. Scope: a clerk sees events of cases filed at or handled by their unit, an officer their department's,
supervisors and admins all, a system token with ``status:read`` all (events exist only past the draft stage).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from litestar import Litestar
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.response import ServerSentEventMessage
from redis.asyncio import Redis

from gateway.identity.principal import Principal, Role

CHANNEL = "case-events"
HEARTBEAT_SECONDS = 15.0
#: Events a slow subscriber may fall behind by before the oldest are dropped (it is a view, not a record).
SUBSCRIBER_BACKLOG = 1000

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


def channels_plugin(redis: Redis | None, prefix: str = "onewindow") -> ChannelsPlugin:
    """The app's channels: Redis pub/sub (channels named ``<prefix>_<channel>``) when a client is given, else in
    memory."""
    backend = (
        MemoryChannelsBackend()
        if redis is None
        else RedisChannelsPubSubBackend(redis=redis, key_prefix=f"{prefix}_CHANNELS")
    )
    return ChannelsPlugin(
        backend=backend,
        channels=[CHANNEL],
        subscriber_max_backlog=SUBSCRIBER_BACKLOG,
        subscriber_backlog_strategy="dropleft",
    )


def channels_of(app: Litestar) -> ChannelsPlugin | None:
    """The app's channels plugin (None when the app was built without one)."""
    try:
        return app.plugins.get(ChannelsPlugin)
    except KeyError:
        return None


def encode(events: list[dict[str, Any]]) -> bytes:
    return _ENCODER.encode(events)


def sees(principal: Principal, event: dict[str, Any]) -> bool:
    """Whether ``principal`` may see ``event`` on the stream (the case scope rule)."""
    scope = event.get("scope") or {}
    if principal.role is Role.SYSTEM:
        return principal.has_scope("status:read")
    return principal.can_see(
        units=(scope.get("filing_unit"), scope.get("handling_unit")), department=scope.get("department")
    )


def message(event: dict[str, Any]) -> ServerSentEventMessage:
    body = _ENCODER.encode({"type": event["type"], "timestamp": event["timestamp"], "data": event["data"]})
    return ServerSentEventMessage(data=body.decode(), event=event["type"], id=str(event["seq"]))


async def events_for(
    channels: ChannelsPlugin, principal: Principal, *, heartbeat: float = HEARTBEAT_SECONDS
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """The caller's events as SSE messages, with a comment every ``heartbeat`` seconds of silence."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
    async with channels.start_subscription([CHANNEL]) as subscriber:

        async def pump() -> None:
            async for raw in subscriber.iter_events():
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(raw)

        task = asyncio.create_task(pump())
        try:
            yield ServerSentEventMessage(comment="connected", data=None)
            while True:
                try:
                    raw = await asyncio.wait_for(queue.get(), heartbeat)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                    continue
                for event in _DECODER.decode(raw):
                    if sees(principal, event):
                        yield message(event)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["CHANNEL", "channels_of", "channels_plugin", "encode", "events_for", "sees"]
