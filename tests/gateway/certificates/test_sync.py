"""Bulk sync from the simulators into the store over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from connectors.client import ConnectorPool
from connectors.registry import load_trust
from connectors.sync import sync_all, sync_department
from demokit.simulators import Simulators
from gateway import audit
from gateway.certificates.store import CertificateStore
from gateway.certificates.tables import certificate_rejections, certificates
from gateway.settings import Settings

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def expected(settings: Settings, sims: Simulators) -> tuple[Counter[str], Counter[str]]:
    """Per department: how many of the simulators' certificates verify (stored), how many do not (rejected)."""
    trust = load_trust(settings.config_dir)
    today = dt.datetime.now(SHANGHAI).date()
    valid: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    for code in sims.departments:
        for entry in sims.store(code).entries:
            ok = trust.verify(entry.certificate, today=today, department=code).ok
            (valid if ok else invalid)[code] += 1
    return valid, invalid


async def stored_by_department(store: CertificateStore) -> Counter[str]:
    async with store.db.read() as conn:
        rows = await conn.execute(
            select(certificates.c.department, func.count())
            .where(certificates.c.verification_status == "valid")
            .group_by(certificates.c.department)
        )
        return Counter({str(code): int(n) for code, n in rows})


async def sim_post(url: str, path: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(url + path, ssl=False) as response:
        assert response.status == 200, await response.text()


async def test_full_sync_stores_what_the_departments_hold(
    db_settings: Settings, sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    valid, invalid = expected(db_settings, sims)
    assert all(valid[code] > 0 for code in sims.departments if code != "veterans")
    reports = await sync_all(pool, store, full=True)
    by_code = {r.code: r for r in reports}
    for code, held in sims.certificate_counts().items():
        report = by_code[code]
        assert report.errors == []
        assert report.fetched == held
        assert (report.stored, report.rejected) == (valid[code], invalid[code])
    assert await stored_by_department(store) == +valid
    async with store.db.read() as conn:
        rejections = (await conn.execute(select(func.count()).select_from(certificate_rejections))).scalar_one()
        records = await audit.records(conn, limit=1000)
    assert rejections == sum(invalid.values())
    # One audit record per page, never one per certificate.
    assert {r.action for r in records} == {"certificates.synced"}
    assert len(records) == sum(r.pages for r in reports if r.fetched)


async def test_incremental_sync_fetches_only_changes(
    sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    await sync_all(pool, store, full=True)
    quiet = await sync_all(pool, store)
    assert [r.fetched for r in quiet] == [0] * len(quiet)
    await sim_post(sims.url("public_security"), "/__sim__/touch?count=5")
    await sim_post(sims.url("civil_affairs"), "/__sim__/touch?count=2")
    reports = {r.code: r for r in await sync_all(pool, store)}
    assert reports["public_security"].fetched == 5
    assert reports["civil_affairs"].fetched == 2
    assert all(r.fetched == 0 for code, r in reports.items() if code not in ("public_security", "civil_affairs"))


async def test_tampered_certificates_are_rejected(
    sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    sims.set_faults("public_security", "tampered=1")
    report = await sync_department(pool, "public_security", store, full=True)
    assert report.fetched > 0 and report.stored == 0
    assert report.rejected == report.fetched and report.rejections["bad_signature"] > 0
    async with store.db.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(certificates))).scalar_one()
        statuses = Counter(str(s) for s in (await conn.execute(select(certificate_rejections.c.status))).scalars())
    assert stored == 0
    assert statuses["bad_signature"] > 0 and sum(statuses.values()) == report.fetched


async def test_revocation_marks_stored_certificates_revoked(
    sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    first = await sync_department(pool, "human_resources", store, full=True)
    assert first.stored > 0
    sims.set_faults("human_resources", "revoked=1")
    again = await sync_department(pool, "human_resources", store, full=True)
    assert again.stored == 0 and again.rejections.get("revoked", 0) > 0
    async with store.db.read() as conn:
        statuses = Counter(
            str(s)
            for s in (
                await conn.execute(
                    select(certificates.c.verification_status).where(certificates.c.department == "human_resources")
                )
            ).scalars()
        )
    assert statuses == Counter({"revoked": first.stored})


async def test_revoke_one_then_incremental_sync_withdraws_it(
    sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    await sync_department(pool, "veterans", store, full=True)
    await sync_department(pool, "public_security", store, full=True)
    async with store.db.read() as conn:
        identifier = (
            await conn.execute(
                select(certificates.c.identifier).where(certificates.c.department == "public_security").limit(1)
            )
        ).scalar_one()
    await sim_post(sims.url("public_security"), f"/__sim__/revoke?identifier={identifier}")
    report = await sync_department(pool, "public_security", store)
    assert report.fetched == 1 and report.rejections == {"revoked": 1}
    async with store.db.read() as conn:
        row = (await conn.execute(select(certificates).where(certificates.c.identifier == identifier))).one()
    assert (row.status, row.verification_status) == ("03", "revoked")


async def test_no_plaintext_personal_data_in_the_sqlite_file(
    db_settings: Settings, sims: Simulators, pool: ConnectorPool, store: CertificateStore
) -> None:
    if not db_settings.is_sqlite:
        pytest.skip("reads the SQLite file's raw bytes")
    await sync_all(pool, store, full=True)
    await store.db.dispose()  # closes the connections: the WAL is checkpointed into the main file
    database_file = Path(db_settings.sqlalchemy_url.split(":///", 1)[1])
    files = [p for p in database_file.parent.glob(database_file.name + "*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    assert len(raw) > 100_000
    citizens = [c for c in sims.citizens if c.certificates and len(c.name) >= 2][:20]
    assert citizens
    # The scan does see the stored rows: identifiers (not personal data) are there in plaintext.
    assert citizens[0].certificates[0].identifier.encode() in raw
    for citizen in citizens:
        assert citizen.id_number.encode() not in raw, "an ID number is stored in plaintext"
        assert citizen.name.encode("utf-8") not in raw, "a name is stored in plaintext"
