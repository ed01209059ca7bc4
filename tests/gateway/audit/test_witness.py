"""Witnessed checkpoints on SQLite and PostgreSQL: copies written outside the database, append-only, caught up
after a failure, and the check that finds the last records deleted together with their checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete

from gateway import audit
from gateway.audit.keys import AuditSigner
from gateway.audit.tables import audit_checkpoints, audit_records
from gateway.audit.witness import DirectoryWitness, WitnessError, publish_missing, seal, witnesses_from_settings
from gateway.settings import Settings
from gateway.storage import Database
from tests.gateway.audit.test_log import _append, _drop_triggers


@pytest.fixture
def signer() -> AuditSigner:
    return AuditSigner(Ed25519PrivateKey.generate())


async def test_each_checkpoint_is_written_once_to_the_witness_directory(
    database: Database, signer: AuditSigner, tmp_path: Path
) -> None:
    witness = DirectoryWitness(tmp_path / "witness")
    await _append(database, 3)
    first = await seal(database, signer, [witness])
    await _append(database, 2, start=3)
    second = await seal(database, signer, [witness])
    assert first is not None and second is not None
    assert sorted(p.name for p in witness.path.iterdir()) == [f"{3:020d}.json", f"{5:020d}.json"]
    assert witness.checkpoints() == [first, second]

    # Append-only: a checkpoint already held is never replaced, even by a different one for the same seq.
    before = witness.file_of(5).read_bytes()
    forged = msgspec.structs.replace(second, hash="f" * 64)
    assert witness.publish(forged) is False
    assert witness.file_of(5).read_bytes() == before

    result = await audit.verify(database, signer.public_key, witness=witness.checkpoints())
    assert result.ok and result.witnessed == 2, result.summary()
    assert result.summary().endswith("2 witnessed checkpoints match")


async def test_deleting_the_tail_with_its_checkpoint_is_found_only_through_the_witness(
    database: Database, signer: AuditSigner, tmp_path: Path
) -> None:
    witness = DirectoryWitness(tmp_path / "witness")
    await _append(database, 6)
    await seal(database, signer, [witness])
    await _append(database, 4, start=6)
    await seal(database, signer, [witness])
    await _drop_triggers(database)
    async with database.transaction() as conn:  # a DBA removes records #8..#10 and the checkpoint at #10
        await conn.execute(delete(audit_records).where(audit_records.c.seq >= 8))
        await conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq == 10))

    alone = await audit.verify(database, signer.public_key)
    assert alone.ok, "without the witness the shorter chain still verifies: that is why the witness exists"
    result = await audit.verify(database, signer.public_key, witness=witness.checkpoints())
    assert not result.ok
    assert result.broken_seq == 8
    assert result.reason is not None and "#8..#10 are missing" in result.reason and "witness" in result.reason


async def test_a_checkpoint_removed_or_changed_in_the_database_is_named(
    database: Database, signer: AuditSigner, tmp_path: Path
) -> None:
    witness = DirectoryWitness(tmp_path / "witness")
    await _append(database, 4)
    await seal(database, signer, [witness])
    await _append(database, 4, start=4)
    await seal(database, signer, [witness])
    await _drop_triggers(database)
    async with database.transaction() as conn:
        await conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq == 4))
    result = await audit.verify(database, signer.public_key, witness=witness.checkpoints())
    assert not result.ok and result.broken_seq == 4
    assert result.reason is not None and "missing from the database" in result.reason

    # A witness file that was not signed by the audit key is named too.
    other = AuditSigner(Ed25519PrivateKey.generate())
    fake = DirectoryWitness(tmp_path / "fake")
    async with database.read() as conn:
        cp = await audit.last_checkpoint(conn)
    assert cp is not None
    forged_sig = other.sign(b"anything").hex()
    fake.publish(msgspec.structs.replace(cp, signature=forged_sig))
    forged = await audit.verify(database, signer.public_key, witness=fake.checkpoints())
    assert not forged.ok and forged.broken_seq == 8
    assert forged.reason is not None and "witness's checkpoint at #8 has an invalid signature" in forged.reason


async def test_a_witness_that_was_unreachable_is_caught_up(
    database: Database, signer: AuditSigner, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the witness directory should be")
    witness = DirectoryWitness(blocked)
    await _append(database, 2)
    cp = await seal(database, signer, [witness])  # the witness fails; the checkpoint commits all the same
    assert cp is not None
    with pytest.raises(WitnessError, match="not-a-dir"):
        witness.publish(cp)
    async with database.read() as conn:
        assert await audit.last_checkpoint(conn) == cp

    blocked.unlink()
    assert await publish_missing(database, [witness]) == 1
    assert witness.checkpoints() == [cp]
    assert await publish_missing(database, [witness]) == 0


def test_the_witness_comes_from_the_settings(tmp_path: Path) -> None:
    assert witnesses_from_settings(Settings(data_dir=tmp_path)) == []
    (configured,) = witnesses_from_settings(Settings(data_dir=tmp_path, audit_witness_dir=tmp_path / "w"))
    assert isinstance(configured, DirectoryWitness) and configured.path == tmp_path / "w"


def test_unreadable_witness_files_are_reported(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path)
    (tmp_path / f"{7:020d}.json").write_bytes(b"{not json")
    with pytest.raises(WitnessError, match="unreadable"):
        witness.checkpoints()
    os.remove(tmp_path / f"{7:020d}.json")
    (tmp_path / "notes.txt").write_text("ignored")
    assert witness.checkpoints() == []
