"""`/health/live` answers while the process serves; `/health/ready` checks what serving needs.

Readiness checks are registered in the application context's ``readiness`` as ``name -> async callable`` returning a
`Check`; a check marked ``critical`` makes the probe answer 503 when it fails (the database), the others
are reported in the body only (Redis, department systems).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from gateway.context import context_of
from gateway.health.checks import Check


class Health(msgspec.Struct, kw_only=True):
    status: str
    checks: dict[str, Check] = {}


@get("/health/live", operation_id="healthLive", tags=["health"], sync_to_thread=False)
def live() -> Health:
    return Health(status="ok")


@get(
    "/health/ready",
    operation_id="healthReady",
    tags=["health"],
    responses={
        503: ResponseSpec(
            data_container=Health, description="Not ready: a critical check failed", generate_examples=False
        )
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[Health]:
    checks = context_of(request.app).readiness
    results: dict[str, Check] = {}
    for name, check in checks.items():
        try:
            results[name] = await check()
        except Exception as exc:  # a probe must answer, whatever a check raises
            results[name] = Check(ok=False, critical=True, detail=type(exc).__name__)
    failed = any(c.critical and not c.ok for c in results.values())
    return Response(
        Health(status="unavailable" if failed else "ok", checks=results),
        status_code=503 if failed else 200,
    )
