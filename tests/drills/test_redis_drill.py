"""Redis drill: the fast store stops in the middle of filing and tracking, and comes back empty.

The real ``onewindow serve`` on SQLite with a Redis server of the drill's own (loopback, free port, no persistence).
While Redis is down every filing (create + accept, with its ``Idempotency-Key``) and every tracking lookup answers
either as usual or 503 problem+json with ``Retry-After`` — never a 500, never a stack trace, never a half-written
case (every case in the database is accepted, with its tracking number). Redis then starts again *empty*: without
restarting the gateway, filings and lookups succeed again within `RECOVERY_BOUND` seconds, and retrying every
request that was answered 503 with its key files each exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.drills.support import (
    Answer,
    Server,
    assert_clean_unavailable,
    clerk_headers,
    environment,
    filings,
    fire,
    redis_server,
    servers,
)
from tests.gateway.intake.fixtures import simulators_in_thread

__all__ = ["servers"]  # the fixture

pytestmark = pytest.mark.slow
#: Seconds within which the gateway serves again once Redis is back.
RECOVERY_BOUND = 30.0


def _rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        return conn.execute(query).fetchall()


async def _track(client: httpx.AsyncClient, receipts: list[tuple[str, str]]) -> list[httpx.Response]:
    return await asyncio.gather(*(client.get(f"/api/v1/track/{n}", params={"code": c}) for n, c in receipts))


async def test_redis_down_then_back_empty_answers_503_and_recovers_without_a_restart(
    tmp_path: Path, servers: list[Server]
) -> None:
    data_dir = tmp_path / "var"
    database = data_dir / "onewindow.sqlite3"
    with simulators_in_thread(data_dir) as sims, redis_server(tmp_path / "redis") as redis:
        env = environment(
            ONEWINDOW_SIMULATOR_BASE_HOST=sims.control_url,
            ONEWINDOW_LOOKUP_BUDGET_SECONDS="20",
            ONEWINDOW_REDIS_URL=redis.url,
        )
        clerk = clerk_headers(env, data_dir)
        server = Server(data_dir, tmp_path, env, 1)
        servers.append(server)
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.base, timeout=30.0) as client:
            # 1. Redis up: everything works.
            before = await fire(client, filings(sims, 10, "up"), clerk)
            assert {v[0] for v in before.values() if isinstance(v, tuple)} == {201}, before
            receipts = [(b["tracking_number"], b["query_code"]) for b in _bodies(before)]
            assert {r.status_code for r in await _track(client, receipts)} == {200}

            # 2. Redis gone: as usual or a clean 503, nothing else.
            redis.stop()
            during_requests = filings(sims, 20, "down")
            during = await fire(client, during_requests, clerk)
            lookups = await _track(client, receipts)
            filed = {k: v for k, v in during.items() if isinstance(v, tuple) and v[0] == 201}
            refused = {k: v for k, v in during.items() if isinstance(v, tuple) and v[0] != 201}
            for answer in refused.values():
                assert_clean_unavailable(answer)
            assert len(filed) + len(refused) == len(during), during
            for response in lookups:
                if response.status_code != 200:
                    assert_clean_unavailable((response.status_code, response.content, dict(response.headers)))
            half_written = _rows(
                database, "SELECT id FROM applications WHERE status != 'accepted' OR tracking_number IS NULL"
            )
            assert half_written == []
            ready = await client.get("/health/ready")

            # 3. Redis back, empty: the same gateway serves again within the bound.
            redis.start()
            started = time.monotonic()
            probes = 0
            while True:
                probes += 1
                probe = await fire(client, filings(sims, 1, "probe"), clerk)
                if all(isinstance(v, tuple) and v[0] == 201 for v in probe.values()):
                    break
                assert time.monotonic() - started < RECOVERY_BOUND, f"no recovery after {RECOVERY_BOUND} s: {probe}"
                await asyncio.sleep(0.5)
            recovered_after = time.monotonic() - started
            retried = await fire(client, {k: during_requests[k] for k in during}, clerk)
            assert {v[0] for v in retried.values() if isinstance(v, tuple)} == {201}, [
                v[1] for v in retried.values() if isinstance(v, tuple) and v[0] != 201
            ]
            for key, answer in filed.items():  # answered before Redis came back: replayed from the database
                assert retried[key][1] == answer[1]
            assert {r.status_code for r in await _track(client, receipts)} == {200}
            assert (await client.get("/health/ready")).status_code == 200
        server.stop()

    keys = 10 + 20 + probes  # a probe answered 503 filed nothing; one answered 201 filed one case
    rows = _rows(database, "SELECT count(*), count(DISTINCT tracking_number) FROM applications")[0]
    print(
        f"\nredis drill: while Redis was down {len(filed)} × 201, {len(refused)} × 503 of {len(during)} filings; "
        f"lookups {sorted({r.status_code for r in lookups})}; readiness {ready.status_code} "
        f"{ready.json().get('checks', ready.json())}; recovered {recovered_after:.1f} s after Redis restarted; "
        f"{rows[0]} cases for {keys}+ keys"
    )
    assert rows[0] == rows[1] and 31 <= rows[0] <= keys
    idempotency = _rows(database, "SELECT count(*) FROM idempotency_records")[0][0]
    assert idempotency == rows[0], "one durable idempotency record per case"


def _bodies(answers: dict[str, Answer | str]) -> list[dict[str, Any]]:
    import json

    return [json.loads(v[1]) for v in answers.values() if isinstance(v, tuple)]
