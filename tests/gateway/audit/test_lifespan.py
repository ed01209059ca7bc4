"""Checkpoints signed by the running gateway: when due, and once more at shutdown."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import audit
from gateway.app import create_app
from gateway.audit.keys import AuditSigner, load_signer
from gateway.audit.lifespan import checkpoint_if_due
from gateway.identity import create_token
from gateway.settings import Settings
from gateway.storage import Database
from tests.dbutil import asgi_client


async def _append(db: Database, n: int) -> None:
    async with db.transaction() as conn:
        for i in range(n):
            await audit.append(conn, actor="system", action="p.x", object_type="p", object_id=str(i))


async def test_checkpoint_when_enough_records_or_time(database: Database) -> None:
    signer = AuditSigner(Ed25519PrivateKey.generate())
    assert not await checkpoint_if_due(database, signer, every=3, seconds=3600)  # empty log
    await _append(database, 1)
    assert await checkpoint_if_due(database, signer, every=3, seconds=3600)  # never checkpointed: sign now
    await _append(database, 2)
    assert not await checkpoint_if_due(database, signer, every=3, seconds=3600)  # 2 new, recent checkpoint
    await _append(database, 1)
    assert await checkpoint_if_due(database, signer, every=3, seconds=3600)  # 3 new
    await _append(database, 1)
    assert await checkpoint_if_due(database, signer, every=1000, seconds=0)  # old enough
    async with database.read() as conn:
        last = await audit.last_checkpoint(conn)
        assert last is not None and last.seq == 5
        count, at = await audit.pending(conn)
    assert count == 0 and at is not None and at - last.at == timedelta(0)


async def test_gateway_signs_a_checkpoint_at_shutdown(db_settings: Settings, database: Database) -> None:
    await create_token(database, role="admin")
    async with asgi_client(create_app(db_settings)) as client:
        assert (await client.get("/health/ready")).status_code == 200
    signer = load_signer(db_settings.data_dir)
    assert signer is not None
    result = await audit.verify(database, signer.public_key)
    assert result.ok and result.last_checkpoint is not None and result.last_checkpoint.seq == 1


async def test_the_gateways_checkpoints_go_to_the_configured_witness(db_settings: Settings, database: Database) -> None:
    import msgspec

    from gateway.audit.witness import DirectoryWitness

    settings = msgspec.structs.replace(db_settings, audit_witness_dir=db_settings.data_dir.parent / "witness")
    await create_token(database, role="admin")
    async with asgi_client(create_app(settings)) as client:
        assert (await client.get("/health/ready")).status_code == 200
    signer = load_signer(settings.data_dir)
    assert signer is not None
    held = DirectoryWitness(settings.data_dir.parent / "witness").checkpoints()
    async with database.read() as conn:
        assert [await audit.last_checkpoint(conn)] == held
    result = await audit.verify(database, signer.public_key, witness=held)
    assert result.ok and result.witnessed == 1, result.summary()
