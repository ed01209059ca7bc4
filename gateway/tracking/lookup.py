"""The public lookup's front door: a correct ``GET /api/v1/track/{tracking_number}?code=…`` answered ahead of
Litestar's routing, everything else handed on to the route (`TrackingController.track`) as before.

The lookup is the gateway's hottest route, and most of its CPU went to Litestar's per-route machinery (routing,
two exception layers, the middleware stack, the kwargs model, the response object) rather than to the lookup
(bench/RESULTS.md, "Tracking lookup cut"). `PublicLookup` sits inside the request wrapper
(`gateway.observability.requests`: request id, metric, access line — all still applied) and in front of
Litestar. It answers a request itself only when all of this holds:

* ``GET`` on exactly ``/api/v1/track/<21 characters of a tracking number's shape>``, no ``root_path``, and a query
  string that is exactly ``code=<8 letters or digits>`` (a valid query code once upper-cased);
* the case exists, the query code matches (`TrackingService.correct_view`), and the failure limiter need not be
  asked (`FailureLimiter.success_needs_check`: this process saw no failure from the client in the window).

Then it sends what the route would send — the same status, headers and JSON bytes (a test compares them) — and
sets ``path_template`` for the metric and the access line. In every other case (a wrong code, an unknown number,
a malformed request, a client that may be blocked, a read that raised) it hands the request to Litestar
unchanged, with what it already read (`EarlyRead`, in the scope under `EARLY_READ`): the route answers exactly as
it always did — the uniform 404 counted once, 429 with ``Retry-After``, 400, the outage problems — without
reading again. It never answers what the route would not, never counts, never caches anything across requests.

The one read is `TIMELINE` through `Database.fetch_keyed`: on SQLite inline on the loop's thread, the lookups of
one turn of the loop in one ``tracking_number IN (…)`` statement (`gateway.storage.inline`); on PostgreSQL
batched — the lookups (front door's and route's alike) that arrive while the reader's connections are busy go
out together as one ``tracking_number = ANY(…)`` query, each answered from a query that started after it arrived
(`gateway.storage.pgread`). A lookup whose batch failed reads alone through the engine, so the route still sees
the error a single read would have raised.

`install_public_lookup` refuses to install it (raises at start-up) when the route has acquired something the
front door would skip — a guard, a hook other than the known ones, response headers or cookies, a middleware
not in the list of those known to leave this route alone — so that no later change is bypassed silently.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, cast

import msgspec
from litestar import Litestar, Response
from litestar.enums import ScopeType
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.cases import numbers
from gateway.context import AppContext
from gateway.tracking.deps import provide_tracking
from gateway.tracking.services import TIMELINE, EarlyRead, TrackingService

#: Where the front door leaves its `EarlyRead` in the ASGI scope for the route.
EARLY_READ = "onewindow.tracking.early_read"
#: The route the front door answers for (`TrackingController`'s path and its GET handler's).
PREFIX = "/api/v1/track/"
ROUTE_PATH = PREFIX + "{tracking_number:str}"

_PATH = re.compile(re.escape(PREFIX) + r"([0-9]{20}[0-9A-Za-z])")
_QUERY = re.compile(rb"code=([0-9A-Za-z]{8})")
_JSON = b"application/json"
_encode = msgspec.json.Encoder().encode


class PublicLookup:
    """The ASGI front door (see the module docstring)."""

    def __init__(self, app: ASGIApp, context: AppContext, *, path_template: str) -> None:
        self.app = app
        self.context = context
        self.path_template = path_template
        self._service: TrackingService | None = None
        #: Lookups answered here / handed on to the route after a read (tests, observability).
        self.answered = 0
        self.handed_on = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "GET" and not scope.get("root_path"):
            path = _PATH.fullmatch(scope["path"])
            if path is not None:
                query = _QUERY.fullmatch(scope["query_string"])
                if query is not None and await self._answer(scope, send, path[1].upper(), query[1].decode().upper()):
                    return
        await self.app(scope, receive, send)

    def _tracking(self) -> TrackingService:
        """The route's `TrackingService` (`provide_tracking`), kept while the context's parts are the same ones."""
        context, service = self.context, self._service
        if (
            service is None
            or service.db is not context.database  # a new lifespan's database
            or service.limiter is not context.tracking_limiter
            or service.calendar is not context.calendar
            or service.cipher is not context.cipher
        ):
            service = self._service = provide_tracking(context)
        return service

    def _client(self, scope: Scope) -> str:
        """`gateway.tracking.controllers.client_address`, from the scope."""
        proxies = self.context.trusted_proxies
        client = scope.get("client")
        peer = client[0] if client else None
        if not proxies:
            return proxies.client_address(peer)
        forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
        return proxies.client_address(peer, forwarded)

    async def _answer(self, scope: Scope, send: Send, number: str, code: str) -> bool:
        """Answer a correct lookup and say so; else leave what was read for the route and answer nothing."""
        if not numbers.is_query_code(code):
            return False
        service = self._tracking()
        try:
            rows = await service.db.fetch_keyed(TIMELINE, number)
        except Exception as exc:  # the route raises it, so that its exception handlers answer as always
            cast(dict[str, Any], scope)[EARLY_READ] = EarlyRead(number, [], exc)
            self.handed_on += 1
            return False
        try:
            view = service.correct_view(number, code, rows, client=self._client(scope))
            body = None if view is None else _encode(view)
        except Exception:  # the route fails the same way, inside Litestar's exception handling (a problem 500)
            body = None
        if body is None:
            cast(dict[str, Any], scope)[EARLY_READ] = EarlyRead(number, rows)
            self.handed_on += 1
            return False
        scope["path_template"] = self.path_template
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.answered += 1
        return True


def early_read(scope: Scope) -> EarlyRead | None:
    """What the front door read for this request, if anything (taken: the route uses it once)."""
    found = cast(dict[str, Any], scope).pop(EARLY_READ, None)
    return found if isinstance(found, EarlyRead) else None


def _route_handler(app: Litestar) -> tuple[HTTPRoute, HTTPRouteHandler]:
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path == ROUTE_PATH:
            for handler in route.route_handlers:
                if "GET" in handler.http_methods and handler.operation_id == "trackApplication":
                    return route, handler
    raise RuntimeError(f"no GET {ROUTE_PATH} (trackApplication) route to put the public lookup's front door before")


def public_lookup_of(app: Litestar) -> PublicLookup | None:
    """The front door installed in ``app`` (inside the request wrapper), if any."""
    handler: Any = app.asgi_handler
    for _ in range(4):  # the wrappers `create_app` puts around it: a few at most
        if isinstance(handler, PublicLookup):
            return handler
        handler = getattr(handler, "app", None)
    return None


def install_public_lookup(app: Litestar, context: AppContext, *, passing: Collection[object]) -> None:
    """Put `PublicLookup` in front of ``app``'s ASGI handler (call before `gateway.observability.requests.observe`,
    so the wrapper stays outermost). ``passing``: the middleware and ``before_request`` hook of the app that leave
    this route's correct lookups alone (checked here; anything else on the route refuses the installation)."""
    route, handler = _route_handler(app)
    known = {id(item) for item in passing}
    unknown = [m for m in handler.resolve_middleware() if id(m) not in known]
    layers = handler.ownership_layers
    hooks = [
        getattr(hook, "func", hook)  # Litestar wraps synchronous hooks
        for hook in (
            handler.resolve_before_request(),
            handler.resolve_after_response(),
            *(getattr(layer, "after_request", None) for layer in layers),
        )
        if hook is not None
    ]
    unknown_hooks = [h for h in hooks if id(h) not in known]
    media_type = getattr(handler.media_type, "value", handler.media_type)
    reasons = [
        f"middleware {unknown!r}" if unknown else "",
        f"hooks {unknown_hooks!r}" if unknown_hooks else "",
        "guards" if handler.resolve_guards() else "",
        "response headers" if handler.resolve_response_headers() else "",
        "response cookies" if handler.resolve_response_cookies() else "",
        "type encoders" if handler.resolve_type_encoders() else "",
        "a background task" if handler.background is not None else "",
        f"status {handler.status_code}" if handler.status_code != 200 else "",
        f"media type {media_type}" if media_type != _JSON.decode() else "",
        "a response class" if handler.resolve_response_class() is not Response else "",
    ]
    if any(reasons):
        raise RuntimeError(
            f"the public lookup's front door would skip what {ROUTE_PATH} now has: "
            f"{', '.join(r for r in reasons if r)}; teach gateway/tracking/lookup.py about it or leave it out"
        )
    app.asgi_handler = PublicLookup(app.asgi_handler, context, path_template=route.path_format)


__all__ = ["EARLY_READ", "PublicLookup", "early_read", "install_public_lookup", "public_lookup_of"]
