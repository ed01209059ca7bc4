from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.commands import keys as keys_command
from gateway.intake import uploads
from gateway.privacy import FieldCipher, KeyRing
from gateway.privacy.registry import (
    EncryptedColumn,
    encrypted_columns,
    register_encrypted_column,
    unregister_encrypted_column,
)
from gateway.privacy.rotation import key_usage, reencrypt_all
from gateway.settings import Settings, load_settings
from gateway.storage import Database

ROWS = 23
BATCH = 5


def main(argv: list[str]) -> int:
    """`onewindow keys …` through our command group alone (other groups' work in progress cannot break it)."""
    parser = argparse.ArgumentParser(prog="onewindow")
    keys_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


@pytest.fixture
def people_table() -> Iterator[tuple[sa.Table, list[EncryptedColumn]]]:
    """A throw-away table with two encrypted columns, registered for the duration of the test."""
    name = f"rot_people_{uuid.uuid4().hex[:8]}"
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=True),
    )
    columns = [register_encrypted_column(name, "name"), register_encrypted_column(name, "phone")]
    try:
        yield table, columns
    finally:
        for entry in columns:
            unregister_encrypted_column(entry.table, entry.column)


async def _fill(db: Database, table: sa.Table, cipher: FieldCipher) -> dict[str, tuple[str, str | None]]:
    async with db.transaction() as conn:
        await conn.run_sync(table.metadata.create_all)
    plain: dict[str, tuple[str, str | None]] = {}
    async with db.transaction() as conn:
        for i in range(ROWS):
            row_id = f"{i:04d}-{uuid.uuid4().hex[:8]}"
            name, phone = f"居民{i}", (f"138{i:08d}" if i % 3 else None)
            plain[row_id] = (name, phone)
            await conn.execute(
                table.insert().values(
                    id=row_id,
                    name=cipher.encrypt(name, table=table.name, column="name", row_id=row_id),
                    phone=cipher.encrypt_optional(phone, table=table.name, column="phone", row_id=row_id),
                )
            )
    return plain


async def _read(db: Database, table: sa.Table) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(sa.select(table.c.id, table.c.name, table.c.phone))).all())


async def test_rotation_reencrypts_every_row_in_batches(
    database: Database, db_settings: Settings, people_table: tuple[sa.Table, list[EncryptedColumn]]
) -> None:
    table, columns = people_table
    ring = KeyRing.load(db_settings.data_dir, {})
    cipher = FieldCipher(ring)
    plain = await _fill(database, table, cipher)
    old_token = (await _read(database, table))[0].name

    new_id = ring.add_data_key()
    batches: list[int] = []
    report = await reencrypt_all(
        database, cipher, columns=columns, batch_size=BATCH, progress=lambda t, c, n: batches.append(n)
    )

    assert report.ok and report.active_key_id == new_id
    with_phone = sum(1 for _, phone in plain.values() if phone is not None)
    assert report.reencrypted == ROWS + with_phone
    assert len(batches) >= ROWS // BATCH  # one transaction per batch, per column
    for row in await _read(database, table):
        assert row.name.startswith(f"v1.{new_id}.")
        assert cipher.decrypt(row.name, table=table.name, column="name", row_id=row.id) == plain[row.id][0]
        if plain[row.id][1] is None:
            assert row.phone is None
        else:
            assert row.phone is not None and row.phone.startswith(f"v1.{new_id}.")
            assert cipher.decrypt(row.phone, table=table.name, column="phone", row_id=row.id) == plain[row.id][1]
    # The old key stays in the ring: an old ciphertext (a backup, say) still decrypts.
    first_id = sorted(plain)[0]
    assert FieldCipher.key_id_of(old_token) == "k1"
    assert cipher.decrypt(old_token, table=table.name, column="name", row_id=first_id) == plain[first_id][0]

    usage, missing = await key_usage(database, cipher, columns=columns)
    assert missing == []
    by_column = {u.column: u.by_key for u in usage}
    assert by_column["name"] == {new_id: ROWS, "k1": 0}
    assert by_column["phone"] == {new_id: with_phone, "k1": 0}

    again = await reencrypt_all(database, cipher, columns=columns, batch_size=BATCH)
    assert again.ok and again.reencrypted == 0


async def test_undecryptable_values_are_named_and_left_alone(
    database: Database, db_settings: Settings, people_table: tuple[sa.Table, list[EncryptedColumn]]
) -> None:
    table, columns = people_table
    ring = KeyRing.load(db_settings.data_dir, {})
    cipher = FieldCipher(ring)
    plain = await _fill(database, table, cipher)
    victim, donor = sorted(plain)[:2]
    async with database.transaction() as conn:
        # A value copied from another row: it must not decrypt as this row's name.
        donor_name = (await conn.execute(sa.select(table.c.name).where(table.c.id == donor))).scalar_one()
        await conn.execute(table.update().where(table.c.id == victim).values(name=donor_name))

    ring.add_data_key()
    report = await reencrypt_all(database, cipher, columns=columns, batch_size=BATCH)
    assert not report.ok
    assert report.failed == 1 and report.remaining == 1
    name_report = next(c for c in report.columns if c.column == "name")
    assert name_report.failed_rows == [victim]
    assert name_report.reencrypted == ROWS - 1
    async with database.read() as conn:
        kept = (await conn.execute(sa.select(table.c.name).where(table.c.id == victim))).scalar_one()
    assert kept == donor_name


async def test_concurrent_change_is_not_overwritten(
    database: Database,
    db_settings: Settings,
    people_table: tuple[sa.Table, list[EncryptedColumn]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row a running gateway updates between the rotation's read and its write keeps the newer value."""
    table, columns = people_table
    ring = KeyRing.load(db_settings.data_dir, {})
    cipher = FieldCipher(ring)
    plain = await _fill(database, table, cipher)
    target = sorted(plain)[0]
    old_ring = KeyRing.from_keys([("k1", ring.snapshot.material["k1"])], ring.index_key)
    ring.add_data_key()
    # The gateway has not noticed the new key yet: it writes under k1.
    fresh = FieldCipher(old_ring).encrypt("新名字", table=table.name, column="name", row_id=target)

    original = database.transaction
    interfered = False

    @contextlib.asynccontextmanager
    async def interleaved() -> AsyncIterator[AsyncConnection]:
        """A gateway write lands just before the rotation's first write transaction."""
        nonlocal interfered
        if not interfered:
            interfered = True
            async with original() as conn:
                await conn.execute(table.update().where(table.c.id == target).values(name=fresh))
        async with original() as conn:
            yield conn

    monkeypatch.setattr(database, "transaction", interleaved)
    report = await reencrypt_all(database, cipher, columns=columns, batch_size=BATCH)
    name_report = next(c for c in report.columns if c.column == "name")
    assert name_report.changed_meanwhile == 1
    # The second pass found the gateway's k1 value and brought it under k2, without losing the change.
    assert report.ok and report.passes == 2
    async with database.read() as conn:
        name = (await conn.execute(sa.select(table.c.name).where(table.c.id == target))).scalar_one()
    assert name.startswith("v1.k2.")
    assert cipher.decrypt(name, table=table.name, column="name", row_id=target) == "新名字"


def test_registry_rejects_conflicting_id_columns() -> None:
    name = f"rot_reg_{uuid.uuid4().hex[:6]}"
    try:
        register_encrypted_column(name, "a")
        register_encrypted_column(name, "a")  # same again: fine
        with pytest.raises(ValueError, match="id column"):
            register_encrypted_column(name, "a", id_column="pk")
        assert EncryptedColumn(name, "a") in encrypted_columns()
    finally:
        unregister_encrypted_column(name, "a")


def test_cli_rotate_and_status(tmp_path: Path, people_table: tuple[sa.Table, list[EncryptedColumn]]) -> None:
    table, _ = people_table
    data_dir = tmp_path / "var"
    settings = load_settings(environ={}, data_dir=data_dir)

    async def setup() -> dict[str, tuple[str, str | None]]:
        db = Database.from_settings(settings)
        try:
            await db.migrate()
            return await _fill(db, table, FieldCipher(KeyRing.load(data_dir, {})))
        finally:
            await db.dispose()

    plain = asyncio.run(setup())
    assert main(["keys", "rotate", "--data-dir", str(data_dir), "--batch-size", "7"]) == 0

    ring = KeyRing.load(data_dir, {})
    assert ring.key_ids == ("k2", "k1")

    async def check() -> None:
        db = Database.from_settings(settings)
        try:
            cipher = FieldCipher(ring)
            for row in await _read(db, table):
                assert row.name.startswith("v1.k2.")
                assert cipher.decrypt(row.name, table=table.name, column="name", row_id=row.id) == plain[row.id][0]
        finally:
            await db.dispose()

    asyncio.run(check())


def test_cli_status_json_and_retire(
    tmp_path: Path, people_table: tuple[sa.Table, list[EncryptedColumn]], capsys: pytest.CaptureFixture[str]
) -> None:
    table, _ = people_table
    data_dir = tmp_path / "var"
    settings = load_settings(environ={}, data_dir=data_dir)

    async def setup() -> None:
        db = Database.from_settings(settings)
        try:
            await db.migrate()
            await _fill(db, table, FieldCipher(KeyRing.load(data_dir, {})))
        finally:
            await db.dispose()

    asyncio.run(setup())
    KeyRing.load(data_dir, {}).add_data_key()  # a new key, rotation not run yet
    assert main(["keys", "retire", "k1", "--data-dir", str(data_dir)]) == 1  # still in use
    capsys.readouterr()
    assert main(["keys", "status", "--data-dir", str(data_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["active"] == "k2" and status["source"] == "file"
    columns = {(c["table"], c["column"]): c["by_key"] for c in status["columns"]}
    assert columns[(table.name, "name")] == {"k2": 0, "k1": ROWS}

    assert main(["keys", "rotate", "--data-dir", str(data_dir), "--resume"]) == 0
    assert main(["keys", "retire", "k1", "--data-dir", str(data_dir)]) == 0
    assert KeyRing.load(data_dir, {}).key_ids == ("k2",)


def test_rotation_reseals_uploaded_scans_and_retire_waits_for_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scans are sealed with the active data key: `keys status` counts them per key, `keys rotate` seals them again
    under the new key (a plain file from before sealing too), and `keys retire` refuses while a scan needs the key."""
    data_dir = tmp_path / "var"
    settings = load_settings(environ={}, data_dir=data_dir)

    async def setup() -> None:
        db = Database.from_settings(settings)
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(setup())
    first = FieldCipher(KeyRing.load(data_dir, {}))
    sealed, _ = uploads.store(data_dir, b"%PDF-1.7 scan one", cipher=first)
    plain = hashlib.sha256(b"%PDF-1.7 scan two").hexdigest()  # a file from before scans were sealed
    uploads.upload_path(data_dir, plain).parent.mkdir(parents=True, exist_ok=True)
    uploads.upload_path(data_dir, plain).write_bytes(b"%PDF-1.7 scan two")
    KeyRing.load(data_dir, {}).add_data_key()  # k2 active, rotation not run yet
    assert main(["keys", "retire", "k1", "--data-dir", str(data_dir)]) == 1  # a scan is sealed with k1
    capsys.readouterr()
    assert main(["keys", "status", "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["uploads"] == {"k1": 1, uploads.PLAIN: 1}

    assert main(["keys", "rotate", "--data-dir", str(data_dir), "--resume"]) == 0
    assert "sealed 2 uploaded scan(s) again under k2" in capsys.readouterr().out
    assert uploads.key_usage(data_dir) == {"k2": 2}
    assert main(["keys", "retire", "k1", "--data-dir", str(data_dir)]) == 0
    after = FieldCipher(KeyRing.load(data_dir, {}))
    assert uploads.read(data_dir, sealed, cipher=after) == b"%PDF-1.7 scan one"
    assert uploads.read(data_dir, plain, cipher=after) == b"%PDF-1.7 scan two"
