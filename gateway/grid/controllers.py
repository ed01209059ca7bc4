"""``/api/v1/grid``: grid workers' tasks, consultations, their cases (masked) and the audited phone read; a clerk's
grid correction; coverage per grid. Thin: the logic is in `gateway.grid.services`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway.grid.deps import provide_grid
from gateway.grid.notice import notice_html
from gateway.grid.schemas import (
    CompleteTask,
    ConsultationView,
    CoverageReport,
    GridCase,
    GridCorrection,
    NewConsultation,
    PhoneRead,
    TaskList,
    TaskView,
)
from gateway.grid.services import GridService
from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.problems import problem_spec

_READERS = (Role.GRID_WORKER, Role.SUPERVISOR, Role.ADMIN)
_NO_STORE = {"Cache-Control": "no-store"}


class GridController(Controller):
    path = "/api/v1/grid"
    tags = ("grid",)
    dependencies = {"grid": Provide(provide_grid, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "/tasks",
        operation_id="listGridTasks",
        summary="Grid tasks (before / during / after), earliest due first; caught up before they are listed",
        guards=[require_roles(*_READERS)],
    )
    async def list_tasks(
        self,
        principal: NamedDependency[Principal],
        grid: NamedDependency[GridService],
        stage: Annotated[Literal["before", "during", "after"] | None, QueryParameter(description="stage")] = None,
        status: Annotated[Literal["open", "done"] | None, QueryParameter(description="open or done")] = None,
        overdue: Annotated[bool, QueryParameter(description="only open tasks past their due date")] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 200,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> TaskList:
        return await grid.list_tasks(principal, stage=stage, status=status, overdue=overdue, limit=limit, offset=offset)

    @post(
        "/tasks/{task_id:str}/complete",
        operation_id="completeGridTask",
        summary="Complete a grid task with its outcome (a follow-up may record a paper evaluation)",
        guards=[require_roles(Role.GRID_WORKER)],
        status_code=200,
        responses={
            404: problem_spec("No such task in your grid"),
            409: problem_spec("Already done, or the case was already evaluated"),
            422: problem_spec("`outcome` (or `evaluation`) missing or not allowed for this task"),
        },
    )
    async def complete(
        self,
        task_id: FromPath[str],
        data: JSONBody[CompleteTask],
        principal: NamedDependency[Principal],
        grid: NamedDependency[GridService],
    ) -> TaskView:
        return await grid.complete(principal, task_id, data)

    @post(
        "/consultations",
        operation_id="createGridConsultation",
        summary="Record a consultation (办理前解答): the item's 一次性告知 list, with a certificate check on consent",
        guards=[require_roles(Role.GRID_WORKER)],
        status_code=201,
        responses={422: problem_spec("Unknown item, or an ID number without consent")},
    )
    async def consult(
        self, data: JSONBody[NewConsultation], principal: NamedDependency[Principal], grid: NamedDependency[GridService]
    ) -> ConsultationView:
        return await grid.consult(principal, data)

    @get(
        "/consultations/{consultation_id:str}",
        operation_id="getGridConsultation",
        summary="A recorded consultation",
        guards=[require_roles(*_READERS)],
        responses={404: problem_spec("No such consultation in your scope")},
    )
    async def consultation(
        self, consultation_id: FromPath[str], principal: NamedDependency[Principal], grid: NamedDependency[GridService]
    ) -> ConsultationView:
        return await grid.consultation(principal, consultation_id)

    @get(
        "/consultations/{consultation_id:str}/notice",
        operation_id="printGridNotice",
        summary="The printable 一次性告知 list (HTML)",
        guards=[require_roles(*_READERS)],
        media_type="text/html",
        responses={404: problem_spec("No such consultation in your scope")},
    )
    async def notice(
        self, consultation_id: FromPath[str], principal: NamedDependency[Principal], grid: NamedDependency[GridService]
    ) -> Response[str]:
        view = await grid.consultation(principal, consultation_id)
        return Response(notice_html(view), media_type="text/html; charset=utf-8")

    @get(
        "/cases/{application_id:str}",
        operation_id="getGridCase",
        summary="A case of the caller's grid, masked",
        guards=[require_roles(*_READERS)],
        responses={404: problem_spec("No such case in your grid")},
    )
    async def case(
        self, application_id: FromPath[str], principal: NamedDependency[Principal], grid: NamedDependency[GridService]
    ) -> GridCase:
        return await grid.case(principal, application_id)

    @get(
        "/cases/{application_id:str}/phone",
        operation_id="readGridCasePhone",
        summary="The applicant's phone number for a call (purpose required; the read is audited)",
        guards=[require_roles(Role.GRID_WORKER)],
        responses={404: problem_spec("No such case in your grid"), 422: problem_spec("`purpose` missing")},
    )
    async def phone(
        self,
        application_id: FromPath[str],
        principal: NamedDependency[Principal],
        grid: NamedDependency[GridService],
        purpose: Annotated[str | None, QueryParameter(description="why you call, 2..200 characters")] = None,
    ) -> Response[PhoneRead]:
        return Response(await grid.phone(principal, application_id, purpose), headers=_NO_STORE)

    @put(
        "/cases/{application_id:str}/grid",
        operation_id="correctCaseGrid",
        summary="Correct the applicant's grid (clerk; audited)",
        guards=[require_roles(Role.CLERK)],
        responses={404: problem_spec("No such case in your scope"), 422: problem_spec("Not a grid code, or no reason")},
    )
    async def correct(
        self,
        application_id: FromPath[str],
        data: JSONBody[GridCorrection],
        principal: NamedDependency[Principal],
        grid: NamedDependency[GridService],
    ) -> GridCase:
        return await grid.correct_grid(principal, application_id, data)

    @get(
        "/coverage",
        operation_id="gridCoverage",
        summary="Follow-up coverage per grid: cases whose grid tasks were done by their due dates",
        guards=[require_roles(*_READERS)],
        responses={404: problem_spec("Unit outside your scope")},
    )
    async def coverage(
        self,
        principal: NamedDependency[Principal],
        grid: NamedDependency[GridService],
        start: Annotated[dt.date, QueryParameter(description="first day (Beijing date)")],
        end: Annotated[dt.date, QueryParameter(description="last day (inclusive)")],
        unit: Annotated[str | None, QueryParameter(description="street or community code")] = None,
    ) -> CoverageReport:
        return await grid.coverage(principal, unit, start, end)


__all__ = ["GridController"]
