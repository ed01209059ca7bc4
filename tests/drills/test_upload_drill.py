"""Upload drill: the upload directory fills up, or turns read-only, while clerks upload scans.

A small file system of the drill's own (tmpfs) is mounted on ``<data_dir>/uploads`` of the gateway (in process, on
SQLite and on PostgreSQL). Filled to the last block, an upload answers 507 problem+json; mounted read-only, 503
with ``Retry-After``. Either way the material stays as it was (no row points at a file that is not there, no
temporary file is left), and once space is freed or the mount is writable again the same gateway stores the scan.
Mounting needs root with CAP_SYS_ADMIN: elsewhere the drill skips, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.cases.tables import application_materials
from gateway.context import context_of
from gateway.intake import uploads
from tests.drills.support import assert_clean_unavailable
from tests.gateway.intake.fixtures import PDF, Gateway, gateway, shared_simulators

__all__ = ["gateway", "shared_simulators"]  # the fixtures

SCAN = PDF + b"%" + os.urandom(6000)  # two 4 KiB blocks: more than a full file system has left


@contextlib.contextmanager
def small_file_system(path: Path, *, kilobytes: int, read_only: bool = False) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={kilobytes}k,mode=0700" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "onewindow-drill", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system on the upload directory (needs root): {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _remount_writable(path: Path) -> None:
    remounted = subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True, text=True, check=False)
    assert remounted.returncode == 0, remounted.stderr


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


async def _material(gw: Gateway, application_id: str) -> tuple[str, str | None]:
    async with gw.db.read() as conn:
        row = (
            await conn.execute(
                select(application_materials.c.state, application_materials.c.file_sha256).where(
                    application_materials.c.application_id == application_id,
                    application_materials.c.key == "application_form",
                )
            )
        ).one()
    return str(row.state), row.file_sha256


async def _no_row_points_at_a_missing_file(gw: Gateway) -> None:
    async with gw.db.read() as conn:
        digests = (
            await conn.execute(
                select(application_materials.c.file_sha256).where(application_materials.c.file_sha256.is_not(None))
            )
        ).scalars()
        missing = [d for d in digests if not uploads.upload_path(gw.settings.data_dir, d).exists()]
    assert missing == []
    leftovers = [p for p in (gw.settings.data_dir / uploads.UPLOADS_DIR).rglob(f"{uploads.TEMP_PREFIX}*")]
    assert leftovers == []


async def _draft(gw: Gateway) -> str:
    citizen = gw.citizen("resident_id_card", "disability_certificate", "household_register")
    created = await gw.create(gw.body(citizen))
    assert created.status_code == 201, created.text
    application_id: str = created.json()["id"]
    return application_id


def _answer(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    return response.status_code, response.content, dict(response.headers)


async def test_a_full_upload_directory_answers_507_and_stores_nothing(gateway: Gateway) -> None:
    folder = gateway.settings.data_dir / uploads.UPLOADS_DIR
    application_id = await _draft(gateway)
    with small_file_system(folder, kilobytes=64):
        filler = _fill(folder)
        full = await gateway.upload(application_id, "application_form", SCAN)
        assert full.status_code == 507, full.text
        assert full.headers["content-type"] == "application/problem+json"
        assert full.json()["status"] == 507 and "full" in full.json()["detail"]
        assert b"Traceback" not in full.content and str(folder).encode() not in full.content
        assert await _material(gateway, application_id) == ("missing", None)
        await _no_row_points_at_a_missing_file(gateway)

        filler.unlink()  # the operator frees space: the same gateway stores the scan
        stored = await gateway.upload(application_id, "application_form", SCAN)
        assert stored.status_code == 200, stored.text
        state, digest = await _material(gateway, application_id)
        assert state == "provided" and digest is not None
        assert uploads.read(gateway.settings.data_dir, digest, cipher=context_of(gateway.app).cipher) == SCAN
        await _no_row_points_at_a_missing_file(gateway)


async def test_a_read_only_upload_directory_answers_503_and_stores_nothing(gateway: Gateway) -> None:
    folder = gateway.settings.data_dir / uploads.UPLOADS_DIR
    application_id = await _draft(gateway)
    with small_file_system(folder, kilobytes=1024, read_only=True):
        refused = await gateway.upload(application_id, "application_form", SCAN)
        assert_clean_unavailable(_answer(refused))
        assert await _material(gateway, application_id) == ("missing", None)
        await _no_row_points_at_a_missing_file(gateway)

        _remount_writable(folder)
        stored = await gateway.upload(application_id, "application_form", SCAN)
        assert stored.status_code == 200, stored.text
        assert (await _material(gateway, application_id))[0] == "provided"
        await _no_row_points_at_a_missing_file(gateway)
