"""Webhook drills, on SQLite and PostgreSQL, bounded and on loopback: nothing committed is ever lost.

* **Receiver down for an hour.** ``onewindow worker`` delivers to a receiver that is down (connections refused)
  for a simulated hour — time compressed with ``webhook_time_scale`` so that the hour takes ``OUTAGE_SECONDS`` —
  while events keep being committed; then the receiver comes back. Every event arrives (0 lost), each once: with
  the receiver refusing connections no attempt can have reached it, so there is no timeout to cause a duplicate.
* **kill -9 mid-burst.** ``onewindow worker`` delivers a burst to a slow receiver and gets SIGKILL once about a
  quarter has arrived; a second worker takes over. Every event arrives (0 lost); the only duplicates are the
  deliveries the dead worker had in flight (its claims ran out and were sent again), at most one claim batch.

The numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.events.dispatcher import CLAIM_BATCH
from gateway.events.tables import webhook_deliveries
from gateway.settings import Settings
from gateway.storage import Database
from tests.gateway.events.receiver import Receiver, receiver
from tests.gateway.events.support import emit_many, loopback_settings, subscribe

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ONEWINDOW = Path(sys.executable).parent / "onewindow"
#: One simulated hour takes this long.
OUTAGE_SECONDS = 4.0
TIME_SCALE = OUTAGE_SECONDS / 3600
DRILL_TIMEOUT = 120.0


class Worker:
    """One ``onewindow worker`` child process."""

    def __init__(self, settings: Settings, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
        env.update(
            ONEWINDOW_DATA_DIR=str(settings.data_dir),
            ONEWINDOW_DATABASE_URL=settings.database_url,
            ONEWINDOW_DATABASE_SCHEMA=settings.database_schema,
            ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
            ONEWINDOW_WEBHOOK_TIME_SCALE=str(settings.webhook_time_scale),
            ONEWINDOW_WEBHOOK_TIMEOUT_SECONDS=str(settings.webhook_timeout_seconds),
            ONEWINDOW_EVENTS_POLL_SECONDS="0.05",
        )
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(ONEWINDOW), "worker"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


async def all_delivered(db: Database, hook: Receiver, events: int) -> None:
    """Wait until every delivery succeeded and the receiver answered 2xx to ``events`` distinct ids."""
    async with asyncio.timeout(DRILL_TIMEOUT):
        while True:
            async with db.read() as conn:
                open_ = (
                    await conn.execute(
                        select(func.count())
                        .select_from(webhook_deliveries)
                        .where(webhook_deliveries.c.state != "succeeded")
                    )
                ).scalar_one()
            if open_ == 0 and len(set(hook.ok_ids())) >= events:
                return
            await asyncio.sleep(0.1)


async def test_receiver_down_for_a_simulated_hour_loses_nothing(
    database: Database, db_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    settings = loopback_settings(db_settings, webhook_time_scale=TIME_SCALE)
    async with receiver() as hook:
        await subscribe(database, settings, hook.url)
        await hook.down()
        workers.append(Worker(settings, tmp_path / "worker.log"))
        started = time.monotonic()
        await emit_many(database, cases=20, per_case=5)  # 100 events while it is down …
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        await emit_many(database, cases=20, per_case=5)  # … and 100 more half-way through the hour
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
        assert hook.received == []
        await hook.up()
        back = time.monotonic()
        await all_delivered(database, hook, 200)
        caught_up = time.monotonic() - back
        assert workers[0].stop() == 0
    ok = Counter(hook.ok_ids())
    print(
        f"\nreceiver down {OUTAGE_SECONDS:.1f} s (one simulated hour): 200 events, {len(ok)} delivered, "
        f"{sum(ok.values()) - len(ok)} duplicates, all delivered {caught_up:.1f} s after it came back"
    )
    assert len(ok) == 200  # 0 lost
    assert max(ok.values()) == 1  # refused connections never reached it: nothing to repeat


async def test_kill_9_of_the_delivering_worker_mid_burst_loses_nothing(
    database: Database, db_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    settings = loopback_settings(db_settings, webhook_timeout_seconds=2.0)
    events = 600
    async with receiver(delay=0.01) as hook:
        await subscribe(database, settings, hook.url)
        await emit_many(database, cases=60, per_case=events // 60)
        workers.append(Worker(settings, tmp_path / "worker-1.log"))
        await hook.wait_for(events // 4, within=DRILL_TIMEOUT)
        workers[0].kill()
        at_kill = len(hook.received)
        workers.append(Worker(settings, tmp_path / "worker-2.log"))
        await all_delivered(database, hook, events)
        assert workers[1].stop() == 0
    ok = Counter(hook.ok_ids())
    duplicates = sum(ok.values()) - len(ok)
    print(f"\nkill -9 after {at_kill} of {events} deliveries: {len(ok)} delivered, {duplicates} duplicates")
    assert len(ok) == events  # 0 lost
    assert duplicates <= CLAIM_BATCH  # only what the killed worker had in flight
