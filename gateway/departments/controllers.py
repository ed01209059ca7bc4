"""``POST /api/v1/departments/{department}/events``: a department's system pushes an event for one of its cases.
Thin: authentication is `gateway.departments.auth`, the logic `gateway.departments.services`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from gateway.context import AppContext
from gateway.departments.auth import PushRequest, authenticate_push
from gateway.departments.deps import department_files, provide_department_events
from gateway.departments.schemas import DepartmentEventAnswer, DepartmentEventIn
from gateway.identity.auth import BEARER_SECURITY, EXCLUDE_KEY, OWN_AUTH_KEY
from gateway.problems import NotFound, problem_spec

#: Header set on the answer to a replayed event id.
REPLAYED_HEADER = "Idempotent-Replayed"


@post(
    "/api/v1/departments/{department:str}/events",
    operation_id="pushDepartmentEvent",
    tags=["departments"],
    summary="A department's system reports progress on one of its cases",
    description=(
        "Event types: `in_review`, `correction_required` (with `missing`: what the applicant must bring), "
        "`special_procedure_started` (with `procedure`: `{kind, reason}`), `special_procedure_ended`, `approved` "
        "and `denied` (with `result`; denied also with `note`, the reason), `delivered`. Authentication is the "
        "department's `[push]` section: HMAC-signed like the connectors' requests, a client certificate forwarded "
        "by the gateway's TLS proxy, or a bearer token of role `department` bound to this department. The same "
        "`event_id` again answers the first answer (header `Idempotent-Replayed: true`) and changes nothing "
        "(an `Idempotency-Key` works as on every POST, but the event id is what makes pushing safe to repeat). "
        "The body is checked (415, 400, 422 naming the field) before the authentication."
    ),
    # Not the bearer middleware: the handler authenticates the department as its file says (a token is one way).
    opt={EXCLUDE_KEY: True, OWN_AUTH_KEY: True},
    security=BEARER_SECURITY,
    status_code=200,
    responses={
        401: problem_spec("Missing or failed authentication (signature, certificate or token)"),
        403: problem_spec("A department token of another department"),
        404: problem_spec("No such department taking events, or a case that is not one of its items"),
        409: problem_spec("The state machine does not allow this event now; `allowed` lists the event types that are"),
        415: problem_spec("Not a JSON body"),
        422: problem_spec("Unknown event type, or a field its type needs is missing or does not belong"),
    },
)
async def push_department_event(
    department: FromPath[str],
    data: JSONBody[DepartmentEventIn],
    request: Request[Any, Any, Any],
    context: NamedDependency[AppContext],
) -> Response[DepartmentEventAnswer]:
    spec = department_files(context.settings.config_dir).get(department)
    if spec is None or spec.push is None:
        raise NotFound(f"No department {department!r} takes pushed events.")
    body = await request.body()  # the bytes as signed (the body was decoded strictly before the handler ran)
    principal = await authenticate_push(
        spec,
        PushRequest(
            method=request.method,
            path=request.url.path,
            query=list(request.query_params.multi_items()),
            headers=request.headers,
            body=body,
            peer=request.client.host if request.client else None,
        ),
        authenticator=context.authenticator,
        trusted_proxies=context.trusted_proxies,
        data_dir=context.settings.data_dir,
    )
    answer, replayed = await provide_department_events(context).apply(principal, data)
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return Response(msgspec.convert(answer, DepartmentEventAnswer), headers=headers)


__all__ = ["REPLAYED_HEADER", "push_department_event"]
