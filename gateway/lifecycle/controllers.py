"""``/api/v1/applications`` (reading, transitions, queues) and ``/api/v1/supervision/summary``. Thin: the logic is
in `gateway.lifecycle.services`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.intake.cases import STATUS_READ_SCOPE, etag
from gateway.lifecycle.deps import provide_lifecycle, provide_status_events
from gateway.lifecycle.events import EVENTS_MAX_LIMIT, StatusEventFeed, StatusEventPage
from gateway.lifecycle.schemas import ApplicationView, Summary, TransitionIn
from gateway.lifecycle.services import LifecycleService
from gateway.problems import PROBLEM_JSON, Problem

_STAFF = (Role.CLERK, Role.OFFICER, Role.SUPERVISOR, Role.ADMIN)


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=description)


_NOT_FOUND = {404: _problem("No such application in your scope (the same answer as a missing one)")}


class ApplicationController(Controller):
    path = "/api/v1/applications"
    tags = ("lifecycle",)
    dependencies = {"lifecycle": Provide(provide_lifecycle, sync_to_thread=False)}  # noqa: RUF012 - Litestar API

    @get(
        "/{application_id:str}",
        operation_id="getApplication",
        summary="An application with its status, deadline, clock, materials and history",
        description=(
            "The `ETag` header carries the application's version: send it back as `If-Match` on transitions, "
            "uploads and acceptance to refuse a change made since (412). The applicant is shown masked "
            "(`GET …/applicant` reads it unmasked, audited). A system token with the `status:read` scope reads "
            "any case past the draft stage, without the free text (notes, result, purpose)."
        ),
        guards=[require_roles(*_STAFF, scope=STATUS_READ_SCOPE)],
        responses={**_NOT_FOUND, 403: _problem("A system token without the status:read scope")},
    )
    async def read(
        self,
        application_id: FromPath[str],
        principal: NamedDependency[Principal],
        lifecycle: NamedDependency[LifecycleService],
    ) -> Response[ApplicationView]:
        view, row = await lifecycle.get(principal, application_id)
        return Response(view, headers={"ETag": etag(row), "Cache-Control": "no-store"})

    @post(
        "/{application_id:str}/transitions",
        operation_id="transitionApplication",
        summary="Move an application to another status",
        description=(
            "Officers: accepted → in_review; in_review → correction_required (clock stops) / special_procedure "
            "(clock stops) / approved / denied (`result` required); special_procedure → in_review (clock resumes); "
            "approved / denied → delivered. Clerks: draft → not_accepted (`note` = the reason) or withdrawn; "
            "correction_required → in_review after uploading the corrected materials (the clock resumes with the "
            "working days that were left); withdrawals. A move the table does not allow answers 409 with "
            "`allowed`. `If-Match` is optional; when given and stale, 412."
        ),
        guards=[require_roles(Role.CLERK, Role.OFFICER)],
        status_code=200,
        responses={
            **_NOT_FOUND,
            409: _problem("Not allowed from the current status for your role; `allowed` lists the statuses that are"),
            412: _problem("If-Match does not match the current ETag"),
            422: _problem("Unknown status, or a required note / result is missing"),
        },
    )
    async def transition(
        self,
        application_id: FromPath[str],
        data: JSONBody[TransitionIn],
        principal: NamedDependency[Principal],
        lifecycle: NamedDependency[LifecycleService],
        if_match: Annotated[str | None, HeaderParameter(name="If-Match")] = None,
    ) -> Response[ApplicationView]:
        view, row = await lifecycle.transition(principal, application_id, data, if_match)
        return Response(view, headers={"ETag": etag(row)})


class StatusEventController(Controller):
    path = "/api/v1/status-events"
    tags = ("lifecycle",)
    dependencies = {"feed": Provide(provide_status_events, sync_to_thread=False)}  # noqa: RUF012 - Litestar API

    @get(
        "",
        operation_id="listStatusEvents",
        summary="Status changes since a cursor, oldest first (poll with after=next_after)",
        description=(
            "Every status the caller's cases reached, in the order reached, each with `seq`. Keep `next_after` "
            "and send it as `after` on the next call: nothing is missed or repeated. `has_more` says to call "
            "again at once. For systems with the `status:read` scope (cases past the draft stage) and staff "
            "(their own scope). No personal data and no notes."
        ),
        guards=[require_roles(*_STAFF, scope=STATUS_READ_SCOPE)],
        responses={400: _problem("Bad cursor or page size"), 403: _problem("A system without status:read")},
    )
    async def events(
        self,
        principal: NamedDependency[Principal],
        feed: NamedDependency[StatusEventFeed],
        after: Annotated[int, QueryParameter(ge=0, description="the next_after of your last call; 0 at first")] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=EVENTS_MAX_LIMIT)] = 100,
    ) -> StatusEventPage:
        return await feed.page(principal, after=after, limit=limit)


class SupervisionController(Controller):
    path = "/api/v1/supervision"
    tags = ("supervision",)
    dependencies = {"lifecycle": Provide(provide_lifecycle, sync_to_thread=False)}  # noqa: RUF012 - Litestar API

    @get(
        "/summary",
        operation_id="supervisionSummary",
        summary="Counts per item and handling unit: by status, open, overdue, due soon",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
    )
    async def summary(
        self,
        principal: NamedDependency[Principal],
        lifecycle: NamedDependency[LifecycleService],
        unit: Annotated[str | None, QueryParameter(description="handling unit code")] = None,
        department: Annotated[str | None, QueryParameter(description="department code")] = None,
    ) -> Summary:
        return await lifecycle.summary(principal, unit=unit, department=department)


__all__ = ["ApplicationController", "StatusEventController", "SupervisionController"]
