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

import asyncio
import datetime as dt
import itertools
import logging
import os
import re
import sys
import time

import msgspec
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clients import TrustedProxies, parse_address
from gateway.observability.logs import REQUEST_ID
from gateway.observability.metrics import HTTP_REQUESTS_BATCHED, flush_batched

access_log = logging.getLogger("onewindow.access")
_encoder = msgspec.json.Encoder()

HEADER = b"x-request-id"
#: An incoming request id is taken as it is only if it looks like one (no spaces, no personal data, bounded).
_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._\-]{1,64}")
UNMATCHED = "<unmatched>"
#: Batched request observations reach the histogram within this many seconds (and before every scrape).
METRICS_FLUSH_SECONDS = 1.0
_STATUS = {code: str(code) for code in range(100, 600)}
EVENT_STREAM = b"text/event-stream"
#: nginx turns its response buffering off for a response carrying this header.
NO_PROXY_BUFFERING = (b"x-accel-buffering", b"no")


class RequestIds:
    """Request ids unique across processes without a system call per request: 8 random hex characters drawn
    once per process, then a counter (16 hex characters in all)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def next(self) -> bytes:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}".encode()


class AccessLog:
    """The access lines, one JSON object each, in the same shape as every other log line (``logger``
    ``onewindow.access``), written to standard error in batches: a line is queued in memory and the queue is
    written at most ``FLUSH_SECONDS`` later, in writes of at most `CHUNK` bytes of whole lines (so they never
    interleave with other writers' lines on a pipe). Going through `logging` cost ~130 µs of CPU per request
    (the queue hand-off to the log thread); this costs a few (bench/RESULTS.md).

    The lines are also sent through `logging` when the ``onewindow.access`` logger has handlers of its own (tests
    capture them that way); the root handler never sees them twice.
    """

    FLUSH_SECONDS = 0.05
    CHUNK = 4096

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._scheduled = False
        self._second = -1
        self._stamp = ""
        self._tails: dict[tuple[str, str], str] = {}

    def write(self, method: str, route: str, status: int, elapsed: float, request_id: str) -> None:
        if access_log.handlers:
            access_log.info(
                "request",
                extra={"method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1e3, 2)},
            )
            return
        # Built by hand from cached parts (the same JSON msgspec would write: ~2 µs instead of ~11 µs).
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = dt.datetime.fromtimestamp(second, dt.UTC).strftime('{"time":"%Y-%m-%dT%H:%M:%S')
        tail = self._tails.get((method, route))
        if tail is None:
            tail = self._tails[(method, route)] = (
                f'","method":{_encoder.encode(method).decode()},"route":{_encoder.encode(route).decode()},'
            )
        # The request id is ours (hex) or a proxy's checked against [A-Za-z0-9._-]: nothing to escape.
        self._lines.append(
            f'{self._stamp}.{int((now - second) * 1000):03d}+00:00","level":"INFO","logger":"onewindow.access",'
            f'"message":"request","request_id":"{request_id}{tail}"status":{status},'
            f'"duration_ms":{round(elapsed * 1e3, 2)}}}'
        )
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop: write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        lines, self._lines = self._lines, []
        if not lines:
            return
        stream = sys.stderr
        chunk: list[str] = []
        size = 0
        try:
            for line in lines:
                if chunk and size + len(line) + 1 > self.CHUNK:
                    stream.write("\n".join(chunk) + "\n")
                    stream.flush()
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line) + 1
            stream.write("\n".join(chunk) + "\n")
            stream.flush()
        except (OSError, ValueError):  # standard error closed (shutdown): nothing left to tell
            pass


class ObservedRequests:
    """The ASGI wrapper (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: TrustedProxies, access_log_enabled: bool = True) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.access_log_enabled = access_log_enabled
        self.access = AccessLog()
        self.ids = RequestIds()
        self._flush_scheduled = False

    def _flush_metrics(self) -> None:
        self._flush_scheduled = False
        flush_batched()

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
        raw_id = self._incoming_id(scope) or self.ids.next()
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
            HTTP_REQUESTS_BATCHED.observe((method, route, _STATUS.get(status) or str(status)), elapsed)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_later(METRICS_FLUSH_SECONDS, self._flush_metrics)
            if self.access_log_enabled:
                self.access.write(method, route, status, elapsed, request_id)
            REQUEST_ID.reset(token)


def observe(app: Litestar, *, trusted_proxies: TrustedProxies, access_log_enabled: bool = True) -> None:
    """Wrap ``app``'s ASGI handler (once); the last access lines are written at shutdown."""
    if not isinstance(app.asgi_handler, ObservedRequests):
        observed = ObservedRequests(
            app.asgi_handler, trusted_proxies=trusted_proxies, access_log_enabled=access_log_enabled
        )
        app.asgi_handler = observed
        app.on_shutdown.extend([observed.access.flush, flush_batched])


__all__ = ["HEADER", "UNMATCHED", "AccessLog", "ObservedRequests", "RequestIds", "observe"]
