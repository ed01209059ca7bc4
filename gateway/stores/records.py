"""`IdempotencyRecords`: the durable half of ``Idempotency-Key`` — rows of ``idempotency_records`` in the database.

The fast store (memory or Redis, `gateway.stores.idempotency`) holds the in-flight lease and a cached copy of each
kept answer; this table is the copy that survives a crash or a flushed Redis. A row is written by `insert`
*inside the transaction of the change it protects* (through the request's `IdempotentRequest`), so the row and the
change commit together or not at all; `save` writes one in a transaction of its own for routes whose services do
not take part. Reads go through `Database.fetch` (inline on SQLite: no writer's turn, no worker thread).

`insert` is also the last line of defence against running a request twice: the primary key (principal, key)
admits one live row, so a second request that got past the fast store (an expired lease, two processes without a
shared Redis) fails with `KeyTaken` and its transaction — the duplicate change with it — rolls back. An expired
row still waiting for the purge does not count: it is replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.problems import Conflict
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.storage.prepared import PreparedRead
from gateway.stores.tables import idempotency_records as records_table

#: Rows deleted per purge transaction (a short turn for SQLite's one writer).
PURGE_BATCH = 1000


class KeyTaken(Conflict):
    """A live record already holds this caller's key: another request with it committed first."""


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row: ``response`` is the kept answer as `IdempotencyMiddleware` packs it (sealed when it has a cipher)."""

    principal: str
    key: str
    fingerprint: bytes
    status: int
    response: bytes
    created_at: dt.datetime
    expires_at: dt.datetime


_FIND = PreparedRead(
    select(
        records_table.c.principal,
        records_table.c.key,
        records_table.c.fingerprint,
        records_table.c.status,
        records_table.c.response,
        records_table.c.created_at,
        records_table.c.expires_at,
    ).where(
        records_table.c.principal == bindparam("principal"),
        records_table.c.key == bindparam("key"),
        records_table.c.expires_at > bindparam("now"),
    ),
    name="idempotency.find",
)


_REPLACED = ("fingerprint", "status", "response", "created_at", "expires_at")


def _upsert(dialect: str, record: StoredRecord, *, same_request_too: bool) -> Any:
    """``INSERT … ON CONFLICT (principal, key) DO UPDATE … WHERE`` the row there has expired (or, with
    ``same_request_too``, belongs to the same request): the row count is 1 when this record is now stored."""
    values = msgspec.structs.asdict(record)
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(records_table).values(**values)
    replaceable = records_table.c.expires_at <= record.created_at
    if same_request_too:
        replaceable = or_(replaceable, records_table.c.fingerprint == statement.excluded.fingerprint)
    return statement.on_conflict_do_update(
        index_elements=[records_table.c.principal, records_table.c.key],
        set_={name: statement.excluded[name] for name in _REPLACED},
        where=replaceable,
    )


class IdempotencyRecords:
    """The ``idempotency_records`` table of one database."""

    def __init__(self, database: Database, *, now: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = database
        self.now = now

    async def find(self, principal: str, key: str) -> StoredRecord | None:
        """The live record of ``principal``'s ``key``, or ``None`` (expired rows are not answered)."""
        row = await self.db.fetch_one(_FIND, principal=principal, key=key, now=self.now())
        if row is None:
            return None
        return StoredRecord(
            principal=row.principal,
            key=row.key,
            fingerprint=bytes(row.fingerprint),
            status=row.status,
            response=bytes(row.response),
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    @staticmethod
    async def insert(conn: AsyncConnection, record: StoredRecord) -> None:
        """Store ``record`` in the caller's transaction; `KeyTaken` (409) when a live record holds its key — then
        the transaction must roll back (the caller's exception does that)."""
        result = await conn.execute(_upsert(conn.dialect.name, record, same_request_too=False))
        if result.rowcount != 1:
            raise KeyTaken(
                "A request with this Idempotency-Key has already been completed; retry to see its answer.",
                headers={"Retry-After": "1"},
            )

    async def save(self, record: StoredRecord) -> bool:
        """Store ``record`` in a transaction of its own, replacing an expired row or one of the same request (its
        answer as sent supersedes the one written in the change's transaction). ``False`` when another request's
        live record holds the key."""
        async with self.db.transaction() as conn:
            result = await conn.execute(_upsert(conn.dialect.name, record, same_request_too=True))
            return bool(result.rowcount == 1)

    async def purge(self, *, batch: int = PURGE_BATCH) -> int:
        """Delete expired records, ``batch`` rows per transaction; the number deleted."""
        total = 0
        while True:
            now = self.now()
            async with self.db.transaction() as conn:
                expired = (
                    select(records_table.c.principal, records_table.c.key)
                    .where(records_table.c.expires_at <= now)
                    .limit(batch)
                )
                result = await conn.execute(
                    delete(records_table).where(tuple_(records_table.c.principal, records_table.c.key).in_(expired))
                )
            deleted = int(result.rowcount or 0)
            total += deleted
            if deleted < batch:
                return total


__all__ = ["PURGE_BATCH", "IdempotencyRecords", "KeyTaken", "StoredRecord"]
