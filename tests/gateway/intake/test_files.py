"""Stored scans live while a material references them: replaced scans and purged drafts' scans are deleted once
the change commits (a file another material shares stays), and the sweep deletes orphans past a grace period —
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import time
from pathlib import Path

from sqlalchemy import update

from gateway.cases.tables import application_materials, applications
from gateway.context import context_of
from gateway.intake import files, uploads
from gateway.intake.deps import provide_intake
from gateway.storage import Database
from tests.gateway.intake.fixtures import JPEG, PDF, PNG, Gateway, stored_files


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


async def referenced(gateway: Gateway) -> set[str]:
    async with gateway.db.read() as conn:
        rows = await conn.execute(
            application_materials.select().where(application_materials.c.file_sha256.is_not(None))
        )
        return {r.file_sha256 for r in rows}


async def draft(gateway: Gateway) -> str:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    response = await gateway.create(gateway.body(citizen))
    assert response.status_code == 201, response.text
    application_id: str = response.json()["id"]
    return application_id


async def test_repeated_uploads_leave_exactly_the_referenced_files(gateway: Gateway) -> None:
    application_id = await draft(gateway)
    scans = [PDF + f"% version {i}\n".encode() for i in range(4)]
    for content in [*scans, PNG, JPEG]:
        assert (await gateway.upload(application_id, "application_form", content)).status_code == 200
        assert (await gateway.upload(application_id, "guardian_id_card", content)).status_code == 200
    for content in scans[:2]:
        assert (await gateway.upload(application_id, "guardian_id_card", content)).status_code == 200
    on_disk = stored_files(gateway.settings.data_dir / "uploads")
    assert on_disk == await referenced(gateway) == {sha(JPEG), sha(scans[1])}
    # Uploading the scan a material already has keeps it.
    assert (await gateway.upload(application_id, "application_form", JPEG)).status_code == 200
    assert stored_files(gateway.settings.data_dir / "uploads") == {sha(JPEG), sha(scans[1])}


async def test_a_file_shared_by_two_materials_survives_replacing_one(gateway: Gateway) -> None:
    first, second = await draft(gateway), await draft(gateway)
    assert (await gateway.upload(first, "application_form", PDF)).status_code == 200
    assert (await gateway.upload(second, "application_form", PDF)).status_code == 200
    assert (await gateway.upload(first, "guardian_id_card", PDF)).status_code == 200
    uploads_dir = gateway.settings.data_dir / "uploads"
    # Replaced in one material: two still reference it.
    assert (await gateway.upload(first, "application_form", PNG)).status_code == 200
    assert stored_files(uploads_dir) == {sha(PDF), sha(PNG)}
    assert (await gateway.upload(first, "guardian_id_card", JPEG)).status_code == 200
    assert stored_files(uploads_dir) == {sha(PDF), sha(PNG), sha(JPEG)}
    assert uploads.read(gateway.settings.data_dir, sha(PDF), cipher=context_of(gateway.app).cipher) == PDF
    # The last reference replaced: gone.
    assert (await gateway.upload(second, "application_form", PNG)).status_code == 200
    assert stored_files(uploads_dir) == {sha(PNG), sha(JPEG)}


async def test_purged_drafts_scans_are_deleted_without_waiting_for_the_grace(gateway: Gateway) -> None:
    expired, kept = await draft(gateway), await draft(gateway)
    assert (await gateway.upload(expired, "application_form", JPEG)).status_code == 200
    assert (await gateway.upload(expired, "guardian_id_card", PDF)).status_code == 200
    assert (await gateway.upload(kept, "application_form", PDF)).status_code == 200
    service = provide_intake(context_of(gateway.app))
    # The first draft was last touched before the retention time; its scans were just written (younger than the
    # sweep's grace), which does not keep them once no row references them.
    long_ago = service.now() - dt.timedelta(hours=gateway.settings.draft_retention_hours + 1)
    async with gateway.db.transaction() as conn:
        await conn.execute(update(applications).where(applications.c.id == expired).values(updated_at=long_ago))
    result = await service.purge_drafts()
    assert (result.drafts, result.files, result.orphans) == (1, 1, 0)
    assert (await gateway.get(expired)).status_code == 404
    assert stored_files(gateway.settings.data_dir / "uploads") == {sha(PDF)}  # the kept draft's scan


async def test_the_sweep_deletes_old_orphans_and_keeps_young_ones(gateway: Gateway) -> None:
    data_dir = gateway.settings.data_dir
    application_id = await draft(gateway)
    assert (await gateway.upload(application_id, "application_form", PDF)).status_code == 200
    old_orphan, _ = uploads.store(data_dir, PNG, cipher=context_of(gateway.app).cipher)
    young_orphan, _ = uploads.store(data_dir, JPEG, cipher=context_of(gateway.app).cipher)
    grace = 600.0
    age(uploads.upload_path(data_dir, old_orphan), grace + 60)
    age(uploads.upload_path(data_dir, sha(PDF)), grace + 60)  # old, but referenced
    leftover = uploads.upload_path(data_dir, young_orphan).parent / f"{uploads.TEMP_PREFIX}crashed"
    leftover.write_bytes(b"half a scan")
    age(leftover, grace + 60)
    stranger = data_dir / "uploads" / "README"
    stranger.write_text("not ours")
    age(stranger, grace + 60)
    result = await provide_intake(context_of(gateway.app)).purge_drafts(file_grace_seconds=grace)
    assert (result.drafts, result.files, result.orphans) == (0, 0, 1)
    assert stored_files(data_dir / "uploads") == {sha(PDF), young_orphan, "README"}
    assert not leftover.exists()
    # Once old enough, the young orphan goes too.
    age(uploads.upload_path(data_dir, young_orphan), grace + 60)
    assert await files.sweep(gateway.db, data_dir, grace_seconds=grace) == 1
    assert stored_files(data_dir / "uploads") == {sha(PDF), "README"}


async def test_an_upload_rewrites_its_file_when_a_deletion_came_first(gateway: Gateway) -> None:
    """`hold`, in the referencing transaction, brings back a file deleted between storing and committing."""
    data_dir = gateway.settings.data_dir
    digest, created = uploads.store(data_dir, PNG, cipher=context_of(gateway.app).cipher)
    assert created
    assert await files.discard(gateway.db, data_dir, [digest]) == 1  # unreferenced: deleted
    async with gateway.db.transaction() as conn:
        assert await files.hold(conn, data_dir, digest, PNG, context_of(gateway.app).cipher) is True
        assert await files.hold(conn, data_dir, digest, PNG, context_of(gateway.app).cipher) is False
    assert uploads.read(data_dir, digest, cipher=context_of(gateway.app).cipher) == PNG


async def test_a_deletion_waits_for_the_upload_holding_the_file(gateway: Gateway) -> None:
    """A deletion from another process while an upload holds the file waits for it, then finds the reference."""
    data_dir = gateway.settings.data_dir
    application_id = await draft(gateway)
    digest, _ = uploads.store(data_dir, PNG, cipher=context_of(gateway.app).cipher)
    other = Database.from_settings(gateway.settings)
    try:
        async with gateway.db.transaction() as conn:
            await files.hold(conn, data_dir, digest, PNG, context_of(gateway.app).cipher)
            await conn.execute(
                update(application_materials)
                .where(
                    application_materials.c.application_id == application_id,
                    application_materials.c.key == "application_form",
                )
                .values(file_sha256=digest, state="provided")
            )
            deletion = asyncio.create_task(files.discard(other, data_dir, [digest]))
            await asyncio.sleep(0.3)
            assert not deletion.done()
        assert await deletion == 0
    finally:
        await other.dispose()
    assert uploads.upload_path(data_dir, digest).exists()
