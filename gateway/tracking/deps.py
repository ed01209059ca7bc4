"""Services of the tracking routes, built from the application context."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.context import AppContext
from gateway.tracking.rectifications import RectificationService
from gateway.tracking.services import TrackingService


def provide_tracking(context: NamedDependency[AppContext]) -> TrackingService:
    """Also called directly by the public routes: building it is a few attribute assignments, cheaper than
    resolving a dependency on the gateway's hottest route."""
    return TrackingService(
        database=context.database,
        calendar=context.calendar,
        cipher=context.cipher,
        limiter=context.tracking_limiter,
    )


def provide_rectifications(context: NamedDependency[AppContext]) -> RectificationService:
    return RectificationService(database=context.database, calendar=context.calendar)


__all__ = ["provide_rectifications", "provide_tracking"]
