"""Re-encryption of every registered encrypted column under the active data key (`onewindow keys rotate`).

For each table in `gateway.privacy.registry`, rows whose values are not yet under the active key are read in
batches (keyset pagination on the id column, one short read transaction per batch), decrypted, encrypted
again and written back in one write transaction per batch. Each update is a compare-and-swap
(``WHERE id = :id AND column = :old``): a value a running gateway changed meanwhile is left alone rather than
overwritten with stale data, and a later pass picks it up if it is still under an old key. Values that do not
decrypt are counted and named (table, column, row id — never the value) and left as they are.

Old keys stay in the ring: values written by a gateway that has not yet noticed the new key, backups and
idempotency records still need them. `key_usage` tells when a key is no longer used by any column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, and_, case, column, func, inspect, not_, or_, select, table, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.privacy.fields import DecryptionError, FieldCipher
from gateway.privacy.registry import EncryptedColumn, encrypted_columns
from gateway.storage.database import Database

DEFAULT_BATCH_SIZE = 500
#: Passes over the data at most; a second pass only finds values written under the old key during the first.
MAX_PASSES = 3
#: At most this many failing rows are named per column in a report.
MAX_NAMED_FAILURES = 20


class ColumnRotation(msgspec.Struct, kw_only=True):
    table: str
    column: str
    reencrypted: int = 0
    #: Changed by someone else between our read and our write; left for the next pass.
    changed_meanwhile: int = 0
    failed: int = 0
    failed_rows: list[str] = msgspec.field(default_factory=list)


class RotationReport(msgspec.Struct, kw_only=True):
    active_key_id: str
    columns: list[ColumnRotation]
    missing_tables: list[str] = msgspec.field(default_factory=list)
    #: Values not under the active key after the last pass (failures included).
    remaining: int = 0
    passes: int = 0

    @property
    def reencrypted(self) -> int:
        return sum(c.reencrypted for c in self.columns)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.columns)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.remaining == 0


class ColumnUsage(msgspec.Struct, kw_only=True):
    table: str
    column: str
    total: int
    #: Values per data key id; ``"other"`` counts values that are not tokens of a key in the ring.
    by_key: dict[str, int]


def _group(columns: Iterable[EncryptedColumn]) -> dict[str, tuple[str, list[str]]]:
    tables: dict[str, tuple[str, list[str]]] = {}
    for entry in columns:
        id_column, names = tables.setdefault(entry.table, (entry.id_column, []))
        if id_column != entry.id_column:
            raise ValueError(f"table {entry.table!r} registers columns with two id columns")
        names.append(entry.column)
    return tables


async def _existing_tables(db: Database, names: Iterable[str]) -> set[str]:
    async with db.read() as conn:
        present: set[str] = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return {n for n in names if n in present}


def _not_under(col: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    return and_(col.is_not(None), not_(col.startswith(prefix, autoescape=True)))


async def reencrypt_all(
    db: Database,
    cipher: FieldCipher,
    *,
    columns: Iterable[EncryptedColumn] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_passes: int = MAX_PASSES,
    progress: Callable[[str, str, int], None] | None = None,
) -> RotationReport:
    """Bring every value of the registered columns (default: all) under the active key.

    ``progress(table, column, n)`` is called after each batch with the number of values re-encrypted in it.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    grouped = _group(encrypted_columns() if columns is None else columns)
    present = await _existing_tables(db, grouped)
    reports = {
        (name, col): ColumnRotation(table=name, column=col)
        for name, (_, cols) in grouped.items()
        if name in present
        for col in cols
    }
    report = RotationReport(
        active_key_id=cipher.keyring.active_key_id,
        columns=list(reports.values()),
        missing_tables=sorted(set(grouped) - present),
    )
    failed_ids: dict[str, set[tuple[str, str]]] = {name: set() for name in present}
    for _ in range(max_passes):
        report.passes += 1
        done_this_pass = 0
        for name in sorted(present):
            id_column, cols = grouped[name]
            done_this_pass += await _rotate_table(
                db, cipher, name, id_column, cols, batch_size, reports, failed_ids[name], progress
            )
        report.remaining = await _remaining(db, cipher, grouped, present)
        if report.remaining <= sum(len(ids) for ids in failed_ids.values()) or done_this_pass == 0:
            break
    return report


async def _rotate_table(
    db: Database,
    cipher: FieldCipher,
    name: str,
    id_column: str,
    cols: list[str],
    batch_size: int,
    reports: dict[tuple[str, str], ColumnRotation],
    failed_ids: set[tuple[str, str]],
    progress: Callable[[str, str, int], None] | None,
) -> int:
    t = table(name, column(id_column), *(column(c) for c in cols))
    row_id_col = t.c[id_column]
    done = 0
    last_id: Any = None
    while True:
        prefix = cipher.token_prefix()
        query = select(row_id_col, *(t.c[c] for c in cols)).where(or_(*(_not_under(t.c[c], prefix) for c in cols)))
        if last_id is not None:
            query = query.where(row_id_col > last_id)
        query = query.order_by(row_id_col).limit(batch_size)
        async with db.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return done
        last_id = rows[-1][0]
        changes: dict[str, list[tuple[Any, str, str]]] = {c: [] for c in cols}
        for row in rows:
            row_id = row[0]
            for position, col in enumerate(cols, start=1):
                value = row[position]
                rid = str(row_id)
                if value is None or value.startswith(prefix) or (col, rid) in failed_ids:
                    continue
                try:
                    new = cipher.reencrypt(value, table=name, column=col, row_id=rid)
                except DecryptionError:
                    failed_ids.add((col, rid))
                    entry = reports[(name, col)]
                    entry.failed += 1
                    if len(entry.failed_rows) < MAX_NAMED_FAILURES:
                        entry.failed_rows.append(rid)
                    continue
                changes[col].append((row_id, value, new))
        async with db.transaction() as conn:
            for col, items in changes.items():
                written = await _swap(conn, t, row_id_col, col, items)
                entry = reports[(name, col)]
                entry.reencrypted += written
                entry.changed_meanwhile += len(items) - written
                done += written
                if progress is not None and items:
                    progress(name, col, written)


async def _swap(conn: AsyncConnection, t: Any, row_id_col: Any, col: str, items: list[tuple[Any, str, str]]) -> int:
    written = 0
    target = t.c[col]
    for row_id, old, new in items:
        result = await conn.execute(update(t).where(row_id_col == row_id, target == old).values({col: new}))
        written += result.rowcount or 0
    return written


async def _remaining(
    db: Database, cipher: FieldCipher, grouped: dict[str, tuple[str, list[str]]], present: set[str]
) -> int:
    prefix = cipher.token_prefix()
    total = 0
    async with db.read() as conn:
        for name in present:
            id_column, cols = grouped[name]
            t = table(name, column(id_column), *(column(c) for c in cols))
            for col in cols:
                count = (await conn.execute(select(func.count()).where(_not_under(t.c[col], prefix)))).scalar_one()
                total += int(count)
    return total


async def key_usage(
    db: Database, cipher: FieldCipher, *, columns: Iterable[EncryptedColumn] | None = None
) -> tuple[list[ColumnUsage], list[str]]:
    """How many values each data key encrypts, per registered column; and the registered tables not found."""
    grouped = _group(encrypted_columns() if columns is None else columns)
    present = await _existing_tables(db, grouped)
    usage: list[ColumnUsage] = []
    key_ids = cipher.keyring.key_ids
    async with db.read() as conn:
        for name in sorted(present):
            id_column, cols = grouped[name]
            t = table(name, column(id_column), *(column(c) for c in cols))
            for col in cols:
                target = t.c[col]
                counts: list[Any] = [func.count(target)]
                counts += [
                    func.sum(case((target.startswith(cipher.token_prefix(k), autoescape=True), 1), else_=0))
                    for k in key_ids
                ]
                row = (await conn.execute(select(*counts).select_from(t))).one()
                total = int(row[0] or 0)
                by_key = {k: int(row[i + 1] or 0) for i, k in enumerate(key_ids)}
                other = total - sum(by_key.values())
                if other:
                    by_key["other"] = other
                usage.append(ColumnUsage(table=name, column=col, total=total, by_key=by_key))
    return usage, sorted(set(grouped) - present)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ColumnRotation",
    "ColumnUsage",
    "RotationReport",
    "key_usage",
    "reencrypt_all",
]
