"""``/api/v1/track`` (public: tracking number + query code, no token) and the supervisor's rectification list.
Thin: the logic is in `gateway.tracking.services`."""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway.identity.auth import EXCLUDE_KEY, require_roles
from gateway.identity.principal import Principal, Role
from gateway.lifecycle.deps import provide_tracking
from gateway.problems import PROBLEM_JSON, Problem
from gateway.tracking.schemas import (
    CloseRectification,
    EvaluationIn,
    EvaluationOut,
    Rectifications,
    RectificationView,
    TrackView,
)
from gateway.tracking.services import TrackingService


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=description)


_PUBLIC_ERRORS = {
    404: _problem("Unknown tracking number or wrong query code (one answer for both)"),
    429: _problem("Too many failed lookups from this address; `Retry-After` says when to try again"),
}

Code = Annotated[str | None, QueryParameter(description="the query code printed on the receipt")]


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def public_tracking(request: Request[Any, Any, Any]) -> TrackingService:
    """The app's `TrackingService` for the public routes: built once (and again if the database, cipher or
    limiter it was built on is replaced), instead of per request through dependency injection — the public lookup
    is the gateway's hottest route, and resolving a dependency costs more than its database read."""
    state = request.app.state
    service: TrackingService | None = state.get("public_tracking")
    if (
        service is None
        or service.db is not state.database
        or service.cipher is not state.cipher
        or service.limiter is not state.get("tracking_limiter")
    ):
        service = state.public_tracking = provide_tracking(state)
    return service


class TrackingController(Controller):
    path = "/api/v1/track"
    tags = ("tracking",)
    # Citizens have no token: the tracking number and the query code are the credential.
    opt = MappingProxyType({EXCLUDE_KEY: True})
    security = [{}]  # noqa: RUF012 - Litestar layer API

    @get(
        "/{tracking_number:str}",
        operation_id="trackApplication",
        summary="Where a case stands (public)",
        description=(
            "Status, item, deadline and timeline, with the applicant's name masked; never the ID number or phone. "
            "Unknown numbers and wrong codes answer the same 404; failures are rate-limited per client address."
        ),
        responses=_PUBLIC_ERRORS,
        opt={EXCLUDE_KEY: True},
    )
    async def track(
        self, request: Request[Any, Any, Any], tracking_number: FromPath[str], code: Code = None
    ) -> TrackView:
        return await public_tracking(request).track(tracking_number, code, client=client_address(request))

    @post(
        "/{tracking_number:str}/evaluation",
        operation_id="evaluateService",
        summary="Evaluate the service (好差评), once, after completion",
        description=(
            "`level` 5 非常满意 … 1 非常不满意, a comment, and optionally the window dimensions (overall, "
            "efficiency, service, attitude; each 1..5). Only after completion (approved, denied or delivered) and "
            "only once (409 otherwise). A bad review (level 1 or 2) opens a rectification task due in 15 working "
            "days."
        ),
        status_code=201,
        responses={
            **_PUBLIC_ERRORS,
            409: _problem("Not completed yet, or already evaluated"),
            422: _problem("level missing or outside 1..5; a dimension outside 1..5"),
        },
        opt={EXCLUDE_KEY: True},
    )
    async def evaluate(
        self,
        request: Request[Any, Any, Any],
        tracking_number: FromPath[str],
        data: JSONBody[EvaluationIn],
        code: Code = None,
    ) -> EvaluationOut:
        return await public_tracking(request).evaluate(tracking_number, code, data, client=client_address(request))


class RectificationController(Controller):
    path = "/api/v1/supervision/rectifications"
    tags = ("supervision",)
    dependencies = {"tracking": Provide(provide_tracking, sync_to_thread=False)}  # noqa: RUF012 - Litestar API

    @get(
        "",
        operation_id="listRectifications",
        summary="Rectification tasks opened by bad reviews, earliest due first",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
    )
    async def list_rectifications(
        self,
        principal: NamedDependency[Principal],
        tracking: NamedDependency[TrackingService],
        status: Annotated[str, QueryParameter(description="open, closed or all")] = "open",
    ) -> Rectifications:
        return await tracking.rectifications(principal, status=status)

    @post(
        "/{rectification_id:str}/close",
        operation_id="closeRectification",
        summary="Close a rectification with its outcome and the follow-up call (回访)",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
        status_code=200,
    )
    async def close(
        self,
        rectification_id: FromPath[str],
        data: JSONBody[CloseRectification],
        principal: NamedDependency[Principal],
        tracking: NamedDependency[TrackingService],
    ) -> RectificationView:
        return await tracking.close_rectification(principal, rectification_id, data)


__all__ = ["RectificationController", "TrackingController", "client_address", "public_tracking"]
