"""``/api/v1/applications`` (reading, transitions, queues) and ``/api/v1/supervision/summary``. Thin: the logic is
in `gateway.lifecycle.services`."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from gateway.cases.access import STATUS_READ_SCOPE, etag
from gateway.cases.numbers import TRACKING_NUMBER_PATTERN
from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.lifecycle.deps import provide_lifecycle, provide_status_events, provide_supervision
from gateway.lifecycle.events import EVENTS_MAX_LIMIT, StatusEventFeed, StatusEventPage
from gateway.lifecycle.schemas import ApplicationView, Queue, Summary, TransitionIn
from gateway.lifecycle.services import STATUS_FILTER, LifecycleService, status_filter
from gateway.lifecycle.supervision import SupervisionService
from gateway.openapi import documented_string
from gateway.problems import problem_spec
from gateway.storage.metadata import MAX_API_INTEGER

_STAFF = (Role.CLERK, Role.OFFICER, Role.SUPERVISOR, Role.ADMIN)


_NOT_FOUND = {404: problem_spec("No such application in your scope (the same answer as a missing one)")}


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
        responses={**_NOT_FOUND, 403: problem_spec("A system token without the status:read scope")},
    )
    async def read(
        self,
        application_id: FromPath[str],
        principal: NamedDependency[Principal],
        lifecycle: NamedDependency[LifecycleService],
    ) -> Response[ApplicationView]:
        view, row = await lifecycle.get(principal, application_id)
        return Response(view, headers={"ETag": etag(row), "Cache-Control": "no-store"})

    @get(
        "",
        operation_id="listApplications",
        summary="The caller's cases, earliest deadline first",
        description=(
            "Officers see their department's items, clerks their unit's filings and cases routed to it, "
            "supervisors and admins everything, a system token with the `status:read` scope every case past the "
            "draft stage (applicant masked, as everywhere). `status` takes one or more statuses "
            "(comma-separated); `due=soon` keeps open cases with at least 80 % of the promised time used, "
            "`due=overdue` those past their deadline; `tracking_number` finds the case with that number."
        ),
        guards=[require_roles(*_STAFF, scope=STATUS_READ_SCOPE)],
        responses={
            400: problem_spec("Unknown status or due filter, or not a tracking number"),
            403: problem_spec("A system token without the status:read scope"),
        },
    )
    async def queue(
        self,
        principal: NamedDependency[Principal],
        lifecycle: NamedDependency[LifecycleService],
        status: Annotated[
            str | None,
            QueryParameter(
                description="one or more statuses, comma-separated: in_review or accepted,in_review",
                schema_extra=documented_string(pattern=STATUS_FILTER.pattern, nullable=True),
            ),
        ] = None,
        due: Annotated[Literal["soon", "overdue"] | None, QueryParameter(description="soon or overdue")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_API_INTEGER)] = 0,
        tracking_number: Annotated[
            str | None,
            QueryParameter(
                description="办件编号, e.g. 430302202601050000014 (its date and check character are checked too)",
                schema_extra=documented_string(pattern=TRACKING_NUMBER_PATTERN, nullable=True),
            ),
        ] = None,
    ) -> Queue:
        return await lifecycle.queue(
            principal,
            statuses=status_filter(status),
            due=due,
            limit=limit,
            offset=offset,
            tracking_number=tracking_number,
        )

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
            409: problem_spec(
                "Not allowed from the current status for your role; `allowed` lists the statuses that are"
            ),
            412: problem_spec("If-Match does not match the current ETag"),
            422: problem_spec("Unknown status, or a required note / result is missing"),
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
        responses={400: problem_spec("Bad cursor or page size"), 403: problem_spec("A system without status:read")},
    )
    async def events(
        self,
        principal: NamedDependency[Principal],
        feed: NamedDependency[StatusEventFeed],
        after: Annotated[
            int, QueryParameter(ge=0, le=MAX_API_INTEGER, description="the next_after of your last call; 0 at first")
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=EVENTS_MAX_LIMIT)] = 100,
    ) -> StatusEventPage:
        return await feed.page(principal, after=after, limit=limit)


class SupervisionController(Controller):
    path = "/api/v1/supervision"
    tags = ("supervision",)
    dependencies = {"supervision": Provide(provide_supervision, sync_to_thread=False)}  # noqa: RUF012 - Litestar API

    @get(
        "/summary",
        operation_id="supervisionSummary",
        summary="Counts per item and handling unit: by status, open, overdue, due soon",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
        responses={403: problem_spec("Not a supervisor or admin")},
    )
    async def summary(
        self,
        principal: NamedDependency[Principal],
        supervision: NamedDependency[SupervisionService],
        unit: Annotated[str | None, QueryParameter(description="handling unit code")] = None,
        department: Annotated[str | None, QueryParameter(description="department code")] = None,
    ) -> Summary:
        return await supervision.summary(principal, unit=unit, department=department)


__all__ = ["ApplicationController", "StatusEventController", "SupervisionController"]
