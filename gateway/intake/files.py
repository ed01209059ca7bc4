"""How long a stored scan lives: while a material row references its hash, and not after.

Scans are content-addressed (`gateway.intake.uploads`): one file may back several materials, of one application
or of several. A file is deleted only when no committed row references its hash:

- a scan replaced by another upload, once the upload that replaced it has committed (`discard`);
- the scans of purged drafts, once the purge has committed (`discard`);
- orphans — files no row references, left by an upload that failed after writing its file, or by a crash — found
  by `sweep`, which runs with the periodic draft purge and spares files younger than a grace period.

Deleting and referencing meet under one lock per hash, so neither can overtake the other: `discard` takes it,
checks that no row references the hash and deletes the file while holding it; an upload writes its file before
its transaction (file I/O stays out of the writer's turn) and, in the transaction, takes the lock and makes sure
the file is still there (`hold`) — writing it again when a deletion came first — before it commits the reference.
The lock is the write transaction itself on SQLite (one writer at a time) and a transaction-scoped advisory lock
on the hash on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.cases.tables import application_materials
from gateway.intake import uploads
from gateway.privacy import FieldCipher
from gateway.storage.database import Database
from gateway.storage.locks import lock_space

log = logging.getLogger("onewindow.intake.files")

#: PostgreSQL advisory lock space of the upload files (the first key of ``pg_advisory_xact_lock(int, int)``;
#: the two-key space never meets the one-key locks of the audit log and migrations).
FILE_LOCK_SPACE = 0x6F77_7570  # "owup"
#: Hashes decided per transaction (each holds one advisory lock on PostgreSQL until it ends).
DISCARD_BATCH = 100
_LOCK = text(f"SELECT pg_advisory_xact_lock({lock_space('space')}, :key)")


def _lock_key(digest: str) -> int:
    """A signed 32-bit key from the hash (a collision only makes two unrelated files wait for each other)."""
    value = int(digest[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value


async def lock(conn: AsyncConnection, digests: Iterable[str]) -> None:
    """Hold the files' locks until ``conn``'s write transaction ends (sorted: two holders never deadlock)."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: the write transaction is the lock
    for key in sorted({_lock_key(d) for d in digests}):
        await conn.execute(_LOCK, {"space": FILE_LOCK_SPACE, "key": key})


async def hold(conn: AsyncConnection, data_dir: Path, digest: str, content: bytes, cipher: FieldCipher) -> bool:
    """In the transaction that will reference ``digest``: lock it and make sure its file exists, writing
    ``content`` again when a deletion removed it since it was stored. True when it had to be written."""
    await lock(conn, [digest])
    if await asyncio.to_thread(uploads.upload_path(data_dir, digest).exists):
        return False
    log.info("upload %s… was deleted before its reference committed; writing it again", digest[:12])
    await asyncio.to_thread(uploads.store, data_dir, content, cipher=cipher)
    return True


async def referenced(conn: AsyncConnection, digests: Iterable[str]) -> set[str]:
    """The hashes among ``digests`` that a material row references."""
    wanted = sorted(set(digests))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await conn.execute(
            select(application_materials.c.file_sha256).where(application_materials.c.file_sha256.in_(chunk)).distinct()
        )
        found.update(str(d) for d in rows.scalars())
    return found


async def discard(db: Database, data_dir: Path, digests: Iterable[str], *, older_than: float = 0.0) -> int:
    """Delete the files of ``digests`` that no row references; returns how many were deleted.

    Call it after the transaction that stopped referencing them has committed. ``older_than`` (seconds) spares
    files written or touched more recently (the sweep's grace).
    """
    wanted = sorted(set(digests))
    removed = 0
    for start in range(0, len(wanted), DISCARD_BATCH):
        batch = wanted[start : start + DISCARD_BATCH]
        async with db.transaction() as conn:
            await lock(conn, batch)
            still_used = await referenced(conn, batch)
            for digest in batch:
                if digest not in still_used and await asyncio.to_thread(
                    uploads.remove, data_dir, digest, older_than=older_than
                ):
                    removed += 1
    return removed


def stored_files(data_dir: Path, *, older_than: float = 0.0) -> tuple[list[str], list[Path]]:
    """(hashes of the stored files, leftover temporary files) not modified for ``older_than`` seconds.

    Blocking: call it through ``asyncio.to_thread``. Names that are not where `uploads.upload_path` puts a hash
    are left alone.
    """
    root = data_dir / uploads.UPLOADS_DIR
    if not root.is_dir():
        return [], []
    cutoff = time.time() - older_than
    digests: list[str] = []
    leftovers: list[Path] = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if name.startswith(uploads.TEMP_PREFIX):
                leftovers.append(path)
                continue
            try:
                if uploads.upload_path(data_dir, name) == path:
                    digests.append(name)
            except ValueError:
                continue
    return sorted(digests), leftovers


async def sweep(db: Database, data_dir: Path, *, grace_seconds: float) -> int:
    """Delete orphans: stored files no row references, not written or touched for ``grace_seconds`` (an upload
    writes its file before committing its reference), and temporary files a crashed upload left behind."""
    digests, leftovers = await asyncio.to_thread(stored_files, data_dir, older_than=grace_seconds)
    for path in leftovers:
        await asyncio.to_thread(_unlink, path)
    removed = await discard(db, data_dir, digests, older_than=grace_seconds) if digests else 0
    if removed or leftovers:
        log.info("swept %d orphaned uploads and %d temporary files", removed, len(leftovers))
    return removed


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


__all__ = ["DISCARD_BATCH", "FILE_LOCK_SPACE", "discard", "hold", "lock", "referenced", "stored_files", "sweep"]
