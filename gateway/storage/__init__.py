"""Storage: one schema (SQLAlchemy Core on `metadata`), one migration history (Alembic), SQLite or PostgreSQL.

Public API::

    from gateway.storage import Database, DatabaseBusy, metadata, new_id, utcnow, UTCDateTime, IdType

    db = Database.from_settings(settings)          # the app's is context_of(app).database
    async with db.transaction() as conn: ...       # one write transaction (BEGIN IMMEDIATE on SQLite)
    async with db.read() as conn: ...              # reads only (READ ONLY on PostgreSQL)
    row = (await conn.execute(locked(select(t).where(t.c.id == i), conn))).first()   # FOR UPDATE on PostgreSQL
    LOOKUP = PreparedRead(select(...).where(t.c.number == bindparam("number")))   # built once, module level
    rows = await db.fetch(LOOKUP, number=n)        # one short read; on SQLite inline, no worker thread
    BY_NUMBER = KeyedRead(LOOKUP, LOOKUP_MANY, column="number")   # the same read for a list of keys too
    rows = await db.fetch_keyed(BY_NUMBER, n)      # concurrent lookups share one query
    UPSERT = BulkWrite(insert(t).on_conflict_do_update(...))                    # built once
    async with db.transaction() as conn:
        await db.execute_many(conn, UPSERT, rows)  # many rows, the driver's executemany, in the transaction
    stage = before_commit(conn)                    # steps run after the block, before COMMIT (the audit batch)

Rules: keep write transactions short and free of network calls (on SQLite every writer waits for the current
one); never open a transaction inside another in the same task (the audit records are written at its end, just
before the commit: `before_commit`). Domains use these calls only: no database driver (``sqlite3``, aiosqlite,
asyncpg) and no SQLAlchemy dialect internals outside this package. A change that depends on what the transaction
read is locked (`locked`) or conditional (``UPDATE … WHERE status = …``, its row count checked): PostgreSQL runs
writers side by side, and a check on an unlocked read lets every one through.

Adding a domain's tables
------------------------
1. ``gateway/<domain>/tables.py``: ``Table("things", metadata, Column("id", IdType(), primary_key=True), ...)``
   with portable types (String, Text, Integer, BigInteger, Boolean, Date, `UTCDateTime`, LargeBinary, JSON) and
   ids from `new_id()` assigned before the insert. Constraint and index names follow `NAMING_CONVENTION`.
2. Add ``"gateway.<domain>.tables"`` to `gateway.storage.tables.DOMAIN_TABLE_MODULES` (one line).
3. A revision in ``gateway/storage/migrations/versions/<domain>_0001_<what>.py`` with
   ``revision = "<domain>_0001"``, ``down_revision = "0001_foundation"``, ``branch_labels = ("<domain>",)`` and
   ``depends_on = ("<other>_0001",)`` when its foreign keys point at another domain's tables. Later changes:
   ``down_revision = "<domain>_0001"`` and so on. Write it by hand (copy ``script.py.mako``) or generate it:
   ``ONEWINDOW_DATA_DIR=$(mktemp -d) python -m gateway.storage.migrate upgrade heads`` then ``… revision
   --autogenerate -m "<what>" --head 0001_foundation --splice --branch-label <domain> --rev-id <domain>_0001``
   (later: ``--head <domain>@head``) against that empty data dir, and review it. Use ``sa.DateTime(timezone=True)``
   (never our TypeDecorators) in migrations; on SQLite, ALTERs go through ``op.batch_alter_table``.
4. tests/gateway/storage/test_migrations.py fails until migrations and metadata agree, on both databases.
"""

from __future__ import annotations

from gateway.storage.bulk import BulkRows, BulkWrite
from gateway.storage.commit import CommitStage, before_commit
from gateway.storage.database import Database, DatabaseBusy, locked
from gateway.storage.metadata import ID_LENGTH, NAMING_CONVENTION, IdType, UTCDateTime, metadata, new_id, utcnow
from gateway.storage.prepared import KeyedRead, PreparedRead, ReadRow

__all__ = [
    "ID_LENGTH",
    "NAMING_CONVENTION",
    "BulkRows",
    "BulkWrite",
    "CommitStage",
    "Database",
    "DatabaseBusy",
    "IdType",
    "KeyedRead",
    "PreparedRead",
    "ReadRow",
    "UTCDateTime",
    "before_commit",
    "locked",
    "metadata",
    "new_id",
    "utcnow",
]
