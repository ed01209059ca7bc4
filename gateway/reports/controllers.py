"""``/api/v1/reports``: weekly and monthly reports as JSON, CSV or XLSX, their versions, regeneration, and the
report page with its SVG charts. Thin: the logic is in `gateway.reports.services`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, QueryParameter

from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.problems import problem_spec
from gateway.reports import charts
from gateway.reports.deps import provide_reports
from gateway.reports.exports import to_csv, to_xlsx
from gateway.reports.periods import Period, check_start, trailing
from gateway.reports.services import ReportService

_READERS = (Role.SUPERVISOR, Role.ADMIN, Role.CLERK)
_ERRORS = {
    404: problem_spec("Unit outside your scope (or unknown)"),
    422: problem_spec("`start` is not a Monday (weekly) or the first of a month (monthly)"),
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Start = Annotated[dt.date, QueryParameter(description="first day: a Monday (weekly) or the 1st (monthly)")]
Unit = Annotated[str | None, QueryParameter(description="street or community code; default the district")]
Format = Annotated[Literal["json", "csv", "xlsx"], QueryParameter(description="json, csv or xlsx")]
Version = Annotated[int | None, QueryParameter(ge=1, le=1_000_000, description="a stored version; default the latest")]


@dataclass
class ReportOperation(Operation):
    """The report's 200 answer in its three formats: JSON (as generated), CSV and XLSX (``format=``)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            content = dict(ok.content or {})
            content["text/csv; charset=utf-8"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            content[XLSX] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))
            ok.content = content


def _answer(document: dict[str, Any], fmt: str) -> Response[Any]:
    name = f"report-{document['period']}-{document['start']}-{document['unit']}"
    if fmt == "csv":
        return Response(
            to_csv(document),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            to_xlsx(document), media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'}
        )
    return Response(document)


async def _report(
    reports: ReportService, principal: Principal, period: Period, start: dt.date, unit: str | None, version: int | None
) -> dict[str, Any]:
    return (await reports.report(principal, period, start, unit, version)).document()


class ReportController(Controller):
    path = "/api/v1/reports"
    tags = ("reports",)
    dependencies = {"reports": Provide(provide_reports, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "/weekly",
        operation_id="weeklyReport",
        operation_class=ReportOperation,
        summary="A weekly report (周报告)",
        guards=[require_roles(*_READERS)],
        responses=_ERRORS,
    )
    async def weekly(
        self,
        principal: NamedDependency[Principal],
        reports: NamedDependency[ReportService],
        start: Start,
        unit: Unit = None,
        format: Format = "json",
        version: Version = None,
    ) -> Response[Any]:
        return _answer(await _report(reports, principal, "weekly", start, unit, version), format)

    @get(
        "/monthly",
        operation_id="monthlyReport",
        operation_class=ReportOperation,
        summary="A monthly report (月报告)",
        guards=[require_roles(*_READERS)],
        responses=_ERRORS,
    )
    async def monthly(
        self,
        principal: NamedDependency[Principal],
        reports: NamedDependency[ReportService],
        start: Start,
        unit: Unit = None,
        format: Format = "json",
        version: Version = None,
    ) -> Response[Any]:
        return _answer(await _report(reports, principal, "monthly", start, unit, version), format)

    @get(
        "/{period:str}/versions",
        operation_id="reportVersions",
        summary="Every stored version of a report",
        guards=[require_roles(*_READERS)],
        responses=_ERRORS,
    )
    async def versions(
        self,
        period: FromPath[Literal["weekly", "monthly"]],
        principal: NamedDependency[Principal],
        reports: NamedDependency[ReportService],
        start: Start,
        unit: Unit = None,
    ) -> dict[str, Any]:
        check_start(period, start)
        code = reports.resolve_unit(principal, unit)
        items = await reports.versions(period, start, code)
        return {"items": items, "total": len(items)}

    @post(
        "/{period:str}/generate",
        operation_id="generateReport",
        summary="Generate a new version of a report now (earlier versions are kept)",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
        status_code=201,
        responses=_ERRORS,
    )
    async def generate(
        self,
        period: FromPath[Literal["weekly", "monthly"]],
        principal: NamedDependency[Principal],
        reports: NamedDependency[ReportService],
        start: Start,
        unit: Unit = None,
    ) -> dict[str, Any]:
        check_start(period, start)
        code = reports.resolve_unit(principal, unit)
        return (await reports.generate(period, start, [code], actor=principal.actor))[code].document()

    @get(
        "/{period:str}/chart.svg",
        operation_id="reportChart",
        summary="A chart of a report (SVG)",
        guards=[require_roles(*_READERS)],
        media_type="image/svg+xml",
        responses=_ERRORS,
    )
    async def chart(
        self,
        period: FromPath[Literal["weekly", "monthly"]],
        principal: NamedDependency[Principal],
        reports: NamedDependency[ReportService],
        start: Start,
        unit: Unit = None,
        chart: Annotated[Literal["trend", "departments", "units"], QueryParameter()] = "trend",
    ) -> Response[str]:
        document = await _report(reports, principal, period, start, unit, None)
        if chart == "trend":
            svg = charts.trend_chart(
                period, await reports.totals_trend(period, trailing(period, start), document["unit"])
            )
        elif chart == "departments":
            svg = charts.department_bars(document)
        else:
            svg = charts.unit_bars(document)
        return Response(svg, media_type="image/svg+xml")

    @get(
        "/{period:str}/page",
        operation_id="reportPage",
        summary="The report page with its charts (HTML)",
        guards=[require_roles(*_READERS)],
        media_type="text/html",
        responses=_ERRORS,
    )
    async def page(
        self,
        period: FromPath[Literal["weekly", "monthly"]],
        principal: NamedDependency[Principal],
        reports: NamedDependency[ReportService],
        start: Start,
        unit: Unit = None,
    ) -> Response[str]:
        document = await _report(reports, principal, period, start, unit, None)
        history = await reports.totals_trend(period, trailing(period, start), document["unit"])
        svgs = [charts.trend_chart(period, history), charts.department_bars(document), charts.unit_bars(document)]
        return Response(charts.report_page(document, svgs), media_type="text/html; charset=utf-8")


__all__ = ["ReportController"]
