"""Where the event jobs run: inside ``serve`` / ``demo`` (`events_lifespan`, unless ``jobs_in_process`` is off) or
alone in ``onewindow worker`` (which runs the application's lifespans without serving HTTP). Any number of either
may run against one database: claims keep each delivery with one dispatcher at a time (`gateway.events.dispatcher`)."""

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


__all__ = ["events_lifespan", "running"]
