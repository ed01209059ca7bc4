"""Connection-pool drill: every database connection of the gateway is taken, and clerks keep filing.

The gateway (in process, on SQLite and on PostgreSQL) runs with a pool of two connections, no overflow and a
one-second ``database_pool_timeout_seconds``; the drill checks both out and holds them. Twenty concurrent filings
then answer 503 problem+json with ``Retry-After`` within a bound — they neither hang nor pile up behind each other
beyond the wait limits — nothing is half written, no connection leaks, and once the connections are released the
same gateway files at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from demokit.simulators.runner import PKI_SUBDIR, Simulators
from gateway.app import create_app
from gateway.cases.tables import applications
from gateway.context import context_of
from gateway.identity.tokens import create_token
from gateway.settings import Settings
from gateway.storage import Database
from tests.dbutil import asgi_client
from tests.drills.support import assert_clean_unavailable
from tests.gateway.intake.fixtures import ONE_CERT_ITEM, STREET, Gateway, shared_simulators

__all__ = ["shared_simulators"]  # the fixture

POOL_TIMEOUT = 1.0
#: Every answer within the pool's wait plus SQLite's wait for the writer's turn (10 s) and some slack.
ANSWER_BOUND = POOL_TIMEOUT + 10.0 + 5.0


@pytest.fixture
async def small_pool(db_settings: Settings, shared_simulators: Simulators) -> AsyncIterator[Gateway]:
    sims = shared_simulators
    shutil.copytree(sims.pki_dir, db_settings.data_dir / PKI_SUBDIR)
    settings = msgspec.structs.replace(
        db_settings,
        simulator_base_host=sims.control_url,
        lookup_budget_seconds=3.0,
        database_pool_size=2,
        database_pool_overflow=0,
        database_pool_timeout_seconds=POOL_TIMEOUT,
        # The requests' pool alone: the background jobs (event dispatcher, reports, reporter) would take turns on
        # these two connections too, and the drill counts what the requests hold.
        jobs_in_process=False,
    )
    app = create_app(settings)
    async with asgi_client(app) as client:
        gw = Gateway(app=app, client=client, settings=settings, sims=sims)
        token, _ = await create_token(context_of(app).database, role="clerk", unit=STREET)
        gw.tokens["clerk"] = token
        yield gw


async def _cases(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(applications))).scalar_one())


async def test_an_exhausted_pool_answers_503_in_bound_and_recovers(small_pool: Gateway) -> None:
    gw = small_pool
    db = gw.db
    citizen = gw.citizen("resident_id_card")
    body = gw.body(citizen, ONE_CERT_ITEM, accept=True, purpose="医保电子凭证申领")
    ok = await gw.client.post("/api/v1/applications", json=body, headers=gw.auth("clerk") | {"Idempotency-Key": "k0"})
    assert ok.status_code == 201, ok.text
    before = await _cases(db)

    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):  # take every connection of the pool, and use it
            held: AsyncConnection = await stack.enter_async_context(db.engine.connect())
            await held.execute(text("SELECT 1"))
        assert db.engine.pool.checkedout() == 2  # type: ignore[attr-defined]
        started = time.monotonic()

        async def file(n: int) -> tuple[int, bytes, dict[str, str], float]:
            response = await gw.client.post(
                "/api/v1/applications", json=body, headers=gw.auth("clerk") | {"Idempotency-Key": f"k{n}"}
            )
            return response.status_code, response.content, dict(response.headers), time.monotonic() - started

        answers = await asyncio.wait_for(asyncio.gather(*(file(n) for n in range(1, 21))), ANSWER_BOUND + 10)
    slowest = max(a[3] for a in answers)
    statuses = sorted({a[0] for a in answers})
    print(f"\npool drill ({db.dialect}): 20 filings with the pool taken: {statuses}, slowest answer {slowest:.2f} s")
    assert statuses == [503], [a[1][:200] for a in answers if a[0] != 503]
    for status, content, headers, _ in answers:
        assert_clean_unavailable((status, content, headers))
    assert slowest < ANSWER_BOUND
    assert await _cases(db) == before, "a refused filing left a case behind"
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    again = await gw.client.post(
        "/api/v1/applications", json=body, headers=gw.auth("clerk") | {"Idempotency-Key": "k1"}
    )
    assert again.status_code == 201, again.text
    assert await _cases(db) == before + 1
