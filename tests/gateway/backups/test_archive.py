"""`onewindow backup` / `onewindow restore` on the embedded database: the copy is consistent and verifies, the keys
never go with the backup, nothing is overwritten, and a damaged backup is refused."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from gateway import audit
from gateway.cli import main
from gateway.intake import uploads
from gateway.privacy import FieldCipher
from gateway.privacy.keys import KeyRing
from gateway.settings import Settings
from gateway.storage import Database


async def _seed(data_dir: Path, records: int) -> None:
    db = Database.from_settings(Settings(data_dir=data_dir))
    try:
        await db.migrate()
        for i in range(records):
            async with db.transaction() as conn:
                await audit.append(conn, actor="system", action="test.done", object_type="t", object_id=str(i))
    finally:
        await db.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "var"
    asyncio.run(_seed(data, 7))
    keyring = KeyRing.load(data, environ={})  # keys/keyring.json, as the first start writes it
    uploads.store(data, b"%PDF-1.7 a scan", cipher=FieldCipher(keyring))
    return data


def test_backup_then_restore_into_an_empty_data_dir_verifies_the_audit_chain(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, keys = tmp_path / "backup", tmp_path / "vault" / "keys"
    assert main(["backup", "--to", str(target), "--keys-to", str(keys), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr()
    assert "audit head #7 (checkpoint #7)" in out.out
    assert "WARNING: the backup holds no keys" in out.err and str(data_dir / "keys") in out.err

    names = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert names == sorted(
        ["manifest.json", "onewindow.sqlite3", str(uploads.upload_path(target, _digest()).relative_to(target))]
    )
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in target.rglob("*") if p.is_file())
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["audit_head_seq"] == 7 and manifest["key_files"] == ["audit_ed25519.pem", "keyring.json"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.iterdir())
    assert stat.S_IMODE((target / "onewindow.sqlite3").stat().st_mode) == 0o600

    restored = tmp_path / "restored"
    code = main(["restore", "--from", str(target), "--keys-from", str(keys), "--data-dir", str(restored)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "audit: 7 records, chain intact, last checkpoint at #7" in out.out
    assert (restored / "keys" / "keyring.json").read_bytes() == (data_dir / "keys" / "keyring.json").read_bytes()
    # The scan comes back sealed as it was, and opens with the restored keys.
    assert (
        uploads.upload_path(restored, _digest()).read_bytes() == uploads.upload_path(data_dir, _digest()).read_bytes()
    )
    opened = uploads.read(restored, _digest(), cipher=FieldCipher(KeyRing.load(restored, environ={}, create=False)))
    assert opened == b"%PDF-1.7 a scan"

    # Restore never writes over a data dir that holds anything.
    assert main(["restore", "--from", str(target), "--data-dir", str(data_dir)]) == 2
    assert "not empty" in capsys.readouterr().err


def _digest() -> str:
    return hashlib.sha256(b"%PDF-1.7 a scan").hexdigest()


def test_a_backup_is_never_written_where_the_keys_are(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for target, keys_to, why in [
        (data_dir / "keys" / "b", None, "the keys live there"),
        (data_dir / "backups", None, "the keys live there"),
        (tmp_path / "b1", tmp_path / "b1" / "keys", "stored apart from the backup"),
        (tmp_path / "b2", data_dir / "k", "out of the data dir"),
    ]:
        args = ["backup", "--to", str(target), "--data-dir", str(data_dir)]
        assert main([*args, *(["--keys-to", str(keys_to)] if keys_to else [])]) == 2
        assert why in capsys.readouterr().err
        assert not target.exists() or not any(target.iterdir())
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("mine")
    assert main(["backup", "--to", str(full), "--data-dir", str(data_dir)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_a_damaged_or_tampered_backup_is_refused_or_reported(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, keys = tmp_path / "backup", tmp_path / "keys"
    assert main(["backup", "--to", str(target), "--keys-to", str(keys), "--data-dir", str(data_dir)]) == 0
    database = target / "onewindow.sqlite3"
    with contextlib.closing(sqlite3.connect(database)) as conn:  # someone edits a record (triggers dropped)
        conn.execute("DROP TRIGGER audit_records_no_update")
        conn.execute("UPDATE audit_records SET actor = 'someone' WHERE seq = 3")
        conn.commit()
    capsys.readouterr()
    assert main(["restore", "--from", str(target), "--data-dir", str(tmp_path / "r1")]) == 2
    assert "SHA-256 is not the manifest's" in capsys.readouterr().err

    manifest = json.loads((target / "manifest.json").read_text())  # ... and fixes up the manifest too
    manifest["database_sha256"] = hashlib.sha256(database.read_bytes()).hexdigest()
    (target / "manifest.json").write_text(json.dumps(manifest))
    code = main(["restore", "--from", str(target), "--keys-from", str(keys), "--data-dir", str(tmp_path / "r2")])
    out = capsys.readouterr().out
    assert code == 1 and "chain BROKEN at record #3" in out and "edited" in out


def test_postgresql_deployments_are_sent_to_pg_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pg.toml"
    config.write_text('[gateway]\ndatabase_url = "postgresql://nobody@127.0.0.1:1/none"\n')
    assert main(["backup", "--to", str(tmp_path / "b"), "--config", str(config), "--data-dir", str(tmp_path)]) == 2
    assert "pg_dump" in capsys.readouterr().err
