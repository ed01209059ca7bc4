"""``/api/v1/track`` (public: tracking number + query code, no token) and the supervisor's rectification list.
Thin: the logic is in `gateway.tracking.services`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter

from gateway.bodies import ON_REJECTED_BODY
from gateway.cases.numbers import QUERY_CODE_PATTERN, TRACKING_NUMBER_PATTERN
from gateway.context import context_of
from gateway.identity.auth import EXCLUDE_KEY, require_roles
from gateway.identity.principal import Principal, Role
from gateway.openapi import documented_string
from gateway.problems import problem_spec
from gateway.tracking.deps import provide_rectifications, provide_tracking
from gateway.tracking.lookup import early_read
from gateway.tracking.rectifications import RectificationService
from gateway.tracking.schemas import (
    CloseRectification,
    EvaluationIn,
    EvaluationOut,
    Rectifications,
    RectificationView,
    TrackView,
)
from gateway.tracking.services import TrackingService

_PUBLIC_ERRORS = {
    404: problem_spec("Unknown tracking number or wrong query code (one answer for both)"),
    429: problem_spec("Too many failed lookups from this address; `Retry-After` says when to try again"),
}

Code = Annotated[
    str | None,
    QueryParameter(
        description="the query code printed on the receipt",
        # Required; a missing or malformed code is answered like a wrong one (the one 404, counted).
        required=True,
        schema_extra=documented_string(pattern=QUERY_CODE_PATTERN),
    ),
]
TrackingNumber = Annotated[
    str,
    Parameter(
        description="办件编号 from the receipt, e.g. 430302202601050000014",
        schema_extra={"pattern": TRACKING_NUMBER_PATTERN},
    ),
]


def client_address(request: Request[Any, Any, Any]) -> str:
    """Who the failure limiter counts: the peer, or the client a trusted proxy names (`gateway.clients`)."""
    proxies = context_of(request.app).trusted_proxies
    peer = request.client.host if request.client else None
    if not proxies:  # the default; the lookup is the hottest route, so not even the headers are parsed
        return proxies.client_address(peer)
    return proxies.client_address(peer, request.headers.getall("x-forwarded-for", []))


async def count_rejected_body(request: Request[Any, Any, Any]) -> None:
    """A body the public routes refuse (not JSON, wrong media type, wrong shape) is a failed attempt like a wrong
    code: counted per client address, and answered 429 instead once the client is blocked."""
    await context_of(request.app).tracking_limiter.fail(client_address(request))


def public_tracking(request: Request[Any, Any, Any]) -> TrackingService:
    """The `TrackingService` of the public routes, built without dependency injection (see `provide_tracking`)."""
    return provide_tracking(context_of(request.app))


class TrackingController(Controller):
    path = "/api/v1/track"
    tags = ("tracking",)
    # Citizens have no token: the tracking number and the query code are the credential.
    opt = {EXCLUDE_KEY: True, ON_REJECTED_BODY: count_rejected_body}  # noqa: RUF012 - Litestar layer API
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
        self, request: Request[Any, Any, Any], tracking_number: TrackingNumber, code: Code = None
    ) -> TrackView:
        # Correct lookups are mostly answered before this route (`gateway.tracking.lookup`); the rest come here,
        # with what the front door read for them.
        return await public_tracking(request).track(
            tracking_number, code, client=client_address(request), early=early_read(request.scope)
        )

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
            409: problem_spec("Not completed yet, or already evaluated"),
            422: problem_spec("level missing or outside 1..5; a dimension outside 1..5"),
        },
        opt={EXCLUDE_KEY: True},
    )
    async def evaluate(
        self,
        request: Request[Any, Any, Any],
        tracking_number: TrackingNumber,
        data: JSONBody[EvaluationIn],
        code: Code = None,
    ) -> EvaluationOut:
        return await public_tracking(request).evaluate(tracking_number, code, data, client=client_address(request))


class RectificationController(Controller):
    path = "/api/v1/supervision/rectifications"
    tags = ("supervision",)
    dependencies = {"rectifications": Provide(provide_rectifications, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "",
        operation_id="listRectifications",
        summary="Rectification tasks opened by bad reviews, earliest due first",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
    )
    async def list_rectifications(
        self,
        principal: NamedDependency[Principal],
        rectifications: NamedDependency[RectificationService],
        status: Annotated[Literal["open", "closed", "all"], QueryParameter(description="open, closed or all")] = "open",
    ) -> Rectifications:
        return await rectifications.list(principal, status=status)

    @post(
        "/{rectification_id:str}/close",
        operation_id="closeRectification",
        summary="Close a rectification with its outcome and the follow-up call (回访)",
        guards=[require_roles(Role.SUPERVISOR, Role.ADMIN)],
        status_code=200,
        responses={
            404: problem_spec("No such rectification"),
            409: problem_spec("Already closed (`current_status`)"),
            422: problem_spec("`outcome` is missing: what was done and what the follow-up call found"),
        },
    )
    async def close(
        self,
        rectification_id: FromPath[str],
        data: JSONBody[CloseRectification],
        principal: NamedDependency[Principal],
        rectifications: NamedDependency[RectificationService],
    ) -> RectificationView:
        return await rectifications.close(principal, rectification_id, data)


__all__ = ["RectificationController", "TrackingController", "client_address", "public_tracking"]
