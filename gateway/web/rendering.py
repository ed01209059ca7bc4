"""How pages are rendered and sent: one Jinja2 environment (autoescape always on), the security headers every page
carries, and the QR code of a status-page link.

Every value reaches the page through Jinja2's escaping, so a name made of markup or of bidirectional control
characters is shown as text: `visible_controls` additionally replaces the bidirectional overrides with a visible
marker, so that a crafted name cannot reorder the text around it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import segno
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.response import Template
from litestar.response.base import ASGIResponse
from litestar.template.config import TemplateConfig
from markupsafe import Markup

from catalog.calendar import local_time

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: Where the static assets are served (`gateway.web.routes`).
STATIC_PATH = "/static"

#: Scripts and styles only from the gateway itself; nothing may frame a page; forms post only back here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The headers of every page (pages that carry a tracking number or personal data add `PRIVATE_HEADERS`).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: A page showing a tracking number, a query code or a case: never cached, never named to another site.
PRIVATE_HEADERS: dict[str, str] = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

#: Bidirectional embedding/override/isolate controls (U+202A…U+202E, U+2066…U+2069) and the marks U+200E/U+200F.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F], "\ufffd")


def visible_controls(value: object) -> str:
    """``value`` as text with every bidirectional control shown as U+FFFD (escaping happens afterwards)."""
    return str(value).translate(_BIDI_CONTROLS)


def beijing(value: dt.datetime | None) -> str:
    """A timestamp as Beijing time, minutes precision (``2026-01-05 09:30``)."""
    if value is None:
        return ""
    return local_time(value).strftime("%Y-%m-%d %H:%M")


def chinese_date(value: dt.date | None) -> str:
    if value is None:
        return ""
    return f"{value.year}年{value.month}月{value.day}日"


def qr_svg(url: str) -> Markup:
    """An inline SVG QR code of ``url`` (no style attributes: the pages' CSP has no inline styles)."""
    code = segno.make(url, error="m", micro=False)
    svg = code.svg_inline(scale=4, border=2, dark="#000", light="#fff", title="查询二维码", omitsize=False)
    return Markup(svg)  # noqa: S704 - segno's own markup of a URL it encoded, not user text


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        # Templates are part of the release: never stat them again on each render.
        auto_reload=False,
        lstrip_blocks=True,
    )
    env.filters["text"] = visible_controls
    env.filters["beijing"] = beijing
    env.filters["cndate"] = chinese_date
    env.globals["static"] = STATIC_PATH
    # Every interpolation goes through `visible_controls` before escaping (not markup the code made itself).
    env.finalize = lambda value: (
        value if isinstance(value, Markup) or not isinstance(value, str) else visible_controls(value)
    )
    return env


#: The one environment: Litestar's template engine wraps it (`template_config`), and `fast_page` renders with it.
ENVIRONMENT = environment()
_HTML = "text/html; charset=utf-8"


def template_config() -> TemplateConfig[Any]:
    from litestar.plugins.jinja import JinjaTemplateEngine

    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(ENVIRONMENT))


#: `fast_page`'s headers, merged once.
_FAST_HEADERS = list({**SECURITY_HEADERS, **PRIVATE_HEADERS}.items())


def fast_page(
    name: str, context: dict[str, Any], *, status_code: int = 200, headers: dict[str, str] | None = None
) -> ASGIResponse:
    """`page` for the status page, the hottest page: the same template and headers (always private), rendered
    straight from the environment into the response, without the template response's per-request work (request
    in the context, media type guessed from the name, headers merged again)."""
    body = ENVIRONMENT.get_template(name).render(context).encode()
    all_headers = _FAST_HEADERS + list(headers.items()) if headers else _FAST_HEADERS
    return ASGIResponse(body=body, status_code=status_code, media_type=_HTML, headers=all_headers)


def page(
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    private: bool = False,
    headers: dict[str, str] | None = None,
) -> Template:
    """A rendered page with the security headers (and `PRIVATE_HEADERS` when ``private``)."""
    all_headers = dict(SECURITY_HEADERS)
    if private:
        all_headers.update(PRIVATE_HEADERS)
    if headers:
        all_headers.update(headers)
    return Template(
        template_name=name,
        context=context,
        status_code=status_code,
        headers=all_headers,
        media_type="text/html; charset=utf-8",
    )


def redirect(location: str, *, headers: dict[str, str] | None = None) -> Response[None]:
    """303 See Other to a local path (after a form post)."""
    return Response(
        None, status_code=303, headers={"Location": location, **SECURITY_HEADERS, **PRIVATE_HEADERS, **(headers or {})}
    )


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PRIVATE_HEADERS",
    "SECURITY_HEADERS",
    "STATIC",
    "STATIC_PATH",
    "fast_page",
    "page",
    "qr_svg",
    "redirect",
    "template_config",
    "visible_controls",
]
