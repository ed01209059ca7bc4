"""Backups of the embedded deployment (SQLite + uploads) and their restore, with the keys kept apart.

A backup is a directory::

    onewindow.sqlite3   the database, copied online (`gateway.storage.snapshot`), mode 0600
    uploads/            the stored scans the database refers to (content-addressed, as in the data dir)
    manifest.json       when, the database file's SHA-256, the audit head and checkpoint, the key ids it needs

It holds **no keys**. The data keys and the blind-index key (``<data_dir>/keys/keyring.json``, or the
``ONEWINDOW_DATA_KEYS``/``ONEWINDOW_INDEX_KEY`` variables) and the audit signing key
(``<data_dir>/keys/audit_ed25519.pem``) are copied only when asked (``--keys-to``), into a directory that must
not be the backup's nor inside it: a stolen backup without its keys gives away no personal data, and keys
stored with the backup would. A backup is never written inside the data dir, which holds the keys.

Before copying, the head of the audit chain is signed (and witnessed, `gateway.audit.witness`), so the backup
ends at a signed checkpoint. Restoring goes into an empty data dir only, checks the file against the manifest and
SQLite's integrity check, brings the schema up to date and verifies the whole audit chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from datetime import datetime
from pathlib import Path

import msgspec
from sqlalchemy import select

from gateway.audit.keys import AUDIT_KEY_FILE, AuditKeyring, load_or_create_signer, load_signer
from gateway.audit.log import Checkpoint, VerifyResult, head, last_checkpoint, verify
from gateway.audit.witness import seal, witnesses_from_settings
from gateway.cases.tables import application_materials
from gateway.intake import uploads
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.storage.snapshot import sqlite_integrity, sqlite_self_contained, sqlite_snapshot

DATABASE_FILE = "onewindow.sqlite3"
MANIFEST_FILE = "manifest.json"
KEYS_DIR = AUDIT_KEY_FILE.parent  # keys/ in the data dir


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


class Manifest(msgspec.Struct, kw_only=True, frozen=True):
    format: int
    created_at: datetime
    database_file: str
    database_sha256: str
    uploads: int
    #: Files the backed-up rows refer to that were gone by the time the uploads were copied (purged meanwhile).
    missing_uploads: int
    audit_head_seq: int
    audit_head_hash: str
    audit_checkpoint_seq: int | None
    audit_key_id: str | None
    #: Key files copied with ``--keys-to`` (names only), empty when the keys were not copied.
    key_files: list[str]


def keys_dir(data_dir: Path) -> Path:
    return data_dir / KEYS_DIR


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or path.is_relative_to(parent)


def _empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def check_backup_target(settings: Settings, target: Path, keys_to: Path | None) -> None:
    """Refuse a backup that would sit with the keys, or overwrite anything."""
    data_dir = settings.data_dir.resolve()
    target = target.resolve()
    if not settings.is_sqlite:
        raise BackupError(
            "the database is PostgreSQL: back it up with pg_dump (docs/resilience.md, 'PostgreSQL'); "
            "this command copies the embedded SQLite database"
        )
    if _inside(target, data_dir) or _inside(data_dir, target):
        raise BackupError(
            f"{target}: a backup is never written in or around the data dir {data_dir}: the keys live there"
        )
    if _inside(target, keys_dir(data_dir)):
        raise BackupError(f"{target}: that is where the keys are")
    if not _empty_or_absent(target):
        raise BackupError(f"{target}: not empty; give a new or empty directory")
    if keys_to is not None:
        keys_to = keys_to.resolve()
        if _inside(keys_to, target) or _inside(target, keys_to):
            raise BackupError(f"{keys_to}: the keys must be stored apart from the backup, not in or around {target}")
        if _inside(keys_to, data_dir):
            raise BackupError(f"{keys_to}: copy the keys out of the data dir, to storage kept apart from the backups")
        if not _empty_or_absent(keys_to):
            raise BackupError(f"{keys_to}: not empty; give a new or empty directory for the keys")


async def backup(settings: Settings, db: Database, target: Path, *, keys_to: Path | None = None) -> Manifest:
    """Copy the database, the uploads and (only to ``keys_to``) the keys; return the manifest written."""
    check_backup_target(settings, target, keys_to)
    data_dir = settings.data_dir
    signer = load_or_create_signer(data_dir)
    await seal(db, signer, witnesses_from_settings(settings))
    await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True, mode=0o700)
    database_copy = target / DATABASE_FILE
    await asyncio.to_thread(sqlite_snapshot, data_dir / DATABASE_FILE, database_copy)
    copied = await asyncio.to_thread(_copy_uploads, data_dir, target)

    copy = Database.from_url(f"sqlite+aiosqlite:///{database_copy}", inline_reads=False)
    try:
        async with copy.read() as conn:
            seq, digest = await head(conn)
            cp = await last_checkpoint(conn)
            rows = await conn.execute(
                select(application_materials.c.file_sha256).where(application_materials.c.file_sha256.is_not(None))
            )
            referenced = {str(d) for d in rows.scalars()}
    finally:
        await copy.dispose()
    await asyncio.to_thread(sqlite_self_contained, database_copy)
    missing = sum(1 for d in referenced if not uploads.upload_path(target, d).exists())

    key_files: list[str] = []
    if keys_to is not None:
        key_files = await asyncio.to_thread(_copy_private_tree, keys_dir(data_dir), keys_to)
    manifest = Manifest(
        format=1,
        created_at=utcnow(),
        database_file=DATABASE_FILE,
        database_sha256=await asyncio.to_thread(_sha256, database_copy),
        uploads=copied,
        missing_uploads=missing,
        audit_head_seq=seq,
        audit_head_hash=digest,
        audit_checkpoint_seq=None if cp is None else cp.seq,
        audit_key_id=signer.key_id,
        key_files=key_files,
    )
    await asyncio.to_thread(_write_manifest, target, manifest)
    return manifest


def read_manifest(source: Path) -> Manifest:
    try:
        return msgspec.json.decode((source / MANIFEST_FILE).read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise BackupError(f"{source}: no {MANIFEST_FILE}; not a backup made by onewindow backup") from None
    except (OSError, msgspec.DecodeError) as exc:
        raise BackupError(f"{source / MANIFEST_FILE}: unreadable ({exc})") from exc


def prepare_restore(settings: Settings, source: Path, *, keys_from: Path | None = None) -> Manifest:
    """Check the backup and copy it into the (empty) data dir. Blocking; `restore` runs the rest."""
    if not settings.is_sqlite:
        raise BackupError("the database is PostgreSQL: restore it with pg_restore (docs/resilience.md)")
    data_dir = settings.data_dir
    if not _empty_or_absent(data_dir):
        raise BackupError(f"{data_dir}: not empty; restore into a new or empty data dir")
    manifest = read_manifest(source)
    database_file = source / manifest.database_file
    if _sha256(database_file) != manifest.database_sha256:
        raise BackupError(f"{database_file}: its SHA-256 is not the manifest's; the backup is damaged")
    if (problem := sqlite_integrity(database_file)) != "ok":
        raise BackupError(f"{database_file}: integrity check failed: {problem}")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = data_dir / DATABASE_FILE
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, database_file.open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    _copy_uploads(source, data_dir)
    if keys_from is not None:
        _copy_private_tree(keys_from, keys_dir(data_dir))
    return manifest


async def restore_check(
    settings: Settings, db: Database, *, public_keys: AuditKeyring | None, witness: list[Checkpoint] | None
) -> VerifyResult:
    """Verify the restored audit chain with the given keys, else the restored audit key."""
    keyring = public_keys
    if keyring is None:
        signer = load_signer(settings.data_dir)
        keyring = AuditKeyring(*([] if signer is None else [signer.public_key]))
    return await verify(db, keyring, witness=witness)


def _copy_uploads(source_dir: Path, target_dir: Path) -> int:
    root = source_dir / uploads.UPLOADS_DIR
    count = 0
    if not root.is_dir():
        return 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if name.startswith(uploads.TEMP_PREFIX):
                continue
            src = Path(folder) / name
            dst = target_dir / src.relative_to(source_dir)
            dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                shutil.copy2(src, dst)
            except FileNotFoundError:  # deleted meanwhile (replaced or purged): the manifest counts what is missing
                continue
            count += 1
    return count


def _copy_private_tree(source: Path, target: Path) -> list[str]:
    """Copy the key files (directory 0700, files 0600); their names."""
    if not source.is_dir():
        raise BackupError(f"{source}: no key directory to copy")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.chmod(0o700)
    names: list[str] = []
    for src in sorted(source.iterdir()):
        if not src.is_file() or src.name.startswith("."):
            continue
        fd = os.open(target / src.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(src.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        names.append(src.name)
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(target: Path, manifest: Manifest) -> None:
    tmp = target / f".{MANIFEST_FILE}.tmp"
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    os.replace(tmp, target / MANIFEST_FILE)


__all__ = [
    "DATABASE_FILE",
    "MANIFEST_FILE",
    "BackupError",
    "Manifest",
    "backup",
    "check_backup_target",
    "keys_dir",
    "prepare_restore",
    "read_manifest",
    "restore_check",
]
