"""Two gateways on one PostgreSQL schema and one Redis database behave as one deployment.

Two real ``onewindow serve`` processes on different loopback ports — gateway A with ``--workers 2``, gateway B with
one — each with a data dir of its own (as two hosts would: the data keys from the environment, the same audit
signing key file), sharing one PostgreSQL schema and
one Redis database; the department simulators answer on loopback in this process. Under concurrent load:

* **tracking numbers are unique and idempotency holds across processes**: every create-and-accept request is sent
  to both gateways at once with the same ``Idempotency-Key``; whichever answers first, each key ends with exactly
  one case (both gateways answer with the same id), and all tracking numbers differ;
* **the failure limit is shared**: wrong query codes sent alternately to A and B are blocked after the limit in all;
* **the circuit breaker is shared**: a department that fails opens its breaker through A, and B reports it open and
  fails fast without calling it (``/metrics``);
* **a periodic job runs once per slot for the deployment**: the draft purge (every second here) is claimed in
  ``scheduled_runs`` by one process per slot; the three processes' metrics add up to one run per slot and the
  others skipped it. A's two workers are summed by one scrape (Prometheus multi-process mode);
* the audit chain both wrote verifies.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from demokit.simulators.runner import PKI_SUBDIR
from gateway.privacy.keys import encode_key, generate_key
from gateway.scheduling.tables import scheduled_runs
from gateway.storage import Database
from tests.dbutil import isolated_settings, open_database
from tests.drills.support import Server, environment, onewindow, servers
from tests.gateway.intake.fixtures import ONE_CERT_ITEM, STREET, simulators_in_thread, today_local
from tests.services import POSTGRES_URL, REDIS_URL, need

__all__ = ["servers"]  # the fixture

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

URL = "/api/v1/applications"
KEYS = 40


@pytest.fixture
async def shared_database(tmp_path: Path) -> AsyncIterator[tuple[str, str, Database]]:
    url = need(POSTGRES_URL, "PostgreSQL")
    async with isolated_settings(url, tmp_path / "unused") as settings, open_database(settings) as db:
        yield url, settings.database_schema, db


@pytest.fixture
def shared_redis() -> Iterator[str]:
    url = need(REDIS_URL, "Redis")
    client = redis.Redis.from_url(url)

    def clear() -> None:
        keys = list(client.scan_iter(match="onewindow*", count=1000))
        if keys:
            client.delete(*keys)

    clear()
    try:
        yield url
    finally:
        clear()
        client.close()


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def _until_final(
    clients: list[httpx.AsyncClient], key: str, body: dict[str, Any], headers: dict[str, str]
) -> list[httpx.Response]:
    """The same keyed request sent to every gateway at once; each one retried while it answers 409 (in flight)."""

    async def one(client: httpx.AsyncClient) -> httpx.Response:
        for _ in range(100):
            response = await client.post(URL, json=body, headers=headers | {"Idempotency-Key": key})
            if response.status_code != 409:
                return response
            await asyncio.sleep(0.2)
        return response

    return list(await asyncio.gather(*(one(c) for c in clients)))


async def test_two_gateways_share_numbers_keys_limits_breakers_and_jobs(
    tmp_path: Path,
    servers: list[Server],
    shared_database: tuple[str, str, Database],
    shared_redis: str,
) -> None:
    database_url, schema, db = shared_database
    host_a, host_b, admin = tmp_path / "host-a", tmp_path / "host-b", tmp_path / "admin"
    # What an operator distributes to every host: the audit signing key (the data keys come from the environment).
    audit_key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for data_dir in (host_a, host_b, admin):
        (data_dir / "keys").mkdir(parents=True, mode=0o700)
        (data_dir / "keys" / "audit_ed25519.pem").write_bytes(audit_key)
        (data_dir / "keys" / "audit_ed25519.pem").chmod(0o600)
    with simulators_in_thread(tmp_path / "simulators") as sims:
        for data_dir in (host_a, host_b):  # the health department's mutual TLS client certificate
            shutil.copytree(sims.pki_dir, data_dir / PKI_SUBDIR)
        env = environment(
            ONEWINDOW_DATABASE_URL=database_url,
            ONEWINDOW_DATABASE_SCHEMA=schema,
            ONEWINDOW_REDIS_URL=shared_redis,
            ONEWINDOW_SIMULATOR_BASE_HOST=sims.control_url,
            ONEWINDOW_LOOKUP_BUDGET_SECONDS="20",
            ONEWINDOW_DRAFT_PURGE_INTERVAL_SECONDS="1",
            # Every host gets the data keys from the environment (a secret store), not from a file of its own.
            ONEWINDOW_DATA_KEYS=f"k1:{encode_key(generate_key())}",
            ONEWINDOW_INDEX_KEY=encode_key(generate_key()),
        )
        made = onewindow(env, "tokens", "create", "--role", "clerk", "--unit", STREET, "--data-dir", str(admin))
        assert made.returncode == 0, made.stderr
        clerk = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

        a = Server(host_a, tmp_path, env, "gateway-a", workers=2)
        b = Server(host_b, tmp_path, env, "gateway-b")
        servers.extend([a, b])
        await asyncio.gather(a.wait_ready(), b.wait_ready())

        today = today_local()
        adults = [
            c
            for c in sorted(sims.citizens, key=lambda c: c.id_number)
            if (today - c.birth_date).days >= 18 * 366
            and any(x.type_key == "resident_id_card" and x.status == "01" for x in c.certificates)
        ]
        assert len(adults) >= 30
        filing, failing = adults[:20], adults[20:30]

        def body(citizen: Any, n: int) -> dict[str, Any]:
            return {
                "item_code": ONE_CERT_ITEM,
                "applicant": {"id_number": citizen.id_number, "name": citizen.name, "phone": citizen.phone},
                "consent": True,
                "accept": True,
                "purpose": f"医保电子凭证申领 {n}",
            }

        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with (
            httpx.AsyncClient(base_url=a.base, timeout=60.0, limits=limits) as ca,
            httpx.AsyncClient(base_url=b.base, timeout=60.0, limits=limits) as cb,
        ):
            # 1. Every key to both gateways at once: one case per key, unique tracking numbers.
            keys = {f"two-{n:03d}-{uuid.uuid4().hex[:8]}": body(filing[n % len(filing)], n) for n in range(KEYS)}
            answers = await asyncio.gather(*(_until_final([ca, cb], k, v, clerk) for k, v in keys.items()))
            statuses = sorted({r.status_code for pair in answers for r in pair})
            assert statuses == [201], [
                (r.status_code, r.text[:300]) for pair in answers for r in pair if r.status_code != 201
            ][:4]
            ids = {k: {r.json()["id"] for r in pair} for k, pair in zip(keys, answers, strict=True)}
            assert all(len(v) == 1 for v in ids.values()), "one key made two cases"
            assert sum(1 for pair in answers for r in pair if r.headers.get("idempotent-replayed") == "true") >= KEYS
            numbers = [pair[0].json()["tracking_number"] for pair in answers]
            assert len(set(numbers)) == KEYS, "a tracking number was given twice"
            async with db.read() as conn:
                from gateway.cases.tables import applications

                rows = list(await conn.execute(select(applications.c.id, applications.c.tracking_number)))
            assert sorted(r.id for r in rows) == sorted(next(iter(v)) for v in ids.values())
            other = await cb.post(URL, json=body(filing[0], 999), headers=clerk | {"Idempotency-Key": next(iter(keys))})
            assert other.status_code == 422, other.text  # same key, other body: refused on the other gateway too

            # 2. The failure limit counts across gateways (and A's two workers).
            wrong = [
                await (ca if i % 2 else cb).get(f"/api/v1/track/{numbers[0]}", params={"code": "ZZZZZZZZ"})
                for i in range(16)
            ]
            codes = [r.status_code for r in wrong]
            assert codes.count(404) == 10 and codes[10:] == [429] * 6, codes
            assert (await ca.get(f"/api/v1/track/{numbers[0]}", params={"code": "ZZZZZZZZ"})).status_code == 429

            # 3. A failing department opens its breaker through A; B sees it open and does not call it.
            def calls(scrape: str, outcome: str) -> float:
                return _metric(
                    scrape,
                    "onewindow_department_call_duration_seconds_count",
                    department="public_security",
                    outcome=outcome,
                )

            scrape_b = (await cb.get("/metrics")).text
            assert _metric(scrape_b, "onewindow_breaker_state", department="public_security", state="closed") == 1.0
            b_unavailable, b_open = calls(scrape_b, "unavailable"), calls(scrape_b, "circuit_open")
            sims.set_faults("public_security", {"error_rate": 1.0})
            for n, citizen in enumerate(failing[:4]):
                response = await ca.post(URL, json=body(citizen, 500 + n) | {"accept": False}, headers=clerk)
                assert response.status_code == 201, response.text
            scrape_a = (await ca.get("/metrics")).text
            assert calls(scrape_a, "unavailable") >= 1  # A's calls failed and opened the breaker
            await asyncio.sleep(1.1)  # B's breaker answer from before is cached for a second
            scrape_b = (await cb.get("/metrics")).text
            assert _metric(scrape_b, "onewindow_breaker_state", department="public_security", state="open") == 1.0
            response = await cb.post(URL, json=body(failing[5], 600) | {"accept": False}, headers=clerk)
            assert response.status_code == 201, response.text
            scrape_b = (await cb.get("/metrics")).text
            assert calls(scrape_b, "circuit_open") >= b_open + 1  # B failed fast …
            assert calls(scrape_b, "unavailable") == b_unavailable  # … without calling the failing department
            sims.set_faults("public_security", {})

            # 4. The draft purge: one run per slot for the whole deployment.
            await asyncio.sleep(4)
            async with db.read() as conn:
                claimed_before = len(
                    list(await conn.execute(select(scheduled_runs.c.slot).where(scheduled_runs.c.job == "draft_purge")))
                )
            scrape_a, scrape_b = (await ca.get("/metrics")).text, (await cb.get("/metrics")).text
            async with db.read() as conn:
                claims = list(
                    await conn.execute(
                        select(scheduled_runs.c.slot, scheduled_runs.c.claimed_by).where(
                            scheduled_runs.c.job == "draft_purge"
                        )
                    )
                )
            job = {"job": "draft_purge"}
            ran = sum(
                _metric(s, "onewindow_scheduled_job_runs_total", outcome="ran", **job) for s in (scrape_a, scrape_b)
            )
            skipped = sum(
                _metric(s, "onewindow_scheduled_job_runs_total", outcome="skipped", **job) for s in (scrape_a, scrape_b)
            )
            failed = sum(
                _metric(s, "onewindow_scheduled_job_runs_total", outcome="failed", **job) for s in (scrape_a, scrape_b)
            )
            print(
                f"\ntwo gateways: {KEYS} keys × 2 gateways → {len(rows)} cases; draft purge slots claimed "
                f"{len(claims)} by {len({c.claimed_by for c in claims})} processes; metrics ran={ran} "
                f"skipped={skipped} failed={failed}"
            )
            assert failed == 0
            assert len(claims) >= 5
            assert claimed_before <= ran <= len(claims)  # every claimed slot ran once, in one process
            assert skipped >= ran  # the other processes found each slot taken
            # A's scrape sums both its workers: A's own share of the slots shows up whichever worker answers.
            assert _metric(scrape_a, "onewindow_http_request_duration_seconds_count", route="/api/v1/applications") > 0

        for server in servers:
            server.stop()
            assert server.traces() == []

    verified = onewindow(
        environment(ONEWINDOW_DATABASE_URL=database_url, ONEWINDOW_DATABASE_SCHEMA=schema),
        "audit",
        "verify",
        "--data-dir",
        str(host_a),
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
