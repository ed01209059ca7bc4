"""Crash drill: ``kill -9`` the gateway in the middle of concurrent filings, restart it, retry every request with its
``Idempotency-Key`` — no case is lost and none is filed twice.

The real ``onewindow serve`` in a child process on the embedded defaults (SQLite in a fresh data dir, in-memory
fast store: the configuration in which idempotency records used to live only in process memory), on a free loopback
port; the department simulators on loopback in this process answer the ID-card lookups; the token comes from
``onewindow tokens create``. ``REQUESTS`` clerks' create-and-accept requests (医保电子凭证申领, whose one material is
the ID card) go out at once, each with its own key, each client sending its request again after ``Retry-After`` when
answered 409 or 503 (SQLite's one writer turns some away under this load); when ``KILL_AFTER`` of them have been
answered 201 the server gets SIGKILL. Then:

* every case answered before the crash is in the database (durability of the commit);
* after a restart on the same data dir, retrying every request with its key answers every one 201, and each answer
  given before the crash comes back byte for byte (``Idempotent-Replayed: true``);
* the database holds exactly one case per key — rows of ``applications`` against the keys answered — and one
  idempotency record per key;
* ``onewindow audit verify`` finds the audit chain intact.

The numbers are printed (``pytest -s``). CI runs 300 requests; ``ONEWINDOW_DRILL_REQUESTS=1000`` runs the full size
of the drill (100..1000; about five minutes on a busy 2-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.drills.support import Server, environment, onewindow, servers
from tests.gateway.intake.fixtures import ONE_CERT_ITEM, STREET, simulators_in_thread, today_local

__all__ = ["servers"]  # the fixture

pytestmark = pytest.mark.slow

REQUESTS = max(100, min(1000, int(os.environ.get("ONEWINDOW_DRILL_REQUESTS", "300"))))
#: The server is killed once this many requests have been answered 201 (a quarter).
KILL_AFTER = REQUESTS // 4
PHASE_TIMEOUT = 180.0
URL = "/api/v1/applications"


def _rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        return conn.execute(query).fetchall()


Answer = tuple[int, bytes, dict[str, str]]


async def _fire(
    client: httpx.AsyncClient,
    requests: dict[str, dict[str, Any]],
    headers: dict[str, str],
    on_created: Any = None,
    retry_until: float | None = None,
) -> dict[str, Answer | str]:
    """Send every request at once; each key's answer (status, body, headers) or the error that replaced it.

    With ``retry_until`` (a monotonic time) each client behaves as a clerk's browser should: a 409 or 503 is sent
    again with the same key after its ``Retry-After``, until it gets another answer or the time is up.
    """
    results: dict[str, Answer | str] = {}

    async def one(key: str, body: dict[str, Any]) -> None:
        while True:
            try:
                response = await client.post(URL, json=body, headers=headers | {"Idempotency-Key": key})
            except httpx.HTTPError as exc:
                results[key] = type(exc).__name__
                return
            results[key] = (response.status_code, response.content, dict(response.headers))
            if response.status_code not in (409, 503) or retry_until is None or time.monotonic() > retry_until:
                break
            await asyncio.sleep(int(response.headers.get("retry-after", "1")))
        if on_created is not None and response.status_code == 201:
            on_created()

    await asyncio.gather(*(one(key, body) for key, body in requests.items()))
    return results


async def test_kill_9_mid_run_then_retry_every_key_loses_and_duplicates_nothing(
    tmp_path: Path, servers: list[Server]
) -> None:
    data_dir = tmp_path / "var"
    database = data_dir / "onewindow.sqlite3"
    with simulators_in_thread(data_dir) as sims:
        env = environment(ONEWINDOW_SIMULATOR_BASE_HOST=sims.control_url, ONEWINDOW_LOOKUP_BUDGET_SECONDS="20")
        made = onewindow(env, "tokens", "create", "--role", "clerk", "--unit", STREET, "--data-dir", str(data_dir))
        assert made.returncode == 0, made.stderr
        clerk = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

        today = today_local()
        citizens = [
            c
            for c in sorted(sims.citizens, key=lambda c: c.id_number)
            if (today - c.birth_date).days >= 18 * 366
            and any(x.type_key == "resident_id_card" and x.status == "01" for x in c.certificates)
        ][:40]
        assert len(citizens) >= 10
        requests = {
            f"drill-{n:04d}-{uuid.uuid4().hex[:8]}": {
                "item_code": ONE_CERT_ITEM,
                "applicant": {"id_number": c.id_number, "name": c.name, "phone": c.phone},
                "consent": True,
                "accept": True,
                "purpose": f"医保电子凭证申领 {n}",
            }
            for n, c in ((n, citizens[n % len(citizens)]) for n in range(REQUESTS))
        }

        # 1. Everything at once, each client retrying a 409/503 after Retry-After; SIGKILL once a quarter of the
        #    requests have been answered 201.
        first = Server(data_dir, tmp_path, env, 1)
        servers.append(first)
        await first.wait_ready()
        answered = 0
        killed_at: float | None = None
        started = time.monotonic()

        def on_created() -> None:
            nonlocal answered, killed_at
            answered += 1
            if answered == KILL_AFTER and killed_at is None:
                first.proc.send_signal(signal.SIGKILL)
                killed_at = time.monotonic() - started

        limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
        async with httpx.AsyncClient(base_url=first.base, timeout=60.0, limits=limits) as client:
            before = await asyncio.wait_for(
                _fire(client, requests, clerk, on_created, retry_until=time.monotonic() + PHASE_TIMEOUT - 10),
                PHASE_TIMEOUT,
            )
        first.kill()
        assert killed_at is not None, "the server answered everything before it could be killed; raise REQUESTS"
        answered_before = {k: v for k, v in before.items() if isinstance(v, tuple)}
        created_before = {k: v for k, v in answered_before.items() if v[0] == 201}
        assert len(created_before) >= KILL_AFTER, "the kill must come after cases were committed and answered"
        ids_before = {k: httpx.Response(201, content=v[1]).json()["id"] for k, v in created_before.items()}
        rows_after_crash = {r[0] for r in _rows(database, "SELECT id FROM applications")}
        lost = sorted(set(ids_before.values()) - rows_after_crash)
        assert lost == [], f"cases answered 201 before the crash are gone: {lost}"

        # 2. Restart on the same data dir; retry every request with its key until each has its answer.
        second = Server(data_dir, tmp_path, env, 2)
        servers.append(second)
        await second.wait_ready()
        after: dict[str, Answer | str] = {}
        pending = dict(requests)
        rounds = 0
        refusals: Counter[str] = Counter()
        async with httpx.AsyncClient(base_url=second.base, timeout=60.0, limits=limits) as client:
            retry_deadline = time.monotonic() + PHASE_TIMEOUT
            while True:
                rounds += 1
                results = await asyncio.wait_for(_fire(client, pending, clerk), PHASE_TIMEOUT)
                after.update(results)
                busy = [v for v in results.values() if isinstance(v, tuple) and v[0] in (409, 503)]
                for answer in busy:
                    refusals[f"{answer[0]} {httpx.Response(answer[0], content=answer[1]).json()['detail']}"] += 1
                pending = {k: requests[k] for k, v in results.items() if not isinstance(v, tuple) or v[0] in (409, 503)}
                if not pending or time.monotonic() > retry_deadline:
                    break
                # As a client should: wait what Retry-After says (at least a second) before trying those again.
                await asyncio.sleep(max([1, *(int(v[2].get("retry-after", "1")) for v in busy)]))
        second.stop()

    statuses = sorted({v[0] if isinstance(v, tuple) else v for v in after.values()}, key=str)
    assert statuses == [201], f"answers after the restart: {statuses}"
    final = {k: v for k, v in after.items() if isinstance(v, tuple)}
    ids_after = {k: httpx.Response(201, content=v[1]).json()["id"] for k, v in final.items()}
    changed = [k for k, v in created_before.items() if final[k][1] != v[1] or final[k][0] != v[0]]
    assert changed == [], f"answers given before the crash came back different: {changed[:5]}"
    assert all(final[k][2].get("idempotent-replayed") == "true" for k in created_before)
    replayed = sum(1 for v in final.values() if v[2].get("idempotent-replayed") == "true")

    rows = [r[0] for r in _rows(database, "SELECT id FROM applications")]
    records = _rows(database, "SELECT count(*) FROM idempotency_records")[0][0]
    duplicates = len(rows) - len(set(ids_after.values()))
    lost_after = sorted(set(ids_after.values()) - set(rows))
    print(
        f"\ncrash drill: {REQUESTS} create+accept requests, killed at {killed_at:.2f} s after "
        f"{KILL_AFTER} answers; answered before the crash {len(answered_before)} "
        f"({len(created_before)} × 201, {len(before) - len(answered_before)} cut off); "
        f"rows after the crash {len(rows_after_crash)} "
        f"({len(rows_after_crash - set(ids_before.values()))} committed but cut off); "
        f"after the retry: {len(rows)} rows for {len(requests)} keys, "
        f"{replayed} replayed, {records} idempotency records; duplicates {duplicates}, lost {len(lost_after)}; "
        f"{rounds} retry rounds, refusals while retrying: {dict(refusals) or 'none'}"
    )
    assert len(set(ids_after.values())) == len(requests), "two keys were answered with one case"
    assert sorted(rows) == sorted(ids_after.values()), "the cases in the database are not the ones answered"
    assert duplicates == 0 and lost_after == [] and records == len(requests)
    assert {k: ids_after[k] for k in ids_before} == ids_before

    verified = onewindow(environment(), "audit", "verify", "--data-dir", str(data_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert second.traces() == []
