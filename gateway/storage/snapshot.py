"""A consistent copy of the embedded SQLite database while the gateway keeps running: SQLite's online backup API.

The copy is taken in one step under a read transaction (WAL mode: writers go on meanwhile, and what they commit
after the step began is not in the copy), written to a temporary file, fsynced and renamed into place, mode 0600.
PostgreSQL is copied with its own tools (``pg_dump``/``pg_restore``; see docs/resilience.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy the SQLite database ``source`` to the new file ``target`` (which must not exist). Blocking."""
    if target.exists():
        raise FileExistsError(f"{target} exists already")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with (
            contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(tmp)) as dst,
        ):
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.link(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def sqlite_self_contained(path: Path) -> None:
    """Leave the SQLite file in rollback-journal mode: one file, nothing beside it (opening it through `Database`
    turns WAL on). Blocking."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")


def sqlite_integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file: ``"ok"`` or the first problem. Blocking."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        row = conn.execute("PRAGMA integrity_check").fetchone()
    return str(row[0]) if row else "no answer"


__all__ = ["sqlite_integrity", "sqlite_self_contained", "sqlite_snapshot"]
