"""The live stream (SSE) over real HTTP, with the memory and the Redis channels backends: a committed change reaches
the open streams (how fast is for bench/, not for a test), and each caller sees only the cases of their scope."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

from gateway.app import create_app
from gateway.context import context_of
from gateway.events import jobs, outbox, types
from gateway.events.jobs import channel_publisher
from gateway.events.stream import channels_of
from gateway.identity import create_token
from gateway.settings import Settings
from gateway.storage import Database
from tests.gateway.events.support import case, loopback_settings

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[str, Database]]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", context_of(app).database
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def read_events(response: httpx.Response, count: int, into: list[dict[str, Any]]) -> None:
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event["event"] = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            event["data"] = msgspec.json.decode(line.split(":", 1)[1].strip())
        elif line.startswith("id:"):
            event["id"] = line.split(":", 1)[1].strip()
        elif line.startswith(":"):
            assert "data" not in event  # a comment is never part of an event
        elif line == "" and "data" in event:
            into.append(event)
            event = {}
            if len(into) >= count:
                return


async def test_consoles_see_their_scope_within_a_second(db_settings: Settings, redis_url: str) -> None:
    settings = loopback_settings(db_settings, redis_url=redis_url)
    async with serve(settings) as (base, db):
        clerk, _ = await create_token(db, role="clerk", unit="430302001000")
        other_clerk, _ = await create_token(db, role="clerk", unit="430302007000")
        officer, _ = await create_token(db, role="officer", department="civil_affairs")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/api/v1/events/stream")).status_code == 401
            seen: dict[str, list[dict[str, Any]]] = {"clerk": [], "other": [], "officer": []}
            async with contextlib.AsyncExitStack() as stack:
                readers = []
                # The clerks' readers never have enough: they read until cancelled, so a leak would show.
                for who, token, expected in (("clerk", clerk, 3), ("other", other_clerk, 3), ("officer", officer, 2)):
                    response = await stack.enter_async_context(
                        http.stream("GET", "/api/v1/events/stream", headers={"Authorization": f"Bearer {token}"})
                    )
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    readers.append(asyncio.create_task(read_events(response, expected, seen[who])))
                await asyncio.sleep(0.3)  # subscribed
                other_unit = msgspec.structs.replace(case(2), filing_unit="430302007000", handling_unit="430302007000")
                for ref in (case(1), other_unit):
                    async with db.transaction() as conn:
                        await outbox.emit(conn, types.APPLICATION_ACCEPTED, ref, {"status": "accepted"})
                await asyncio.wait_for(readers[2], 60)  # the officer saw both: both were published
                await asyncio.sleep(0.5)  # the clerks' streams carried the same messages
                for task in readers:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    officer_ids = [e["data"]["data"]["application_id"] for e in seen["officer"]]
    assert officer_ids == [case(1).id, case(2).id]  # both are civil-affairs items
    assert [e["data"]["data"]["application_id"] for e in seen["clerk"]] == [case(1).id]
    assert [e["data"]["data"]["application_id"] for e in seen["other"]] == [case(2).id]
    first = seen["clerk"][0]
    assert first["event"] == "application.accepted" and first["data"]["type"] == "application.accepted"


async def test_the_console_stream_follows_the_session_cookie(db_settings: Settings) -> None:
    """``/console/events``: the same events, in the signed-in officer's scope, with no bearer token in the page."""
    from tests.gateway.web.pages import hidden

    async with serve(loopback_settings(db_settings)) as (base, db):
        officer, _ = await create_token(db, role="officer", department="civil_affairs")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/console/events")).status_code == 303  # no session: back to sign-in
            form = await http.get("/console")
            signed = await http.post(
                "/console/sign-in", data={"csrf": hidden(form.text, "csrf"), "next": "/console", "token": officer}
            )
            assert signed.status_code == 303
            queue = await http.get("/console/queue")
            assert 'data-events="/console/events"' in queue.text and "application.accepted" in queue.text
            seen: list[dict[str, Any]] = []
            async with http.stream("GET", "/console/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                reader = asyncio.create_task(read_events(response, 1, seen))
                await asyncio.sleep(0.3)  # subscribed
                other_department = msgspec.structs.replace(case(3), department="public_security", item_code="0101")
                for ref in (other_department, case(4)):
                    async with db.transaction() as conn:
                        await outbox.emit(conn, types.APPLICATION_ACCEPTED, ref, {"status": "accepted"})
                await asyncio.wait_for(reader, 60)
    assert [e["data"]["data"]["application_id"] for e in seen] == [case(4).id]


async def test_events_before_the_stream_starts_are_skipped_quietly(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifespans (and so the dispatcher) start before the channels plugin: a first round that finds events left
    by an earlier run must not fail or log a traceback — nobody can be listening yet; the webhooks carry them."""
    app = create_app(loopback_settings(db_settings))
    plugin = channels_of(app)
    assert plugin is not None
    said: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(jobs.log, "info", lambda message, *args, **kwargs: said.append((message % args, kwargs)))
    monkeypatch.setattr(jobs.log, "warning", lambda message, *args, **kwargs: said.append((message % args, kwargs)))
    await channel_publisher(plugin)([{"type": "application.accepted"}])  # not started: no exception
    assert said == [("live stream not running (start-up or shutdown): 1 event(s) not streamed", {})]
