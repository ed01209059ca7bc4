"""Where the event jobs run: inside ``serve`` / ``demo`` (`events_lifespan`, unless ``jobs_in_process`` is off) or
alone in ``onewindow worker`` (`run_worker`). Any number of either may run against one database: claims keep each
delivery with one dispatcher at a time (`gateway.events.dispatcher`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar

from gateway.context import context_of
from gateway.events.dispatcher import Dispatcher, Publisher
from gateway.events.stream import CHANNEL, channels_of, encode
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.storage.database import Database

log = logging.getLogger("onewindow.events")


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[asyncio.Event]:
    """``dispatcher.run`` in a task until the block ends (or the returned event is set)."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop), name="onewindow-events")
    try:
        yield stop
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, dispatcher.timeout + 5)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dispatcher.close()


@contextlib.asynccontextmanager
async def events_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The dispatcher inside the serving process (after the database lifespan), publishing to the live stream."""
    context = context_of(app)
    if not context.settings.jobs_in_process:
        yield
        return
    channels = channels_of(app)
    publish: Publisher | None = None
    if channels is not None:
        plugin = channels

        async def publish_to_channels(events: list[dict[str, Any]]) -> None:
            plugin.publish(encode(events), CHANNEL)

        publish = publish_to_channels
    dispatcher = Dispatcher(
        database=context.database, cipher=context.cipher, settings=context.settings, publish=publish
    )
    async with running(dispatcher):
        yield


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """``onewindow worker``: the jobs without HTTP until ``stop`` is set. With Redis, events reach the live stream
    of every serving process through Redis pub/sub."""
    from gateway.stores import redis_client

    db = Database.from_settings(settings)
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    backend = None
    try:
        await db.migrate()
        publish: Publisher | None = None
        if redis is not None:
            from litestar.channels.backends.redis import RedisChannelsPubSubBackend

            redis_backend = RedisChannelsPubSubBackend(redis=redis)
            await redis_backend.on_startup()
            backend = redis_backend

            async def publish_to_redis(events: list[dict[str, Any]]) -> None:
                await redis_backend.publish(encode(events), [CHANNEL])

            publish = publish_to_redis
        cipher = FieldCipher(KeyRing.load(settings.data_dir))
        dispatcher = Dispatcher(database=db, cipher=cipher, settings=settings, publish=publish)
        log.info("event worker %s on %s", dispatcher.owner, db.describe())
        async with running(dispatcher) as finished:
            await stop.wait()
            finished.set()
    finally:
        if backend is not None:
            await backend.on_shutdown()
        if redis is not None:
            await redis.aclose()
        await db.dispose()


__all__ = ["events_lifespan", "run_worker", "running"]
