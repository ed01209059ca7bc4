"""``/schema/swagger`` from the gateway's own copy of Swagger UI (``static/swagger``): no CDN, no inline script."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

from gateway.web.rendering import STATIC_PATH

SWAGGER_ASSETS = f"{STATIC_PATH}/swagger"


class OfflineSwagger(SwaggerRenderPlugin):
    """Litestar's Swagger page, with every asset URL pointing at the gateway and the start-up in ``init.js``."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{self.favicon}
<link rel="stylesheet" href="{self.css_url}">
<script src="{self.js_url}" defer></script>
<script src="{self.standalone_preset_js_url}" defer></script>
<script src="{SWAGGER_ASSETS}/init.js" defer></script>
</head>
<body>
<div id="swagger-container"></div>
</body>
</html>
""".encode()


__all__ = ["SWAGGER_ASSETS", "OfflineSwagger"]
