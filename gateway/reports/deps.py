"""The report service built from the application context."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.context import AppContext
from gateway.reports.services import ReportService


def provide_reports(context: NamedDependency[AppContext]) -> ReportService:
    return ReportService(
        database=context.database,
        calendar=context.calendar,
        catalog=context.catalog,
        workers=context.report_workers,
    )


__all__ = ["provide_reports"]
