"""Audit tamper drill: a database administrator drops the append-only triggers and edits, deletes, inserts,
reorders or truncates the audit log directly in the database — on SQLite and on PostgreSQL.

Each tampering runs on a fresh log of 30 records with signed checkpoints at #10, #20 and #30, every one also
written to a witness directory outside the database. `gateway.audit.verify` with the witness — and for two of the
kinds the real ``onewindow audit verify --witness DIR --public-key PEM`` in a child process, exiting 1 — must report
the log broken and name the first record concerned and the kind of change, for every kind: 100 % detected.
Removing the last records together with their checkpoint goes unnoticed without the witness (the drill shows that
too) and is reported with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.audit.chain import record_hash
from gateway.audit.keys import AuditSigner
from gateway.audit.tables import audit_checkpoints, audit_records
from gateway.audit.witness import DirectoryWitness, seal
from gateway.settings import Settings
from gateway.storage import Database, new_id
from tests.dbutil import isolated_settings, open_database
from tests.drills.support import environment, onewindow
from tests.gateway.audit.test_log import _drop_triggers

pytestmark = pytest.mark.slow

Tamper = Callable[[AsyncConnection], Awaitable[None]]


async def _edit(conn: AsyncConnection) -> None:
    await conn.execute(update(audit_records).where(audit_records.c.seq == 15).values(actor="token:someone-else"))


async def _delete(conn: AsyncConnection) -> None:
    await conn.execute(delete(audit_records).where(audit_records.c.seq == 15))


async def _insert(conn: AsyncConnection) -> None:
    """A forged record slipped in after #15, well formed and correctly hashed, the later ones moved up."""
    prev = (await conn.execute(select(audit_records).where(audit_records.c.seq == 15))).one()
    await conn.execute(update(audit_records).where(audit_records.c.seq > 15).values(seq=audit_records.c.seq + 1000))
    await conn.execute(update(audit_records).where(audit_records.c.seq > 1000).values(seq=audit_records.c.seq - 999))
    fields = {
        "seq": 16,
        "id": new_id(),
        "at": prev.at,
        "actor": "token:forger",
        "role": "clerk",
        "action": "application.created",
        "object_type": "application",
        "object_id": "forged",
        "purpose": "application:forged",
        "detail": {},
        "prev_hash": prev.hash,
    }
    await conn.execute(insert(audit_records).values(**fields, hash=record_hash(**fields)))


async def _reorder(conn: AsyncConnection) -> None:
    """#15 and #16 swap places."""
    await conn.execute(update(audit_records).where(audit_records.c.seq == 15).values(seq=-15))
    await conn.execute(update(audit_records).where(audit_records.c.seq == 16).values(seq=15))
    await conn.execute(update(audit_records).where(audit_records.c.seq == -15).values(seq=16))


async def _truncate(conn: AsyncConnection) -> None:
    """The last six records go, and the checkpoint that covered them."""
    await conn.execute(delete(audit_records).where(audit_records.c.seq > 24))
    await conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > 24))


#: kind -> (tampering, the first record that must be named, words the reason must hold)
TAMPERINGS: dict[str, tuple[Tamper, int, tuple[str, ...]]] = {
    "edit": (_edit, 15, ("edited",)),
    "delete": (_delete, 15, ("#15 is missing",)),
    "insert": (_insert, 17, ("inserted",)),
    "reorder": (_reorder, 15, ("reordered",)),
    "truncate": (_truncate, 25, ("#25..#30 are missing", "witness")),
}


#: Tamperings also checked through the command (a child process each: seconds on a busy machine).
COMMAND_CHECKED = ("edit", "truncate")


async def _chain(db: Database, signer: AuditSigner, witness: DirectoryWitness) -> None:
    for block in range(3):
        for i in range(block * 10, block * 10 + 10):
            async with db.transaction() as conn:
                await audit.append(
                    conn,
                    actor="token:clerk-1",
                    role="clerk",
                    action="application.created",
                    object_type="application",
                    object_id=f"app-{i}",
                    purpose=f"application:app-{i}",
                    detail={"item_code": "0720003100", "i": i},
                )
        await seal(db, signer, [witness])


def _verify_command(settings: Settings, public_key: Path, witness: Path | None) -> tuple[int, str]:
    env = environment(ONEWINDOW_DATABASE_URL=settings.database_url, ONEWINDOW_DATABASE_SCHEMA=settings.database_schema)
    args = ["audit", "verify", "--data-dir", str(settings.data_dir), "--public-key", str(public_key)]
    done = onewindow(env, *args, *(["--witness", str(witness)] if witness else []))
    return done.returncode, done.stdout + done.stderr


async def test_every_kind_of_tampering_is_detected_and_named(database_url: str, tmp_path: Path) -> None:
    signer = AuditSigner(Ed25519PrivateKey.generate())
    public_key = tmp_path / "audit-public.pem"
    public_key.write_bytes(signer.public_key_pem())
    detected: dict[str, str] = {}
    for kind, (tamper, first, words) in TAMPERINGS.items():
        witness = DirectoryWitness(tmp_path / f"witness-{kind}")
        url = (
            f"sqlite:///{tmp_path / kind / 'onewindow.sqlite3'}" if database_url.startswith("sqlite") else database_url
        )
        async with isolated_settings(url, tmp_path / kind) as settings:
            async with open_database(settings) as db:
                await _chain(db, signer, witness)
                intact = await audit.verify(db, signer.public_key, witness=witness.checkpoints())
                assert intact.ok and intact.records == 30 and intact.witnessed == 3, intact.summary()
                await _drop_triggers(db)
                async with db.transaction() as conn:
                    await tamper(conn)
                result = await audit.verify(db, signer.public_key, witness=witness.checkpoints())
                if kind == "truncate":
                    alone = await audit.verify(db, signer.public_key)
                    assert alone.ok, "without the witness a clean truncation is invisible; with it, it is not"
            if kind in COMMAND_CHECKED:
                code, out = await asyncio.to_thread(_verify_command, settings, public_key, witness.path)
                assert code == 1 and f"chain BROKEN at record #{first}" in out, (kind, out)
        assert not result.ok and result.broken_seq == first, (kind, result.summary())
        assert all(w in (result.reason or "") for w in words), (kind, result.summary())
        detected[kind] = result.summary()
    print(f"\naudit tamper drill ({database_url.split(':')[0]}): {len(detected)}/{len(TAMPERINGS)} detected")
    for kind, summary in detected.items():
        print(f"  {kind:9} {summary}")
    assert sorted(detected) == sorted(TAMPERINGS)
