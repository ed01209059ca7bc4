"""``/api/v1/evidence``: checks of commitments (事后核查) and the flagged cases, consent withdrawal, the prefill
rate. Thin: the logic is in `gateway.evidence.checks` and `gateway.evidence.services`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway.evidence.checks import LIST_MAX, CheckService, CheckStatus
from gateway.evidence.deps import provide_checks, provide_evidence
from gateway.evidence.rates import RateGroup
from gateway.evidence.schemas import (
    ApplicationRate,
    CheckList,
    CheckOutcome,
    CheckView,
    ConsentWithdrawn,
    PrefillRateReport,
    WithdrawConsent,
)
from gateway.evidence.services import EvidenceService
from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.problems import problem_spec

_STAFF = (Role.CLERK, Role.OFFICER, Role.SUPERVISOR, Role.ADMIN)


class EvidenceController(Controller):
    path = "/api/v1/evidence"
    tags = ("evidence",)
    dependencies = {  # noqa: RUF012 - Litestar layer API
        "evidence": Provide(provide_evidence, sync_to_thread=False),
        "checks": Provide(provide_checks, sync_to_thread=False),
    }

    @get(
        "/checks",
        operation_id="listEvidenceChecks",
        summary="Checks of commitments (事后核查); status=failed lists the flagged cases",
        description=(
            "Officers see their department's, clerks their unit's, supervisors every check, earliest due first. "
            "A failed check has flagged its case (`application.flagged` in the audit log)."
        ),
        guards=[require_roles(*_STAFF)],
        responses={403: problem_spec("Not staff")},
    )
    async def list_checks(
        self,
        principal: NamedDependency[Principal],
        checks: NamedDependency[CheckService],
        status: Annotated[CheckStatus | None, QueryParameter(description="open, passed or failed")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=LIST_MAX)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> CheckList:
        return await checks.list(principal, status=status, limit=limit, offset=offset)

    @post(
        "/checks/{check_id:str}/outcome",
        operation_id="recordEvidenceCheck",
        summary="Record a check's outcome: passed, or failed (flags the case for the supervisors)",
        guards=[require_roles(Role.OFFICER, Role.SUPERVISOR)],
        status_code=200,
        responses={
            403: problem_spec("Not the department's officer or a supervisor"),
            404: problem_spec("No such check in your scope"),
            409: problem_spec("The check was already recorded"),
            422: problem_spec("`passed` missing, or a failed check without a `note`"),
        },
    )
    async def record_check(
        self,
        check_id: FromPath[str],
        data: JSONBody[CheckOutcome],
        principal: NamedDependency[Principal],
        checks: NamedDependency[CheckService],
    ) -> CheckView:
        return await checks.record(principal, check_id, data)

    @post(
        "/consent-withdrawals",
        operation_id="withdrawEvidenceConsent",
        summary="The applicant withdraws consent to reuse their verified copies (never offered again)",
        guards=[require_roles(Role.CLERK)],
        status_code=200,
        responses={403: problem_spec("Not a clerk"), 422: problem_spec("`id_number` missing or invalid")},
    )
    async def withdraw(
        self,
        data: JSONBody[WithdrawConsent],
        principal: NamedDependency[Principal],
        evidence: NamedDependency[EvidenceService],
    ) -> ConsentWithdrawn:
        return await evidence.withdraw(principal, data)

    @get(
        "/prefill-rate",
        operation_id="prefillRate",
        summary="Share of required materials satisfied without paper (A, B or D) vs new uploads (C)",
        description=(
            "Applications accepted from `start` to `end` (inclusive; default: this month so far), in total and per "
            "`group` (item, unit, department, day or month). Supervisors see the district, clerks their unit's "
            "cases, officers their department's. `rate` is null when nothing was satisfied."
        ),
        guards=[require_roles(*_STAFF)],
        responses={403: problem_spec("Not staff"), 422: problem_spec("A bad period or group")},
    )
    async def rate(
        self,
        principal: NamedDependency[Principal],
        evidence: NamedDependency[EvidenceService],
        start: Annotated[dt.date | None, QueryParameter(description="first acceptance date")] = None,
        end: Annotated[dt.date | None, QueryParameter(description="last acceptance date")] = None,
        group: Annotated[RateGroup, QueryParameter(description="item, unit, department, day or month")] = "item",
        unit: Annotated[str | None, QueryParameter(description="handling unit code")] = None,
        item: Annotated[str | None, QueryParameter(description="item code")] = None,
    ) -> PrefillRateReport:
        return await evidence.rates(principal, start=start, end=end, group=group, unit=unit, item=item)

    @get(
        "/prefill-rate/applications/{application_id:str}",
        operation_id="applicationPrefillRate",
        summary="One application's required materials by level, and its prefill rate",
        guards=[require_roles(*_STAFF)],
        responses={403: problem_spec("Not staff"), 404: problem_spec("No such application in your scope")},
    )
    async def application_rate(
        self,
        application_id: FromPath[str],
        principal: NamedDependency[Principal],
        evidence: NamedDependency[EvidenceService],
    ) -> ApplicationRate:
        return await evidence.application(principal, application_id)


__all__ = ["EvidenceController"]
