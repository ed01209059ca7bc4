"""Dependency providers of the lifecycle routes: services built per request from the application context."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.certificates.issuer import district_issuer
from gateway.certificates.store import CertificateStore
from gateway.context import AppContext
from gateway.evidence.results import ResultIssuer
from gateway.lifecycle.events import StatusEventFeed
from gateway.lifecycle.services import LifecycleService
from gateway.lifecycle.supervision import SupervisionService


def provide_lifecycle(context: NamedDependency[AppContext]) -> LifecycleService:
    store = context.certificate_store or CertificateStore(context.database, context.cipher)
    results = ResultIssuer(
        catalog=context.catalog,
        cipher=context.cipher,
        issuer=district_issuer(context.settings.data_dir),
        store=store,
    )
    return LifecycleService(
        database=context.database,
        catalog=context.catalog,
        calendar=context.calendar,
        cipher=context.cipher,
        results=results,
    )


def provide_supervision(context: NamedDependency[AppContext]) -> SupervisionService:
    return SupervisionService(database=context.database, calendar=context.calendar)


def provide_status_events(context: NamedDependency[AppContext]) -> StatusEventFeed:
    return StatusEventFeed(database=context.database)


__all__ = ["provide_lifecycle", "provide_status_events", "provide_supervision"]
