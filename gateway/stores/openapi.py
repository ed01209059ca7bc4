"""The ``Idempotency-Key`` header, documented on every POST operation of the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar
from litestar.enums import HttpMethod, ParamType
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from litestar.routes import HTTPRoute

from gateway.problems import problem_spec
from gateway.stores.idempotency import HEADER, MAX_KEY_LENGTH, IdempotencyMiddleware

IDEMPOTENCY_PARAMETER = Parameter(
    name=HEADER,
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH, pattern=r"^[\x21-\x7e]+$"),
    description=(
        "Any unique string (a UUID is best). A retry with the same key and body replays the first response "
        "(header `Idempotent-Replayed: true`); the same key with another body answers 422; while the first "
        "request is still running, 409."
    ),
)


@dataclass
class IdempotentOperation(Operation):
    """An `Operation` that lists the ``Idempotency-Key`` header among its parameters."""

    def __post_init__(self) -> None:
        params = list(self.parameters or [])
        if not any(isinstance(p, Parameter) and p.name.lower() == HEADER.lower() for p in params):
            params.append(IDEMPOTENCY_PARAMETER)
        self.parameters = params


IN_FLIGHT = problem_spec("The Idempotency-Key is in use by a request still running; `Retry-After` says when to retry")
STORE_DOWN = problem_spec("An Idempotency-Key was sent while the idempotency store cannot be reached")


def document_idempotency(app: Litestar) -> None:
    """Give every POST handler the idempotent operation class (unless it opted out or has its own class), and the
    answers the header adds (409 while the key is in flight, 503 when the store is down) where the route does not
    describe them itself."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if (
                isinstance(handler, HTTPRouteHandler)
                and HttpMethod.POST in handler.http_methods
                and handler.operation_class is Operation
                and not handler.opt.get(IdempotencyMiddleware.exclude_opt_key)
            ):
                handler.operation_class = IdempotentOperation
                handler.responses = {409: IN_FLIGHT, 503: STORE_DOWN, **(handler.responses or {})}


__all__ = ["IDEMPOTENCY_PARAMETER", "IdempotentOperation", "document_idempotency"]
