"""The status page's baseline: a bare Litestar endpoint answering ``POST /track`` (a form) with a static HTML page
of the same size as the gateway's status page — no database, no template, no middleware of ours.

Served with ``--factory bench.bare_page_app:create_bare_page_app``; `bench/status_page_bench.py` compares.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request, Response, get, post

#: Bytes of the page answered (the bench sets it to the gateway page's size before starting the server).
PAGE_BYTES = int(os.environ.get("BARE_PAGE_BYTES", "6000"))
_PAGE = (
    "<!doctype html><html lang=zh-CN><body><p>" + "办" * max(0, (PAGE_BYTES - 50) // 3) + "</p></body></html>"
).encode()


@post("/track", status_code=200)
async def track(request: Request[Any, Any, Any]) -> Response[bytes]:
    form = await request.form()
    if not form.get("tracking_number") or not form.get("code"):
        return Response(b"missing", status_code=400)
    return Response(_PAGE, media_type="text/html; charset=utf-8")


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


def create_bare_page_app() -> Litestar:
    return Litestar(route_handlers=[track, live], debug=False)
