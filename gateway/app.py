"""`create_app()`: the one place the application is wired — routes, exception handlers, OpenAPI, lifespan."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin

from gateway.health.controllers import live, ready
from gateway.problems import EXCEPTION_HANDLERS
from gateway.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the gateway. ``settings`` defaults to the process-wide ones (file + environment)."""
    settings = settings or get_settings()
    app = Litestar(
        route_handlers=[live, ready],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="OneWindow (一窗通) gateway",
            version="1.0.0",
            description="One-window intake, case lifecycle, tracking and e-certificates for Yuhu District.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(), SwaggerRenderPlugin()],
        ),
        debug=False,
    )
    app.state.settings = settings
    app.state.readiness = {}
    return app
