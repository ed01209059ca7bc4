"""Concurrent changes of one draft, on SQLite and PostgreSQL: acceptance, refusal, uploads and the draft purge.
Exactly one of competing changes wins and is audited once; the others answer 409 (412 with a stale
``If-Match``), or — for the purge — find nothing left to do."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import Counter

from sqlalchemy import select

from gateway import audit
from gateway.audit.tables import audit_records
from gateway.cases.tables import applications, tracking_sequences
from gateway.context import context_of
from gateway.intake.services import IntakeService
from gateway.storage import Database
from tests.gateway.intake.fixtures import ONE_CERT_ITEM, PDF, Gateway, stored_files

CONCURRENT = 20


async def complete_draft(gateway: Gateway) -> str:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    created = await gateway.create(gateway.body(citizen))
    assert created.status_code == 201, created.text
    application_id: str = created.json()["id"]
    assert (await gateway.upload(application_id, "application_form")).status_code == 200
    return application_id


def scan(i: int) -> bytes:
    """A distinct PDF per ``i``."""
    return PDF + f"% scan {i}\n".encode()


def services(gateway: Gateway, count: int) -> list[IntakeService]:
    """Intake services on ``count`` `Database` objects of their own (as many processes' connections)."""
    context = context_of(gateway.app)
    return [
        IntakeService(
            database=Database.from_settings(gateway.settings),
            catalog=context.catalog,
            calendar=context.calendar,
            cipher=context.cipher,
            settings=gateway.settings,
        )
        for _ in range(count)
    ]


async def test_concurrent_acceptances_of_one_draft_accept_it_once(gateway: Gateway) -> None:
    application_id = await complete_draft(gateway)
    responses = await asyncio.gather(*(gateway.accept(application_id) for _ in range(CONCURRENT)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: CONCURRENT - 1}, [r.text for r in responses if r.status_code not in (200, 409)]
    (accepted,) = [r.json() for r in responses if r.status_code == 200]
    view = (await gateway.get(application_id)).json()
    assert view["tracking_number"] == accepted["tracking_number"]
    assert [h["status"] for h in view["history"]] == ["draft", "accepted"]
    assert await gateway.audited("application.accepted") == 1
    async with gateway.db.read() as conn:
        assert [r.n for r in await conn.execute(select(tracking_sequences))] == [1]  # one number handed out


async def test_acceptance_and_refusal_at_once_one_wins(gateway: Gateway) -> None:
    application_id = await complete_draft(gateway)
    calls = [
        gateway.accept(application_id)
        if i % 2
        else gateway.move(application_id, "not_accepted", who="clerk", note="不属于本窗口受理范围")
        for i in range(CONCURRENT)
    ]
    responses = await asyncio.gather(*calls)
    assert Counter(r.status_code for r in responses) == {200: 1, 409: CONCURRENT - 1}
    view = (await gateway.get(application_id)).json()
    assert view["status"] in ("accepted", "not_accepted")
    assert [h["status"] for h in view["history"]] == ["draft", view["status"]]
    assert await gateway.audited("application.accepted") + await gateway.audited("status.changed") == 1


async def test_concurrent_uploads_with_one_etag_apply_once(gateway: Gateway) -> None:
    application_id = await complete_draft(gateway)
    etag = (await gateway.get(application_id)).headers["etag"]
    before = await gateway.audited("material.uploaded")
    responses = await asyncio.gather(
        *(
            gateway.upload(application_id, "guardian_id_card", scan(i), headers={"If-Match": etag})
            for i in range(CONCURRENT)
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: CONCURRENT - 1}, [r.text for r in responses if r.status_code not in (200, 412)]
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    view = (await gateway.get(application_id)).json()
    assert view["version"] == int(etag.strip('"').rsplit(".", 1)[1]) + 1
    (material,) = [m for m in view["materials"] if m["key"] == "guardian_id_card"]
    assert material["file"]["sha256"] == winner["file"]["sha256"]
    assert await gateway.audited("material.uploaded") == before + 1
    # The losers' scans are not kept: only the referenced files are on disk.
    assert stored_files(gateway.settings.data_dir / "uploads") == {
        hashlib.sha256(PDF).hexdigest(),
        winner["file"]["sha256"],
    }


async def test_concurrent_uploads_without_etag_each_replace_the_last(gateway: Gateway) -> None:
    """Without ``If-Match`` every upload applies, one after the other (the documented answer): each is audited,
    the version counts them all, and the last one's scan is the only one left on disk for the material."""
    application_id = await complete_draft(gateway)
    version = (await gateway.get(application_id)).json()["version"]
    before = await gateway.audited("material.uploaded")
    responses = await asyncio.gather(
        *(gateway.upload(application_id, "guardian_id_card", scan(i)) for i in range(CONCURRENT))
    )
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [r.text for r in responses]
    view = (await gateway.get(application_id)).json()
    assert view["version"] == version + CONCURRENT
    assert await gateway.audited("material.uploaded") == before + CONCURRENT
    (material,) = [m for m in view["materials"] if m["key"] == "guardian_id_card"]
    assert stored_files(gateway.settings.data_dir / "uploads") == {
        hashlib.sha256(PDF).hexdigest(),
        material["file"]["sha256"],
    }


async def test_purges_from_several_processes_purge_each_draft_once(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    drafts = []
    for i in range(6):
        draft = (await gateway.create(gateway.body(citizen))).json()["id"]
        assert (await gateway.upload(draft, "application_form", scan(i))).status_code == 200
        drafts.append(draft)
    purgers = services(gateway, 4)
    later = purgers[0].now() + dt.timedelta(hours=gateway.settings.draft_retention_hours + 1)
    try:
        results = await asyncio.gather(
            *(purgers[i % len(purgers)].purge_drafts(now=later, file_grace_seconds=0) for i in range(8))
        )
    finally:
        for service in purgers:
            await service.db.dispose()
    assert sum(r.drafts for r in results) == len(drafts)
    # Each scan deleted once: as a purged draft's, or by another purge's sweep as an orphan (grace 0 here).
    assert sum(r.files + r.orphans for r in results) == len(drafts)
    assert await gateway.audited("application.drafts_purged") == 1
    assert stored_files(gateway.settings.data_dir / "uploads") == set()
    for draft in drafts:
        assert (await gateway.get(draft)).status_code == 404


async def test_a_draft_accepted_while_being_purged_is_either_accepted_or_purged(gateway: Gateway) -> None:
    """An acceptance racing the purge: the case is accepted and kept, or purged and the acceptance answers 404 —
    never accepted and then deleted."""
    drafts = [await complete_draft(gateway) for _ in range(4)]
    (purger,) = services(gateway, 1)
    later = purger.now() + dt.timedelta(hours=gateway.settings.draft_retention_hours + 1)
    try:
        accepting = asyncio.gather(*(gateway.accept(d) for d in drafts))
        purge, accepts = await asyncio.gather(purger.purge_drafts(now=later, file_grace_seconds=0), accepting)
    finally:
        await purger.db.dispose()
    async with gateway.db.read() as conn:
        left = {r.id: r.status for r in await conn.execute(select(applications.c.id, applications.c.status))}
    for draft, response in zip(drafts, accepts, strict=True):
        if response.status_code == 200:
            assert left.get(draft) == "accepted"
        else:
            assert response.status_code == 404, response.text
            assert draft not in left
    assert purge.drafts == sum(1 for r in accepts if r.status_code == 404)
    # What is left on disk is what the accepted cases reference (they share one scan).
    expected = {hashlib.sha256(PDF).hexdigest()} if left else set()
    assert stored_files(gateway.settings.data_dir / "uploads") == expected


async def test_concurrent_filings_accepted_at_once_keep_the_audit_chain_whole(gateway: Gateway) -> None:
    """Create + accept in one call, many at once: each case gets its own number (gap-free), its audit records are
    written together at its commit (filed, then accepted, next to each other), and the chain verifies."""
    citizen = gateway.citizen("resident_id_card")
    responses = await asyncio.gather(
        *(gateway.create(gateway.body(citizen, item=ONE_CERT_ITEM, accept=True)) for _ in range(CONCURRENT))
    )
    assert [r.status_code for r in responses] == [201] * CONCURRENT, [r.text for r in responses]
    numbers = sorted(int(r.json()["tracking_number"][14:20]) for r in responses)
    assert numbers == list(range(1, CONCURRENT + 1))
    async with gateway.db.read() as conn:
        rows = (
            await conn.execute(
                select(audit_records.c.seq, audit_records.c.action, audit_records.c.object_id).where(
                    audit_records.c.action.in_(("application.created", "application.accepted"))
                )
            )
        ).all()
    seqs = {(r.object_id, r.action): r.seq for r in rows}
    for response in responses:
        case = response.json()["id"]
        assert seqs[(case, "application.accepted")] == seqs[(case, "application.created")] + 1
    result = await audit.verify(gateway.db, [context_of(gateway.app).audit_signer.public_key])
    assert result.ok, result.summary()
