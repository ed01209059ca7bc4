"""PostgreSQL drill: the database restarts in the middle of filing and tracking.

The real ``onewindow serve`` on a PostgreSQL cluster of the drill's own (``initdb`` in a temporary directory, a
free loopback port). While the server is down, every filing (create + accept with its ``Idempotency-Key``), every
tracking lookup and every staff read answers within `ANSWER_BOUND` seconds, either as usual or 503 problem+json
with ``Retry-After`` — never a 500 or a stack trace; readiness says the database is down. After the server is
back, the same gateway (never restarted) serves again within `RECOVERY_BOUND` seconds, and retrying the refused
requests with their keys files each exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gateway.storage import Database
from tests.drills.support import (
    Server,
    assert_clean_unavailable,
    clerk_headers,
    environment,
    filings,
    fire,
    postgres_server,
    servers,
)
from tests.gateway.intake.fixtures import simulators_in_thread

__all__ = ["servers"]  # the fixture

pytestmark = pytest.mark.slow
#: Seconds within which every request is answered while the database is down.
ANSWER_BOUND = 15.0
#: Seconds within which the gateway serves again once the database is back.
RECOVERY_BOUND = 30.0


async def _count(url: str) -> tuple[int, int, int]:
    db = Database.from_url(url, inline_reads=False)
    try:
        async with db.read() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), count(DISTINCT tracking_number), "
                        "count(*) FILTER (WHERE status != 'accepted' OR tracking_number IS NULL) FROM applications"
                    )
                )
            ).one()
    finally:
        await db.dispose()
    return int(row[0]), int(row[1]), int(row[2])


async def test_postgres_restart_answers_503_in_bound_and_recovers_without_a_restart(
    tmp_path: Path, servers: list[Server]
) -> None:
    data_dir = tmp_path / "var"
    with simulators_in_thread(data_dir) as sims, postgres_server() as pg:
        env = environment(
            ONEWINDOW_SIMULATOR_BASE_HOST=sims.control_url,
            ONEWINDOW_LOOKUP_BUDGET_SECONDS="20",
            ONEWINDOW_DATABASE_URL=pg.url,
            # The background jobs run in this server as `serve` runs them (dispatcher, reporter, grid catch-up,
            # report schedule with its figures computed in the report child, never on the serving loop).
        )
        clerk = clerk_headers(env, data_dir)
        server = Server(data_dir, tmp_path, env, 1)
        servers.append(server)
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.base, timeout=60.0) as client:
            before = await fire(client, filings(sims, 10, "up"), clerk)
            assert {v[0] for v in before.values() if isinstance(v, tuple)} == {201}, before
            receipts = [json.loads(v[1]) for v in before.values() if isinstance(v, tuple)]
            track = [f"/api/v1/track/{r['tracking_number']}?code={r['query_code']}" for r in receipts]
            assert {(await client.get(u)).status_code for u in track} == {200}

            pg.stop()
            started = time.monotonic()
            during_requests = filings(sims, 10, "down")
            during, lookups, listing, ready = await asyncio.gather(
                fire(client, during_requests, clerk),
                asyncio.gather(*(client.get(u) for u in track)),
                client.get("/api/v1/applications", headers=clerk),
                client.get("/health/ready"),
            )
            answered_in = time.monotonic() - started
            assert answered_in < ANSWER_BOUND, f"answers took {answered_in:.1f} s with the database down"
            refused = {k: v for k, v in during.items() if isinstance(v, tuple) and v[0] != 201}
            assert all(isinstance(v, tuple) for v in during.values()), during
            for answer in refused.values():
                assert_clean_unavailable(answer)
            for response in [*lookups, listing]:
                if response.status_code != 200:
                    assert_clean_unavailable((response.status_code, response.content, dict(response.headers)))
            assert ready.status_code == 503 and not ready.json()["checks"]["database"]["ok"]

            pg.start()
            restarted = time.monotonic()
            probes = 0
            while True:
                probes += 1
                probe = await fire(client, filings(sims, 1, "probe"), clerk)
                if all(isinstance(v, tuple) and v[0] == 201 for v in probe.values()):
                    break
                for outcome in probe.values():
                    assert isinstance(outcome, tuple)
                    assert_clean_unavailable(outcome)
                assert time.monotonic() - restarted < RECOVERY_BOUND, f"no recovery in {RECOVERY_BOUND} s: {probe}"
                await asyncio.sleep(0.5)
            recovered_in = time.monotonic() - restarted
            retried = await fire(client, during_requests, clerk)
            assert {v[0] for v in retried.values() if isinstance(v, tuple)} == {201}, [
                v[1] for v in retried.values() if isinstance(v, tuple) and v[0] != 201
            ]
            assert {(await client.get(u)).status_code for u in track} == {200}
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.get("/api/v1/applications", headers=clerk)).status_code == 200
        server.stop()
        cases, numbers, half_written = await _count(pg.url)

    print(
        f"\npostgres drill: database down — {len(during) - len(refused)} × 201, {len(refused)} × 503 of "
        f"{len(during)} filings, lookups {sorted({r.status_code for r in lookups})}, list {listing.status_code}, "
        f"all answered in {answered_in:.2f} s; recovered {recovered_in:.1f} s after the restart ({probes} probes); "
        f"{cases} cases, {numbers} tracking numbers"
    )
    assert half_written == 0 and cases == numbers
    assert 10 + 10 + 1 <= cases <= 10 + 10 + probes
    assert "Traceback" not in "".join(str(v) for v in during.values())
