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
from litestar.channels import ChannelsPlugin

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


def channel_publisher(plugin: ChannelsPlugin) -> Publisher:
    """Publish events to the live stream's channel. Before the channels plugin has started (the lifespans run
    before it, and the dispatcher's first round may find events left by a previous run) and after it stopped,
    nobody can be listening: the events are skipped for the stream, quietly (the webhooks still carry them)."""

    async def publish(events: list[dict[str, Any]]) -> None:
        try:
            plugin.publish(encode(events), CHANNEL)
        except RuntimeError:  # "not yet initialized": before start-up or after shutdown
            log.info("live stream not running (start-up or shutdown): %d event(s) not streamed", len(events))

    return publish


@contextlib.asynccontextmanager
async def events_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The dispatcher inside the serving process (after the database lifespan), publishing to the live stream."""
    context = context_of(app)
    if not context.settings.jobs_in_process:
        yield
        return
    channels = channels_of(app)
    publish = channel_publisher(channels) if channels is not None else None
    dispatcher = Dispatcher(
        database=context.database, cipher=context.cipher, settings=context.settings, publish=publish
    )
    async with running(dispatcher):
        yield


__all__ = ["channel_publisher", "events_lifespan", "running"]
