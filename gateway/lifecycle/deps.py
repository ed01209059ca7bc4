"""Litestar dependencies shared by the case domains: services built per request from ``app.state``.

The services are small objects holding references (database, catalog, calendar, cipher, certificate lookup);
building them per request keeps them independent of lifespan ordering and easy to replace in tests.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

from litestar.datastructures import State

from catalog.calendar import WorkingCalendar, load_calendar
from gateway.certificates.store import CertificateStore
from gateway.intake.applicant import PersonalDataService
from gateway.intake.services import IntakeService
from gateway.lifecycle.events import StatusEventFeed
from gateway.lifecycle.services import LifecycleService
from gateway.tracking.services import TrackingService

_lock = threading.Lock()


@cache
def _calendar_for(config_dir: Path) -> WorkingCalendar:
    return load_calendar(config_dir)


def working_calendar(state: State) -> WorkingCalendar:
    """``app.state.calendar`` when the app set one, else the calendar of the settings' config dir (loaded once)."""
    calendar: Any = getattr(state, "calendar", None)
    if isinstance(calendar, WorkingCalendar):
        return calendar
    with _lock:
        return _calendar_for(state.settings.config_dir)


def provide_intake(state: State) -> IntakeService:
    return IntakeService(
        database=state.database,
        catalog=state.catalog,
        calendar=working_calendar(state),
        cipher=state.cipher,
        settings=state.settings,
        certificates=getattr(state, "certificates", None),
    )


def provide_lifecycle(state: State) -> LifecycleService:
    return LifecycleService(
        database=state.database, catalog=state.catalog, calendar=working_calendar(state), cipher=state.cipher
    )


def provide_personal_data(state: State) -> PersonalDataService:
    store: Any = getattr(state, "certificate_store", None)
    if not isinstance(store, CertificateStore):  # an app without the certificates lifespan (tests)
        store = CertificateStore(state.database, state.cipher)
    return PersonalDataService(database=state.database, cipher=state.cipher, store=store)


def provide_status_events(state: State) -> StatusEventFeed:
    return StatusEventFeed(database=state.database)


def provide_tracking(state: State) -> TrackingService:
    return TrackingService(
        database=state.database,
        calendar=working_calendar(state),
        cipher=state.cipher,
        limiter=getattr(state, "tracking_limiter", None),
    )


__all__ = [
    "provide_intake",
    "provide_lifecycle",
    "provide_personal_data",
    "provide_status_events",
    "provide_tracking",
    "working_calendar",
]
