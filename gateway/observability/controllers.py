"""``GET /metrics`` (no prefix): the Prometheus text exposition, for the monitoring system only.

Open to clients in ``Settings.metrics_networks`` (loopback by default: a Prometheus agent on the same host) and to
requests carrying ``Authorization: Bearer <Settings.metrics_token>`` when a token is set; everyone else gets 403.
The client is the one `gateway.clients` names: behind a trusted reverse proxy, the proxy's client — so a public
request relayed by nginx on the same host is not taken for a local one (docs/deployment.md).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from gateway.context import context_of
from gateway.observability.metrics import CONTENT_TYPE
from gateway.problems import Forbidden


@get(
    "/metrics",
    operation_id="metrics",
    include_in_schema=False,
    opt={"exclude_from_auth": True},
    media_type=CONTENT_TYPE,
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    context = context_of(request.app)
    peer = request.client.host if request.client else None
    if not context.metrics_access.allows(
        peer, request.headers.getall("x-forwarded-for", []), request.headers.get("authorization")
    ):
        raise Forbidden("Metrics are for the monitoring system: call from an allowed network or send its token.")
    return Response(await context.metrics.render(), media_type=CONTENT_TYPE)


__all__ = ["metrics"]
