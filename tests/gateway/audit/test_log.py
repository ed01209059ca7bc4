"""The audit log on SQLite and PostgreSQL: appends inside the caller's transaction, concurrency across tasks and
processes, append-only triggers, checkpoints, and verification that finds every kind of tampering."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from gateway import audit
from gateway.audit.chain import record_hash
from gateway.audit.keys import AuditSigner
from gateway.audit.tables import audit_checkpoints, audit_records
from gateway.settings import Settings
from gateway.storage import Database
from tests.dbutil import migrated_database

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def signer() -> AuditSigner:
    return AuditSigner(Ed25519PrivateKey.generate())


async def _append(db: Database, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        async with db.transaction() as conn:
            await audit.append(
                conn,
                actor="token:t1",
                role="clerk",
                action="application.created",
                object_type="application",
                object_id=f"app-{i}",
                purpose=f"application:app-{i}",
                detail={"i": i, "item_code": "S001"},
            )


async def _drop_triggers(db: Database) -> None:
    """Tampering tests play an attacker with database access: first they remove the append-only triggers."""
    async with db.transaction() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("DROP TRIGGER audit_records_append_only ON audit_records"))
            await conn.execute(text("DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints"))
        else:
            for table in ("audit_records", "audit_checkpoints"):
                await conn.execute(text(f"DROP TRIGGER {table}_no_update"))
                await conn.execute(text(f"DROP TRIGGER {table}_no_delete"))


async def test_append_builds_a_chain_and_verify_passes(database: Database, signer: AuditSigner) -> None:
    empty = await audit.verify(database, signer.public_key)
    assert empty.ok and empty.records == 0 and empty.summary() == "0 records, chain intact, no checkpoint yet"
    await _append(database, 5)
    async with database.read() as conn:
        rows = await audit.records(conn)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
        assert (await audit.head(conn)) == (5, rows[-1].hash)
        mine = await audit.history(conn, object_type="application", object_id="app-3")
        assert [r.detail for r in mine] == [{"i": 3, "item_code": "S001"}]
    result = await audit.verify(database, signer.public_key)
    assert result.ok and result.records == 5 and result.head_seq == 5


async def test_record_rolls_back_with_the_callers_transaction(database: Database, signer: AuditSigner) -> None:
    await _append(database, 1)
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await audit.append(conn, actor="system", action="x.y", object_type="t", object_id="1")
            raise RuntimeError("the change failed")
    await _append(database, 1, start=1)
    async with database.read() as conn:
        assert [r.seq for r in await audit.records(conn)] == [1, 2]
    assert (await audit.verify(database, signer.public_key)).ok


async def test_append_refuses_bad_fields(database: Database) -> None:
    async with database.transaction() as conn:
        with pytest.raises(ValueError, match="actor"):
            await audit.append(conn, actor="", action="a.b", object_type="t", object_id="1")
        with pytest.raises(ValueError, match="purpose"):
            await audit.append(conn, actor="system", action="a.b", object_type="t", object_id="1", purpose="p" * 201)
        with pytest.raises(TypeError):
            await audit.append(
                conn, actor="system", action="a.b", object_type="t", object_id="1", detail={"x": object()}
            )


async def test_fifty_concurrent_appends_form_one_chain(database: Database, signer: AuditSigner) -> None:
    async def one(i: int) -> None:
        async with database.transaction() as conn:
            await asyncio.sleep(0)  # let the others interleave inside their transactions
            await audit.append(conn, actor="system", action="certificate.pulled", object_type="c", object_id=str(i))

    await asyncio.gather(*(one(i) for i in range(50)))
    result = await audit.verify(database, signer.public_key)
    assert result.ok, result.summary()
    assert result.records == 50 and result.head_seq == 50


@pytest.mark.slow
async def test_appends_from_several_processes_form_one_chain(db_settings: Settings, signer: AuditSigner) -> None:
    async with migrated_database(db_settings) as db:
        script = textwrap.dedent(
            """
            import asyncio, sys
            from gateway import audit
            from gateway.settings import load_settings
            from gateway.storage import Database

            async def main() -> None:
                settings = load_settings(environ={}, database_url=sys.argv[1], database_schema=sys.argv[2])
                db = Database.from_settings(settings)
                async def one(i: int) -> None:
                    async with db.transaction() as conn:
                        await audit.append(conn, actor="system", action="p.x", object_type="p", object_id=str(i))
                await asyncio.gather(*(one(i) for i in range(25)))
                await db.dispose()

            asyncio.run(main())
            """
        )
        url = db_settings.database_url
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, url, db_settings.database_schema, cwd=ROOT, env=env
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        result = await audit.verify(db, signer.public_key)
        assert result.ok, result.summary()
        assert result.records == 50


async def test_the_database_refuses_update_and_delete(database: Database) -> None:
    await _append(database, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        async with database.transaction() as conn:
            await conn.execute(update(audit_records).where(audit_records.c.seq == 1).values(actor="someone"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with database.transaction() as conn:
            await conn.execute(audit_records.delete().where(audit_records.c.seq == 2))
    if database.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with database.transaction() as conn:
                await conn.execute(text("TRUNCATE audit_records"))


async def test_checkpoint_signs_the_head_once(database: Database, signer: AuditSigner) -> None:
    assert await audit.checkpoint(database, signer) is None  # nothing to sign yet
    await _append(database, 3)
    first = await audit.checkpoint(database, signer)
    assert first is not None and first.seq == 3 and first.key_id == signer.key_id
    assert await audit.checkpoint(database, signer) == first  # same head: no second checkpoint
    await _append(database, 2, start=3)
    second = await audit.checkpoint(database, signer)
    assert second is not None and second.seq == 5
    result = await audit.verify(database, signer.public_key)
    assert result.ok and result.checkpoints == 2 and result.last_checkpoint == second
    assert result.summary().startswith("5 records, chain intact, last checkpoint at #5 (")
    async with database.read() as conn:
        assert await audit.pending(conn) == (0, second.at)


async def test_concurrent_checkpoints_do_not_duplicate(database: Database, signer: AuditSigner) -> None:
    await _append(database, 2)
    results = await asyncio.gather(*(audit.checkpoint(database, signer) for _ in range(5)))
    assert {r.seq for r in results if r} == {2}
    async with database.read() as conn:
        assert len((await conn.execute(select(audit_checkpoints))).all()) == 1


async def test_verify_with_another_key_names_the_checkpoint(database: Database, signer: AuditSigner) -> None:
    await _append(database, 2)
    await audit.checkpoint(database, signer)
    stranger = Ed25519PrivateKey.generate().public_key()
    result = await audit.verify(database, stranger)
    assert not result.ok and result.broken_seq == 2
    assert "invalid signature" in (result.reason or "")
    assert (await audit.verify(database, audit.AuditKeyring(stranger, signer.public_key))).ok


# -- tampering: each kind is found and the first broken record named -----------------------------------------


async def test_edited_record_is_found(database: Database, signer: AuditSigner) -> None:
    await _append(database, 6)
    await _drop_triggers(database)
    async with database.transaction() as conn:
        await conn.execute(update(audit_records).where(audit_records.c.seq == 4).values(object_id="app-999"))
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 4 and result.broken_id is not None
    assert "edited" in (result.reason or "")
    assert "record #4" in result.summary()


async def test_deleted_record_is_found(database: Database, signer: AuditSigner) -> None:
    await _append(database, 6)
    await _drop_triggers(database)
    async with database.transaction() as conn:
        await conn.execute(audit_records.delete().where(audit_records.c.seq == 3))
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 3 and result.records == 5
    assert "missing" in (result.reason or "")


async def test_reordered_records_are_found(database: Database, signer: AuditSigner) -> None:
    await _append(database, 6)
    await _drop_triggers(database)
    async with database.transaction() as conn:  # swap #2 and #3 (via a free seq, seq is unique)
        await conn.execute(update(audit_records).where(audit_records.c.seq == 2).values(seq=1000))
        await conn.execute(update(audit_records).where(audit_records.c.seq == 3).values(seq=2))
        await conn.execute(update(audit_records).where(audit_records.c.seq == 1000).values(seq=3))
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 2


async def test_inserted_record_is_found(database: Database, signer: AuditSigner) -> None:
    """A forged record slipped in at #3 with a valid hash over a valid link: the old #3 (now #4) no longer links."""
    await _append(database, 5)
    await _drop_triggers(database)
    async with database.transaction() as conn:
        for seq in (5, 4, 3):
            await conn.execute(update(audit_records).where(audit_records.c.seq == seq).values(seq=seq + 1))
        prev = (await conn.execute(select(audit_records).where(audit_records.c.seq == 2))).one()
        forged = {
            "seq": 3,
            "id": "f" * 32,
            "at": prev.at,
            "actor": "token:intruder",
            "role": None,
            "action": "status.changed",
            "object_type": "application",
            "object_id": "app-1",
            "purpose": None,
            "detail": {},
            "prev_hash": prev.hash,
        }
        await conn.execute(audit_records.insert().values(**forged, hash=record_hash(**forged)))
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 4
    assert "previous-hash" in (result.reason or "")


async def test_consistent_rewrite_is_caught_by_the_checkpoint(database: Database, signer: AuditSigner) -> None:
    """An attacker who edits #3 and recomputes every later hash leaves a self-consistent chain; the signed
    checkpoint at #4 still exposes it, and the earlier checkpoint at #2 bounds where the damage starts."""
    await _append(database, 2)
    await audit.checkpoint(database, signer)
    await _append(database, 2, start=2)
    await audit.checkpoint(database, signer)
    await _append(database, 2, start=4)
    await _drop_triggers(database)
    async with database.transaction() as conn:
        rows = (await conn.execute(select(audit_records).order_by(audit_records.c.seq))).all()
        prev_hash = rows[1].hash
        for row in rows[2:]:
            fields = {k: v for k, v in row._mapping.items() if k != "hash"}
            fields["prev_hash"] = prev_hash
            if row.seq == 3:
                fields["detail"] = {"i": 2, "item_code": "FORGED"}
            digest = record_hash(**fields)
            await conn.execute(
                update(audit_records)
                .where(audit_records.c.seq == row.seq)
                .values(detail=fields["detail"], prev_hash=prev_hash, hash=digest)
            )
            prev_hash = digest
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 3
    assert "checkpoint signed at #4" in (result.reason or "")


async def test_truncated_tail_after_a_checkpoint_is_found(database: Database, signer: AuditSigner) -> None:
    await _append(database, 5)
    await audit.checkpoint(database, signer)
    await _drop_triggers(database)
    async with database.transaction() as conn:
        await conn.execute(audit_records.delete().where(audit_records.c.seq >= 4))
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 4
    assert "#4..#5 are missing" in (result.reason or "")


async def test_forged_checkpoint_signature_is_found(database: Database, signer: AuditSigner) -> None:
    await _append(database, 3)
    await audit.checkpoint(database, signer)
    await _drop_triggers(database)
    async with database.transaction() as conn:
        await conn.execute(update(audit_checkpoints).values(signature="00" * 64))
    result = await audit.verify(database, signer.public_key)
    assert not result.ok and result.broken_seq == 3 and "invalid signature" in (result.reason or "")


async def test_a_transactions_records_are_written_together_at_commit_in_order(
    database: Database, signer: AuditSigner
) -> None:
    await _append(database, 1)
    async with database.transaction() as conn:
        for i in range(3):
            await audit.append(conn, actor="system", action="batch.step", object_type="t", object_id=str(i))
        # Not in the table while the transaction runs: they are chained and inserted just before the commit.
        assert (await audit.head(conn))[0] == 1
    async with database.read() as conn:
        rows = await audit.records(conn)
    assert [(r.seq, r.object_id) for r in rows[1:]] == [(2, "0"), (3, "1"), (4, "2")]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert (await audit.verify(database, signer.public_key)).ok


async def test_a_transaction_that_fails_after_its_appends_writes_none_of_them(
    database: Database, signer: AuditSigner
) -> None:
    await _append(database, 1)
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await audit.append(conn, actor="system", action="a.b", object_type="t", object_id="1")
            await audit.append(conn, actor="system", action="a.b", object_type="t", object_id="2")
            raise RuntimeError("the change failed after its records were appended")
    # A record refused at the batch's write (a constraint) rolls back the change it belongs to as well.
    async with database.transaction() as conn:
        await conn.execute(text("CREATE TABLE audit_probe (id INTEGER)"))
    with pytest.raises(DBAPIError):
        async with database.transaction() as conn:
            await conn.execute(text("INSERT INTO audit_probe (id) VALUES (1)"))
            await audit.append(conn, actor="system", action="a.b", object_type="t", object_id="3", detail={"x": 1})
            await conn.execute(text("DROP TABLE audit_records"))  # the batch cannot be written now
    async with database.read() as conn:
        assert [r.seq for r in await audit.records(conn)] == [1]
        assert (await conn.execute(text("SELECT count(*) FROM audit_probe"))).scalar_one() == 0
    assert (await audit.verify(database, signer.public_key)).ok


async def test_concurrent_transactions_of_several_records_chain_each_transaction_together(
    database: Database, signer: AuditSigner
) -> None:
    async def one(i: int) -> None:
        async with database.transaction() as conn:
            for step in range(3):
                await asyncio.sleep(0)  # let the other transactions interleave between the appends
                await audit.append(conn, actor="system", action="p.x", object_type=f"tx{i}", object_id=str(step))

    await asyncio.gather(*(one(i) for i in range(20)))
    result = await audit.verify(database, signer.public_key)
    assert result.ok, result.summary()
    assert result.records == 60
    async with database.read() as conn:
        rows = await audit.records(conn, limit=100)
    # Each transaction's three records sit together in the chain, in the order they were appended.
    for first in range(0, 60, 3):
        batch = rows[first : first + 3]
        assert len({r.object_type for r in batch}) == 1
        assert [r.object_id for r in batch] == ["0", "1", "2"]
