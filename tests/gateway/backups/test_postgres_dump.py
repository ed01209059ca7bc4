"""The PostgreSQL backup procedure of docs/resilience.md, run: ``pg_dump --format=custom --schema=…``, the schema
lost, ``pg_restore`` — the audit chain verifies afterwards, the append-only triggers came back with it, and a
witness written before the loss still matches."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway import audit
from gateway.audit.keys import AuditSigner
from gateway.audit.witness import DirectoryWitness, seal
from gateway.settings import Settings
from tests.dbutil import drop_schema, isolated_settings, open_database
from tests.services import POSTGRES_URL, need

pytestmark = pytest.mark.postgres


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/lib/postgresql/15/bin")
    if found is None:
        pytest.skip(f"{name} is not installed (Debian package postgresql-client)")
    return found


async def _run(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await proc.communicate()
    assert proc.returncode == 0, f"{args[0]} failed: {err.decode(errors='replace')}"


async def test_pg_dump_and_pg_restore_keep_the_audit_chain_verifiable(tmp_path: Path) -> None:
    url = need(POSTGRES_URL, "PostgreSQL")
    pg_dump, pg_restore = _binary("pg_dump"), _binary("pg_restore")
    signer = AuditSigner(Ed25519PrivateKey.generate())
    witness = DirectoryWitness(tmp_path / "witness")
    async with isolated_settings(url, tmp_path / "var") as settings:
        await _fill(settings, signer, witness)
        schema = settings.database_schema
        dump = tmp_path / "onewindow.dump"
        await _run(pg_dump, "--format=custom", f"--schema={schema}", f"--file={dump}", f"--dbname={url}")
        await drop_schema(url, schema)  # the disaster
        await _run(pg_restore, "--exit-on-error", "--no-owner", f"--dbname={url}", str(dump))
        async with open_database(settings) as db:
            result = await audit.verify(db, signer.public_key, witness=witness.checkpoints())
            assert result.ok and result.records == 12 and result.witnessed == 2, result.summary()
            with pytest.raises(DBAPIError, match="append-only"):
                async with db.transaction() as conn:
                    await conn.execute(text("UPDATE audit_records SET actor = 'x' WHERE seq = 1"))


async def _fill(settings: Settings, signer: AuditSigner, witness: DirectoryWitness) -> None:
    async with open_database(settings) as db:
        for batch in (range(6), range(6, 12)):
            for i in batch:
                async with db.transaction() as conn:
                    await audit.append(conn, actor="system", action="test.done", object_type="t", object_id=str(i))
            await seal(db, signer, [witness])
