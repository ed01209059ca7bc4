"""Around every HTTP request: a request id, the request metric and one access-log line.

The request id is the ``X-Request-ID`` a trusted reverse proxy sent (`Settings.trusted_proxies`; a short token of
letters, digits, ``.``, ``_`` and ``-``), or a new random one; it is returned in the ``X-Request-ID`` response
header, set in `REQUEST_ID` for every log line written while the request is served, and written in the access
line. The access line and the metric name the **route template** (``/api/v1/track/{tracking_number:str}``),
never the path or the query string: those carry tracking numbers and query codes. Requests that match no route
are counted under ``<unmatched>``. A ``text/event-stream`` response (Server-Sent Events) gets
``X-Accel-Buffering: no``, so that nginx passes each event on at once.

This wraps Litestar's ASGI handler (`observe`), outside its exception handling, so that every answer is counted —
404s from routing and 500s included.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clients import TrustedProxies, parse_address
from gateway.observability.logs import REQUEST_ID
from gateway.observability.metrics import HTTP_REQUESTS

access_log = logging.getLogger("onewindow.access")

HEADER = b"x-request-id"
#: An incoming request id is taken as it is only if it looks like one (no spaces, no personal data, bounded).
_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._\-]{1,64}")
UNMATCHED = "<unmatched>"
EVENT_STREAM = b"text/event-stream"
#: nginx turns its response buffering off for a response carrying this header.
NO_PROXY_BUFFERING = (b"x-accel-buffering", b"no")


class ObservedRequests:
    """The ASGI wrapper (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: TrustedProxies, access_log_enabled: bool = True) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.access_log_enabled = access_log_enabled
        self._children: dict[tuple[str, str, int], Any] = {}

    def _incoming_id(self, scope: Scope) -> bytes | None:
        if not self.trusted_proxies:
            return None
        client = scope.get("client")
        peer = parse_address(client[0]) if client else None
        if peer is None or not self.trusted_proxies.trusts(peer):
            return None
        for name, value in scope["headers"]:
            if name == HEADER:
                return value if _ACCEPTABLE.fullmatch(value) else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        raw_id = self._incoming_id(scope) or os.urandom(8).hex().encode()
        request_id = raw_id.decode()
        token = REQUEST_ID.set(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or ())
                headers.append((HEADER, raw_id))
                for name, value in headers:
                    if name.lower() == b"content-type" and value.startswith(EVENT_STREAM):
                        headers.append(NO_PROXY_BUFFERING)  # a reverse proxy must pass events on as they come
                        break
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or UNMATCHED
            method: str = scope.get("method", "")
            key = (method, route, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = HTTP_REQUESTS.labels(method, route, str(status))
            child.observe(elapsed)
            if self.access_log_enabled:
                access_log.info(
                    "request",
                    extra={"method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1e3, 2)},
                )
            REQUEST_ID.reset(token)


def observe(app: Litestar, *, trusted_proxies: TrustedProxies, access_log_enabled: bool = True) -> None:
    """Wrap ``app``'s ASGI handler (once)."""
    if not isinstance(app.asgi_handler, ObservedRequests):
        app.asgi_handler = ObservedRequests(
            app.asgi_handler, trusted_proxies=trusted_proxies, access_log_enabled=access_log_enabled
        )


__all__ = ["HEADER", "UNMATCHED", "ObservedRequests", "observe"]
