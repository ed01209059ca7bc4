"""The web package's routes as one router for `create_app`: the status page, the console, the static assets —
with their own exception handlers (pages answer problems as pages, never as problem+json)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.response import Template
from litestar.static_files import create_static_files_router

from gateway.identity.auth import EXCLUDE_KEY
from gateway.problems import ProblemError
from gateway.web.console import ConsoleController, problem_page
from gateway.web.rendering import STATIC, STATIC_PATH, page, redirect
from gateway.web.staff import CsrfRejected, SignInRequired
from gateway.web.track import track_evaluate, track_form, track_lookup


def _sign_in_again(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[None]:
    return redirect(f"/console?next={quote(exc.return_to, safe='/')}")


def _csrf(request: Request[Any, Any, Any], exc: CsrfRejected) -> Template:
    return page("error.html", {"status": 403, "detail": "csrf", "errors": []}, status_code=403, private=True)


def _problem(request: Request[Any, Any, Any], exc: ProblemError) -> Template:
    return problem_page(request, exc)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    return page(
        "error.html", {"status": exc.status_code, "detail": "", "errors": []}, status_code=exc.status_code, private=True
    )


def web_router() -> Router:
    handlers: list[BaseRouteHandler | type[Any] | Router] = [
        track_form,
        track_lookup,
        track_evaluate,
        ConsoleController,
    ]
    return Router(
        path="/",
        route_handlers=[
            Router(
                path="/",
                route_handlers=handlers,
                include_in_schema=False,
                opt={EXCLUDE_KEY: True},
                exception_handlers={
                    SignInRequired: _sign_in_again,
                    CsrfRejected: _csrf,
                    ProblemError: _problem,
                    HTTPException: _http,
                },
            ),
            create_static_files_router(
                path=STATIC_PATH,
                directories=[STATIC],
                opt={EXCLUDE_KEY: True},
                include_in_schema=False,
                cache_control=CacheControlHeader(public=True, max_age=3600),
                name="web:static",
            ),
        ],
        include_in_schema=False,
    )


__all__ = ["web_router"]
