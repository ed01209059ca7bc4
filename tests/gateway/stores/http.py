"""An httpx client that runs a Litestar app on the test's own event loop (Litestar's AsyncTestClient runs it on a
portal thread, whose loop would own the Redis connections)."""

from __future__ import annotations

from typing import Any, cast

import httpx
from litestar import Litestar


def asgi_client(app: Litestar, *, client: tuple[str, int] = ("127.0.0.1", 123)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=cast("Any", app), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
