"""Where the jobs run: inside the serving app by default, not at all with ``jobs_in_process`` off (``serve
--no-jobs``), where a separate dispatcher (``onewindow worker``) does the work."""

from __future__ import annotations

import asyncio

import msgspec
from sqlalchemy import select

from gateway.app import create_app
from gateway.context import context_of
from gateway.events import outbox, types
from gateway.events.tables import outbox_events
from gateway.settings import Settings
from gateway.storage import Database
from tests.dbutil import asgi_client
from tests.gateway.events.receiver import receiver
from tests.gateway.events.support import case, dispatcher, loopback_settings, subscribe


async def dispatched(db: Database) -> list[bool]:
    async with db.read() as conn:
        return [r is not None for r in (await conn.execute(select(outbox_events.c.dispatched_at))).scalars()]


async def emit_one(db: Database) -> None:
    async with db.transaction() as conn:
        await outbox.emit(conn, types.APPLICATION_ACCEPTED, case(1), {"status": "accepted"})


async def test_no_jobs_leaves_delivery_to_a_worker(db_settings: Settings) -> None:
    settings = msgspec.structs.replace(loopback_settings(db_settings), jobs_in_process=False)
    app = create_app(settings)
    async with asgi_client(app), receiver() as hook:
        db = context_of(app).database
        await subscribe(db, settings, hook.url)
        await emit_one(db)
        await asyncio.sleep(0.5)
        assert hook.received == [] and await dispatched(db) == [False]
        worker = dispatcher(db, settings)
        await worker.step()
        await worker.close()
        assert len(hook.received) == 1 and await dispatched(db) == [True]


async def test_the_serving_app_delivers_by_default(db_settings: Settings) -> None:
    settings = loopback_settings(db_settings)
    app = create_app(settings)
    async with asgi_client(app), receiver() as hook:
        db = context_of(app).database
        await subscribe(db, settings, hook.url)
        await emit_one(db)
        await hook.wait_for(1, within=10)
