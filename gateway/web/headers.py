"""Security headers on everything the web package serves (pages, static assets, the offline API docs).

Pages set their own (`gateway.web.rendering.page`); this middleware adds whatever a response lacks, so that
static files, redirects, error pages and the Swagger UI page (rendered by Litestar) carry them too.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.rendering import SECURITY_HEADERS

#: Paths this middleware covers.
WEB_PREFIXES = ("/track", "/console", "/static/", "/schema/swagger")
#: Swagger UI styles its elements inline; its scripts still come only from the gateway.
SWAGGER_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def security_headers_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == ScopeType.HTTP else ""
        if not path.startswith(WEB_PREFIXES):
            await app(scope, receive, send)
            return
        defaults = dict(SECURITY_HEADERS)
        if path.startswith("/schema/swagger"):
            defaults["Content-Security-Policy"] = SWAGGER_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


__all__ = ["SWAGGER_POLICY", "WEB_PREFIXES", "security_headers_middleware"]
