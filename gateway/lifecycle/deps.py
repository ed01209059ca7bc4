"""Dependency providers of the lifecycle routes: services built per request from the application context."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.context import AppContext
from gateway.lifecycle.events import StatusEventFeed
from gateway.lifecycle.services import LifecycleService
from gateway.lifecycle.supervision import SupervisionService


def provide_lifecycle(context: NamedDependency[AppContext]) -> LifecycleService:
    return LifecycleService(
        database=context.database, catalog=context.catalog, calendar=context.calendar, cipher=context.cipher
    )


def provide_supervision(context: NamedDependency[AppContext]) -> SupervisionService:
    return SupervisionService(database=context.database, calendar=context.calendar)


def provide_status_events(context: NamedDependency[AppContext]) -> StatusEventFeed:
    return StatusEventFeed(database=context.database)


__all__ = ["provide_lifecycle", "provide_status_events", "provide_supervision"]
