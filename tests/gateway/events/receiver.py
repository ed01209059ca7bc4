"""A real webhook receiver on loopback (aiohttp), for the delivery tests and the drills.

It records every request (headers, raw body) and answers from a script: a list of statuses used one per request,
then ``default``. ``down()`` closes its listening socket (connections refused) and ``up()`` reopens it on the same
port, so a subscription keeps its URL across an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    script: list[int] = field(default_factory=list)
    default: int = 204
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    port: int = 0
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(headers={k.lower(): v for k, v in request.headers.items()}, body=body))
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.script.pop(0) if self.script else self.default
        self.answers.append(status)
        return web.Response(status=status, headers=self.headers)

    async def up(self) -> None:
        if self._runner is None:
            app = web.Application()
            app.router.add_post("/hook", self.handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            server = self._site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def down(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        await self.down()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ok_ids(self) -> list[str]:
        """The ``webhook-id`` of every request answered 2xx, in arrival order."""
        return [r.message_id for r, a in zip(self.received, self.answers, strict=False) if 200 <= a < 300]

    async def wait_for(self, count: int, within: float = 60.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived."""
        async with asyncio.timeout(within):
            while True:
                self.arrived.clear()
                if len(self.received) >= count:
                    break
                await self.arrived.wait()
        return self.received


@contextlib.asynccontextmanager
async def receiver(**options: Any) -> AsyncIterator[Receiver]:
    r = Receiver(**options)
    await r.up()
    try:
        yield r
    finally:
        await r.close()
