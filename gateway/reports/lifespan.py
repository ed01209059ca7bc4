"""The process's report child (`gateway.reports.workers`), given to the context for the process's lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.reports.workers import ReportWorkers


@contextlib.asynccontextmanager
async def report_workers_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Give the process its report child (``Settings.reports_in_child_process``); stop the child on shutdown."""
    context = context_of(app)
    if not context.settings.reports_in_child_process:
        yield
        return
    workers = ReportWorkers(context.settings)
    context.report_workers = workers
    try:
        yield
    finally:
        context.report_workers = None
        workers.close()


__all__ = ["report_workers_lifespan"]
