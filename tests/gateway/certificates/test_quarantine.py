"""Quarantined department records and each department's sync quality in the store, on SQLite and PostgreSQL;
the "department_records" readiness check over them."""

from __future__ import annotations

import aiohttp
from sqlalchemy import select

from connectors.client import ConnectorPool
from connectors.sync import sync_department
from demokit.simulators import Simulators
from gateway import audit
from gateway.certificates.quarantine import mask_identifier, qualities, rejections
from gateway.certificates.runtime import records_check
from gateway.certificates.store import CertificateStore
from gateway.certificates.tables import certificates, record_rejections

CODE = "natural_resources"


async def corrupt(sims: Simulators, body: dict[str, object]) -> None:
    async with aiohttp.ClientSession() as http, http.post(sims.url(CODE) + "/__sim__/corrupt", json=body) as response:
        assert response.status == 200, await response.text()


async def test_a_bad_record_is_stored_as_a_rejection_and_its_page_is_stored(
    sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    entries = sims.store(CODE).entries
    bad = entries[1].certificate
    await corrupt(sims, {"identifier": bad.identifier, "fields": {"qlrzjhm": 430302, "fzrq": "二〇二四年"}})
    check = records_check(store.db, [CODE, "veterans"])
    assert (await check()).ok  # nothing synced yet: nothing degraded

    report = await sync_department(pool, CODE, store)
    assert report.errors == [] and report.quarantined == 1 and report.stored == len(entries) - 1
    async with store.db.read() as conn:
        stored = set((await conn.execute(select(certificates.c.identifier))).scalars())
        rows = [dict(r._mapping) for r in await conn.execute(select(record_rejections))]
        (synced,) = [r for r in await audit.records(conn, limit=50) if r.action == "certificates.synced"]
    assert bad.identifier not in stored and len(stored) == len(entries) - 1
    (row,) = rows
    assert (row["department"], row["page"], row["position"], row["identifier"]) == (CODE, 1, 1, bad.identifier)
    assert (row["field"], row["source"], row["rule"]) == ("issue_date", "fzrq", "date[yyyy年M月d日|yyyy-MM-dd]")
    assert row["value_kind"] == "text(5)"
    assert "二〇二四年" not in str(rows) and bad.holder_code not in str(rows)  # where and why, never the value
    assert synced.detail["quarantined"] == 1  # in the page's transaction, with its audit record

    quality = (await qualities(store.db))[CODE]
    assert (quality.received, quality.quarantined, quality.degraded) == (len(entries), 1, True)  # > 2 %
    listed = await rejections(store.db, CODE)
    assert [r.field for r in listed] == ["issue_date"] and await rejections(store.db, "veterans") == []
    result = await check()
    assert not result.ok and not result.critical
    assert result.detail.startswith(f"degraded: {CODE} (") and "quarantined" in result.detail

    # The department fixes its record: the next run that receives records is healthy again.
    await corrupt(sims, {})
    again = await sync_department(pool, CODE, store, full=True)
    assert again.quarantined == 0 and not again.degraded
    assert not (await qualities(store.db))[CODE].degraded and (await check()).ok
    # An incremental run that finds nothing keeps the last verdict rather than erasing it.
    await sync_department(pool, CODE, store)
    assert (await qualities(store.db))[CODE].received == len(entries)


def test_listed_identifiers_are_masked_unless_they_are_certificate_identifiers() -> None:
    identifier = "1.2.156.3005.2.1110000078603166X8001.1143030262199432C0.20160000009.001.Q"
    assert mask_identifier(identifier) == identifier
    assert mask_identifier("430302199001011234") == "…"
    assert mask_identifier("No.43030219900101123X-a") == "No.…-a"
