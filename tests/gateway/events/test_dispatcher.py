"""The dispatcher on SQLite and PostgreSQL: several at once deliver each event once per subscription, in order per
case; a claim of a dispatcher that died runs out and the delivery goes out anyway."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from gateway.events.jobs import running
from gateway.events.tables import outbox_events, webhook_deliveries
from gateway.settings import Settings
from gateway.storage import Database, utcnow
from tests.dbutil import two_schemas
from tests.gateway.events.receiver import receiver
from tests.gateway.events.support import dispatcher, emit_many, loopback_settings, subscribe
from tests.services import POSTGRES_URL, need


async def test_three_dispatchers_deliver_each_event_once_in_order_per_case(
    database: Database, db_settings: Settings
) -> None:
    settings = loopback_settings(db_settings)
    async with receiver() as hook:
        secret = await subscribe(database, settings, hook.url)
        await emit_many(database, cases=6, per_case=10)
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(3):
                await stack.enter_async_context(running(dispatcher(database, settings)))
            await hook.wait_for(60)
            await asyncio.sleep(0.3)  # anything sent twice would arrive by now
    ids = [r.message_id for r in hook.received]
    assert len(ids) == len(set(ids)) == 60
    steps: dict[str, list[int]] = defaultdict(list)
    for r in hook.received:
        body = Webhook(secret).verify(r.body, r.headers)
        steps[body["data"]["application_id"]].append(body["data"]["step"])
    assert all(s == list(range(10)) for s in steps.values()) and len(steps) == 6
    async with database.read() as conn:
        undispatched = (await conn.execute(select(outbox_events).where(outbox_events.c.dispatched_at.is_(None)))).all()
        states = set((await conn.execute(select(webhook_deliveries.c.state))).scalars())
    assert undispatched == [] and states == {"succeeded"}


async def test_a_claim_left_by_a_dead_dispatcher_runs_out_and_is_delivered(
    database: Database, db_settings: Settings
) -> None:
    settings = loopback_settings(db_settings)
    async with receiver() as hook:
        await subscribe(database, settings, hook.url)
        await emit_many(database, cases=1, per_case=2)
        crashed = dispatcher(database, settings)
        await crashed.fan_out()
        claims = await crashed.claim()
        assert len(claims) == 1  # the second event of the case waits for the first
        # The process dies here, before sending: nobody else may take the delivery while its claim lasts …
        other = dispatcher(database, settings)
        assert await other.claim() == []
        # … and once it has run out, the delivery is claimed again and goes out, then the next in order.
        async with database.transaction() as conn:
            await conn.execute(update(webhook_deliveries).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
        async with running(other):
            await hook.wait_for(2)
        await crashed.close()
    assert [r.json["data"]["step"] for r in hook.received] == [0, 1]


async def test_a_fan_out_in_another_schema_of_the_database_does_not_hold_this_one_up(tmp_path: Path) -> None:
    """Advisory locks are database-wide: keyed without the schema, a deployment in another schema fanning out
    (here: holding its lock) made this one's fan-out skip its round (a test beside it once failed so)."""
    async with two_schemas(need(POSTGRES_URL, "PostgreSQL"), tmp_path) as ((a, elsewhere), (b, here)):
        settings = loopback_settings(b)
        await subscribe(here, settings, "http://127.0.0.1:9/hook")
        await emit_many(here, cases=2, per_case=1)
        async with elsewhere.transaction() as conn:  # the other deployment is fanning out
            await dispatcher(elsewhere, loopback_settings(a))._fan_out_in(conn)
            worker = dispatcher(here, settings)
            assert await worker.fan_out() == 2
            await worker.close()


async def test_a_breaker_stops_a_dead_endpoint_from_holding_up_a_live_one(
    database: Database, db_settings: Settings
) -> None:
    settings = loopback_settings(db_settings, webhook_breaker_seconds=3600.0, webhook_time_scale=1.0)
    async with receiver(default=500) as dead, receiver() as live:
        await subscribe(database, settings, dead.url)
        await subscribe(database, settings, live.url)
        worker = dispatcher(database, settings)
        for round_ in range(settings.webhook_breaker_failures):
            async with database.transaction() as conn:  # every retry due now: one attempt per round
                await conn.execute(update(webhook_deliveries).values(next_attempt_at=utcnow()))
            if round_ == 0:
                await emit_many(database, cases=8, per_case=1)
            await worker.step()
        tried = len(dead.received)
        async with database.transaction() as conn:
            await conn.execute(update(webhook_deliveries).values(next_attempt_at=utcnow()))
        await emit_many(database, cases=8, per_case=1)
        await worker.step()
        await worker.step()
        await worker.close()
    assert len(dead.received) == tried  # breaker open: not tried again
    assert len(live.received) == 16


async def test_a_round_in_one_transaction_records_the_last_batch_and_claims_the_next_in_order(
    database: Database, db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = loopback_settings(db_settings)
    async with receiver() as hook:
        await subscribe(database, settings, hook.url)
        await emit_many(database, cases=2, per_case=3)
        worker = dispatcher(database, settings)
        worker.one_transaction = True  # the SQLite default; on PostgreSQL too, here
        writes = 0
        transaction = database.transaction

        @contextlib.asynccontextmanager
        async def counted() -> AsyncIterator[AsyncConnection]:
            nonlocal writes
            writes += 1
            async with transaction() as conn:
                yield conn

        monkeypatch.setattr(database, "transaction", counted)
        worked, attempts = await worker.round()
        # One write: 6 events fanned out and the first of each case claimed (the others wait for it), then sent.
        assert (writes, worked, len(attempts)) == (1, 8, 2) and all(a.ok for a in attempts)
        for step in (1, 2):
            # One write: the last two outcomes recorded, which lets each case's next event be claimed with them.
            worked, attempts = await worker.round(attempts)
            assert (writes, worked) == (1 + step, 2)
            assert sorted(a.claimed.data["step"] for a in attempts) == [step, step]
        async with database.read() as conn:
            open_ = await conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.state != "succeeded"))
            assert len(open_.all()) == 2  # sent, not yet recorded: their claims still hold them
        assert await dispatcher(database, settings).claim() == []  # (a write of its own)
        worked, attempts = await worker.round(attempts)  # records the last two; nothing left to claim
        assert (writes, worked, attempts) == (5, 0, [])
        assert await worker.round() == (0, [])  # idle: reads only
        assert writes == 5
        await worker.close()
    steps: dict[str, list[int]] = defaultdict(list)
    for r in hook.received:
        steps[r.json["data"]["application_id"]].append(r.json["data"]["step"])
    assert list(steps.values()) == [[0, 1, 2], [0, 1, 2]]
    async with database.read() as conn:
        rows = (await conn.execute(select(webhook_deliveries.c.state, webhook_deliveries.c.attempts))).all()
    assert sorted(rows) == [("succeeded", 1)] * 6
