"""The periodic purge of console sessions idle past the timeout (a session nobody signed out of stays in the
table until then; `SessionStore.resolve` also ends an idle session it is shown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.storage.faults import log_failed_round
from gateway.web.staff import sessions

log = logging.getLogger("onewindow.web.sessions")

#: Seconds between purges: a few per idle timeout, within these bounds.
MIN_INTERVAL_SECONDS = 60.0
MAX_INTERVAL_SECONDS = 900.0


async def _run(app: Litestar, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sessions(context_of(app)).purge_idle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed round is logged and retried next time; the task must keep running
            log_failed_round(log, "session purge", exc)


@contextlib.asynccontextmanager
async def session_purge_lifespan(app: Litestar) -> AsyncIterator[None]:
    idle_seconds = context_of(app).settings.console_idle_minutes * 60
    interval = min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, idle_seconds / 4))
    task = asyncio.create_task(_run(app, interval), name="onewindow-session-purge")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["session_purge_lifespan"]
