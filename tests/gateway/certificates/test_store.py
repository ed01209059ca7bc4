"""The certificate store over a real database (SQLite and PostgreSQL): upsert, rejections, withdrawals, cursors."""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
import pytest
from msgspec.structs import replace
from sqlalchemy import func, select

from connectors.model import Certificate, FetchedCertificate
from connectors.trust import TrustStore, sign_as_department
from demokit.simulators.seed import Population, generate_population
from gateway import audit
from gateway.audit.tables import audit_records
from gateway.certificates.store import CertificateStore, display_number
from gateway.certificates.tables import certificate_rejections, certificates, sync_cursors
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.storage import Database, utcnow

AS_OF = dt.date(2026, 1, 5)
TRUST = TrustStore.demo()


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(7, 40, as_of=AS_OF)


@pytest.fixture
def store(database: Database) -> CertificateStore:
    return CertificateStore(database, FieldCipher(KeyRing.generate()))


def fetched(certificate: Certificate, department: str, *, at: dt.datetime | None = None) -> FetchedCertificate:
    return FetchedCertificate(
        certificate=certificate,
        source_department=department,
        fetched_at=utcnow(),
        verification=TRUST.verify(certificate, today=AS_OF, department=department),
        source_updated_at=at or dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
    )


def batch_of(population: Population, department: str) -> list[FetchedCertificate]:
    """The department's certificates that verify (the sample population also holds revoked and expired ones)."""
    batch = [fetched(s.certificate, department, at=s.updated_at) for s in population.by_department(department)]
    return [f for f in batch if f.verification.ok]


async def count(db: Database, table: object, *where: object) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())  # type: ignore[arg-type]


async def test_valid_batch_is_stored_once_and_upserted(store: CertificateStore, population: Population) -> None:
    batch = batch_of(population, "public_security")
    assert batch and all(f.verification.ok for f in batch)
    counts = await store.accept(batch)
    assert (counts.stored, counts.rejected) == (len(batch), 0)
    again = await store.accept(batch)
    assert again.stored == len(batch)
    assert await count(store.db, certificates) == len(batch)
    async with store.db.read() as conn:
        records = await audit.records(conn)
    assert [r.action for r in records] == ["certificates.synced", "certificates.synced"]
    assert records[0].detail["stored"] == len(batch)


async def test_stored_certificate_reads_back_whole(store: CertificateStore, population: Population) -> None:
    batch = batch_of(population, "civil_affairs")
    await store.accept(batch)
    original = batch[0].certificate
    async with store.db.read() as conn:
        back = await store.certificate(conn, original.identifier)
        rows = await store.holder_certificates(conn, store.holder(original.holder_code), [original.type_key])
    assert back == original
    assert TRUST.verify(back, today=AS_OF).ok  # the stored payload still carries a verifiable signature
    mine = [r for r in rows if r.identifier == original.identifier]
    assert len(mine) == 1 and store.holder_name(mine[0].id, mine[0].holder_name_enc) == original.holder_name


async def test_tampered_certificate_is_rejected_not_stored(store: CertificateStore, population: Population) -> None:
    good = batch_of(population, "civil_affairs")[0].certificate
    tampered = msgspec.structs.replace(good, holder_name=good.holder_name + "伪")
    counts = await store.accept([fetched(tampered, "civil_affairs")])
    assert (counts.stored, counts.rejected) == (0, 1)
    assert await count(store.db, certificates) == 0
    async with store.db.read() as conn:
        row = (await conn.execute(select(certificate_rejections))).one()
    assert row.status == "bad_signature" and row.identifier == good.identifier
    assert good.holder_name not in row.reason and good.holder_code not in row.reason


async def test_revocation_withdraws_stored_copy_but_forgery_cannot(
    store: CertificateStore, population: Population
) -> None:
    first = batch_of(population, "public_security")[0]
    await store.accept([first])
    forged = msgspec.structs.replace(first.certificate, status="03")  # not re-signed
    counts = await store.accept([fetched(forged, "public_security", at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC))])
    assert (counts.rejected, counts.withdrawn) == (1, 0)
    async with store.db.read() as conn:
        assert (await conn.execute(select(certificates.c.verification_status))).scalar_one() == "valid"
    revoked = sign_as_department(forged, "public_security")
    counts = await store.accept([fetched(revoked, "public_security", at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC))])
    assert (counts.stored, counts.rejected, counts.withdrawn) == (0, 1, 1)
    async with store.db.read() as conn:
        row = (await conn.execute(select(certificates))).one()
        reasons = [r.status for r in await conn.execute(select(certificate_rejections).order_by("at"))]
    assert (row.status, row.verification_status) == ("03", "revoked")
    assert reasons == ["bad_signature", "revoked"]


async def test_revoked_never_seen_before_is_only_a_rejection(store: CertificateStore, population: Population) -> None:
    cert = sign_as_department(
        msgspec.structs.replace(batch_of(population, "health")[0].certificate, status="03"), "health"
    )
    counts = await store.accept([fetched(cert, "health")])
    assert (counts.stored, counts.rejected, counts.withdrawn) == (0, 1, 0)
    assert await count(store.db, certificates) == 0


async def test_older_copy_never_overwrites_newer(store: CertificateStore, population: Population) -> None:
    first = batch_of(population, "public_security")[0]
    newer = msgspec.structs.replace(first, source_updated_at=dt.datetime(2025, 9, 1, tzinfo=dt.UTC))
    await store.accept([newer])
    counts = await store.accept([first])  # source_updated_at 2025-06-01 or the seeded one: older
    assert counts.unchanged == 1 and counts.stored == 0
    async with store.db.read() as conn:
        at = (await conn.execute(select(certificates.c.source_updated_at))).scalar_one()
    assert at == dt.datetime(2025, 9, 1, tzinfo=dt.UTC)


async def test_concurrent_syncs_from_several_processes_keep_the_newest(
    db_settings: Settings, store: CertificateStore, population: Population
) -> None:
    """Copies of one certificate from several processes at once, in any order: the newest at the source wins —
    here the issuer's revocation — and every batch is audited (each is a sync of its own)."""
    first = batch_of(population, "public_security")[0]
    await store.accept([first])
    base = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    copies = [msgspec.structs.replace(first, source_updated_at=base + dt.timedelta(days=i)) for i in range(18)]
    revoked = sign_as_department(msgspec.structs.replace(first.certificate, status="03"), "public_security")
    copies.insert(7, fetched(revoked, "public_security", at=base + dt.timedelta(days=30)))
    others = [Database.from_settings(db_settings) for _ in range(3)]
    stores = [store, *(CertificateStore(db, store.cipher) for db in others)]
    try:
        await asyncio.gather(*(stores[i % len(stores)].accept([c]) for i, c in enumerate(reversed(copies))))
    finally:
        for db in others:
            await db.dispose()
    async with store.db.read() as conn:
        row = (await conn.execute(select(certificates))).one()
    assert (row.status, row.verification_status) == ("03", "revoked")
    assert row.source_updated_at == base + dt.timedelta(days=30)
    assert await count(store.db, audit_records, audit_records.c.action == "certificates.synced") == len(copies) + 1


async def test_duplicate_identifiers_in_one_batch(store: CertificateStore, population: Population) -> None:
    first = batch_of(population, "public_security")[0]
    counts = await store.accept([first, first])
    assert counts.stored == 1
    assert await count(store.db, certificates) == 1


async def test_cursor_round_trip(store: CertificateStore) -> None:
    assert await store.cursor("public_security") is None
    when = dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    await store.save_cursor("public_security", when)
    await store.save_cursor("public_security", when + dt.timedelta(minutes=1))
    assert await store.cursor("public_security") == (when + dt.timedelta(minutes=1)).isoformat()
    assert await count(store.db, sync_cursors) == 1
    await store.reset_cursor("public_security")
    assert await store.cursor("public_security") is None


async def test_no_plaintext_personal_data_in_rows(store: CertificateStore, population: Population) -> None:
    batch = [f for code in ("public_security", "civil_affairs") for f in batch_of(population, code)]
    await store.accept(batch)
    async with store.db.read() as conn:
        rows = [tuple(str(v) for v in r) for r in await conn.execute(select(certificates))]
        audit_rows = [str(tuple(r)) for r in await conn.execute(select(audit_records))]
    text = "\n".join("|".join(r) for r in rows) + "\n".join(audit_rows)
    for f in batch:
        assert f.certificate.holder_code not in text
        assert f.certificate.holder_name not in text


def test_display_number_masks_embedded_id_numbers() -> None:
    base = Certificate(
        identifier="x",
        number="430302198001011234",
        type_key="resident_id_card",
        type_code="1110000034147425UL001",
        name="居民身份证",
        holder_name="张三",
        holder_code="430302198001011234",
        holder_code_type="111",
        issuer_name="湘潭市公安局雨湖分局",
        issuer_code="1143030225095009BR",
        issue_date=dt.date(2020, 1, 1),
        valid_from=dt.date(2020, 1, 1),
    )
    assert display_number(base) == "430302********1234"
    assert display_number(msgspec.structs.replace(base, number="43030219800101123441")) == "430302********123441"
    assert display_number(msgspec.structs.replace(base, number="HJ-0001")) == "HJ-0001"


async def test_one_page_of_upserts_withdrawals_and_rejections(store: CertificateStore, population: Population) -> None:
    """Many rows of each kind in one accept (each kind one executemany of its statement, converted before the
    transaction opens), every row as sealed: the holder fields read back, bound to their row."""
    batch = batch_of(population, "public_security")[:8]
    assert len(batch) == 8
    first = await store.accept(batch)
    assert (first.stored, first.rejected, first.withdrawn) == (8, 0, 0)
    later = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)  # after every seeded change time
    revoked = [
        fetched(sign_as_department(replace(f.certificate, status="03"), "public_security"), "public_security", at=later)
        for f in batch[:3]
    ]
    forged = [fetched(replace(f.certificate, status="03"), "public_security", at=later) for f in batch[3:5]]
    refreshed = [replace(f, source_updated_at=later) for f in batch[5:7]]
    stale = replace(batch[7], source_updated_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    counts = await store.accept([*revoked, *forged, *refreshed, stale])
    assert counts.rejected == 5
    if store.db.dialect == "sqlite":
        assert (counts.stored, counts.unchanged, counts.withdrawn) == (2, 1, 3)
    else:  # asyncpg does not count an executemany's rows: every upsert is reported stored
        assert (counts.stored, counts.unchanged) == (3, 0)
    async with store.db.read() as conn:
        rows = {r.identifier: r for r in await conn.execute(select(certificates))}
        rejections = sorted(r.status for r in await conn.execute(select(certificate_rejections)))
    for f in batch:
        row = rows[f.certificate.identifier]
        code = store.cipher.decrypt(row.holder_code_enc, table="certificates", column="holder_code_enc", row_id=row.id)
        assert code == f.certificate.holder_code
        assert store.holder_name(row.id, row.holder_name_enc) == f.certificate.holder_name
    assert rejections == ["bad_signature", "bad_signature", "revoked", "revoked", "revoked"]
    assert [rows[f.certificate.identifier].verification_status for f in batch] == ["revoked"] * 3 + ["valid"] * 5
    changed = [rows[f.certificate.identifier].source_updated_at for f in batch]
    assert changed[:3] + changed[5:7] == [later] * 5
    assert changed[3:5] == [f.source_updated_at for f in batch[3:5]] and changed[7] == batch[7].source_updated_at


async def test_first_copies_of_new_certificates_written_at_once_never_collide(
    db_settings: Settings, store: CertificateStore, population: Population
) -> None:
    """Several transactions storing the same certificate for the first time at once (two clerks filing for one
    citizen, a sync beside a lookup). On PostgreSQL, with a unique index beside the upsert's conflict target, an
    insert whose conflict check ran before the other's row existed met it in that other index — a unique violation
    instead of the update (certificates_0003 leaves the primary key the only one). Every writer must succeed and
    one row per certificate remain."""
    batch = batch_of(population, "public_security")[:40]
    others = [Database.from_settings(db_settings) for _ in range(7)]
    stores = [store, *(CertificateStore(db, store.cipher) for db in others)]
    try:
        for certificate in batch:
            results = await asyncio.gather(*(s.accept([certificate]) for s in stores), return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
    finally:
        for db in others:
            await db.dispose()
    assert await count(store.db, certificates) == len(batch)
