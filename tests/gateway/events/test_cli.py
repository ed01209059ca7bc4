"""``onewindow webhooks``: dead letters listed and replayed from the command line, alerts as an exit status."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.audit.tables import audit_records
from gateway.events.tables import webhook_deliveries, webhook_subscriptions
from gateway.settings import Settings
from gateway.storage import Database, utcnow
from tests.gateway.events.receiver import receiver
from tests.gateway.events.support import dispatcher, emit_many, loopback_settings, subscribe

ONEWINDOW = Path(sys.executable).parent / "onewindow"

pytestmark = pytest.mark.slow


async def onewindow(settings: Settings, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    env.update(
        ONEWINDOW_DATA_DIR=str(settings.data_dir),
        ONEWINDOW_DATABASE_URL=settings.database_url,
        ONEWINDOW_DATABASE_SCHEMA=settings.database_schema,
    )
    proc = await asyncio.create_subprocess_exec(
        str(ONEWINDOW), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_dead_letters_and_alerts_from_the_command_line(database: Database, db_settings: Settings) -> None:
    settings = loopback_settings(db_settings)
    async with receiver(default=500) as hook:
        await subscribe(database, settings, hook.url)
        await emit_many(database, cases=2, per_case=1)
        worker = dispatcher(database, settings)
        await worker.step()
        async with database.transaction() as conn:  # both on their last attempt, due now
            await conn.execute(update(webhook_deliveries).values(attempts=12, next_attempt_at=utcnow()))
            await conn.execute(update(webhook_subscriptions).values(breaker_open_until=None))
        await worker.step()
        await worker.close()
    async with database.read() as conn:
        (subscription,) = (await conn.execute(select(webhook_subscriptions.c.id))).scalars()
        states = list((await conn.execute(select(webhook_deliveries.c.state))).scalars())
    assert states == ["dead", "dead"]

    code, out = await onewindow(settings, "webhooks", "list")
    assert code == 0 and subscription in out and "failing since" in out
    code, out = await onewindow(settings, "webhooks", "deliveries", subscription, "--state", "dead")
    assert code == 0 and out.count("dead") == 2 and "application.status_changed" in out
    code, out = await onewindow(settings, "webhooks", "alerts")
    assert code == 0 and "no endpoint failing" in out  # failing, but not for an hour yet
    async with database.transaction() as conn:
        await conn.execute(update(webhook_subscriptions).values(failing_since=utcnow() - dt.timedelta(hours=3)))
    code, out = await onewindow(settings, "webhooks", "alerts")
    assert code == 1 and subscription in out

    code, out = await onewindow(settings, "webhooks", "retry", "--all-dead")
    assert code == 0 and "2 deliveries replayed" in out
    code, out = await onewindow(settings, "webhooks", "retry", "--all-dead")
    assert code == 0 and "0 deliveries replayed" in out
    code, out = await onewindow(settings, "webhooks", "retry")
    assert code == 2
    async with database.read() as conn:
        states = list((await conn.execute(select(webhook_deliveries.c.state))).scalars())
        actors = list(
            (
                await conn.execute(
                    select(audit_records.c.actor).where(audit_records.c.action == "webhook.delivery_retried")
                )
            ).scalars()
        )
    assert states == ["pending", "pending"]
    assert len(actors) == 2 and all(a.startswith("cli:") for a in actors)
