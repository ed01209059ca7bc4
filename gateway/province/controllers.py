"""``/api/v1/province``: the reconciliation with the provincial platform and the reporting backlog (admins and
supervisors). Thin: the logic is in `gateway.province.reconcile` and `gateway.province.status`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from catalog.calendar import district_today
from gateway.context import AppContext
from gateway.identity.auth import require_roles
from gateway.identity.principal import Role
from gateway.problems import NotFound, ServiceUnavailable, problem_spec
from gateway.province.reconcile import Reconciliation, reconcile
from gateway.province.status import ReportingStatus, reporting_status
from gateway.province.target import PlatformError, TargetError, load_target


class ProvinceController(Controller):
    path = "/api/v1/province"
    tags = ("province",)
    guards = [require_roles(Role.ADMIN, Role.SUPERVISOR)]  # noqa: RUF012 - Litestar API

    @get(
        "/reconciliation",
        operation_id="reconcileProvince",
        summary="Counts of one day's case steps by status, ours against the provincial platform's, and differences",
        description=(
            "`day` is a local date (default: yesterday). `ours` counts the history rows reported to the platform, "
            "`theirs` what the platform's count query answers; `differences` lists each status where they differ, "
            "and `pending` how many of the day's steps are still on their way."
        ),
        responses={
            403: problem_spec("Not an admin or supervisor"),
            404: problem_spec("No provincial platform is configured"),
            503: problem_spec("The provincial platform did not answer the count query"),
        },
    )
    async def reconciliation(
        self,
        context: NamedDependency[AppContext],
        day: Annotated[dt.date | None, QueryParameter(description="YYYY-MM-DD (local date); default yesterday")] = None,
    ) -> Reconciliation:
        settings = context.settings
        try:
            target = load_target(settings.config_dir, settings.province_url)
        except TargetError:
            target = None
        if target is None or not target.enabled:
            raise NotFound("No provincial platform is configured.")
        try:
            return await reconcile(context.database, target, day or district_today() - dt.timedelta(days=1))
        except PlatformError as exc:
            raise ServiceUnavailable(f"The provincial platform did not answer the count query ({exc}).") from None

    @get(
        "/status",
        operation_id="provinceReportingStatus",
        summary="The reporting backlog: steps sent, waiting and retrying, the oldest waiting and the last error",
        responses={403: problem_spec("Not an admin or supervisor")},
    )
    async def status(self, context: NamedDependency[AppContext]) -> ReportingStatus:
        return await reporting_status(context.database)


__all__ = ["ProvinceController"]
