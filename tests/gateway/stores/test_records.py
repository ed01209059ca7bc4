"""`IdempotencyRecords` on SQLite and PostgreSQL: a record commits or rolls back with its transaction, one live
record per key, expired ones are replaced and purged."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from sqlalchemy import func, select

from gateway.storage import Database, utcnow
from gateway.stores.lifespan import purge_interval
from gateway.stores.records import IdempotencyRecords, KeyTaken, StoredRecord
from gateway.stores.tables import idempotency_records


def record(
    key: str = "k" * 64, *, fingerprint: bytes = b"f" * 32, ttl: float = 3600, **changes: object
) -> StoredRecord:
    now = utcnow()
    base = StoredRecord(
        principal="token:abc",
        key=key,
        fingerprint=fingerprint,
        status=201,
        response=b"E-sealed-answer",
        created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl),
    )
    return msgspec.structs.replace(base, **changes)


async def count(database: Database) -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(idempotency_records))).scalar_one())


async def test_a_record_commits_and_rolls_back_with_its_transaction(database: Database) -> None:
    records = IdempotencyRecords(database)

    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        async with database.transaction() as conn:
            await records.insert(conn, record())
            raise Refused
    assert await records.find("token:abc", "k" * 64) is None and await count(database) == 0

    async with database.transaction() as conn:
        await records.insert(conn, record())
    found = await records.find("token:abc", "k" * 64)
    assert found is not None
    assert (found.fingerprint, found.status, found.response) == (b"f" * 32, 201, b"E-sealed-answer")
    assert found.expires_at.tzinfo is not None
    # Scoped by principal: another caller's key of the same name is another record.
    assert await records.find("token:other", "k" * 64) is None


async def test_one_live_record_per_key(database: Database) -> None:
    records = IdempotencyRecords(database)
    async with database.transaction() as conn:
        await records.insert(conn, record())
    with pytest.raises(KeyTaken) as taken:
        async with database.transaction() as conn:
            await records.insert(conn, record(fingerprint=b"g" * 32))
    assert taken.value.status == 409
    found = await records.find("token:abc", "k" * 64)
    assert found is not None and found.fingerprint == b"f" * 32


async def test_save_replaces_the_same_request_only(database: Database) -> None:
    records = IdempotencyRecords(database)
    assert await records.save(record())
    assert await records.save(record(response=b"E-as-sent"))  # the same request's answer as sent supersedes
    assert not await records.save(record(fingerprint=b"g" * 32, response=b"E-other"))  # another request's: no
    found = await records.find("token:abc", "k" * 64)
    assert found is not None and found.response == b"E-as-sent" and await count(database) == 1


async def test_expired_records_are_not_answered_are_replaced_and_purged(database: Database) -> None:
    records = IdempotencyRecords(database)
    async with database.transaction() as conn:
        await records.insert(conn, record("a" * 64, ttl=-1))
        await records.insert(conn, record("b" * 64, ttl=-1))
        await records.insert(conn, record("c" * 64, ttl=-1))
        await records.insert(conn, record("d" * 64))
    assert await records.find("token:abc", "a" * 64) is None
    # A new request may use an expired key: its record replaces the old row.
    async with database.transaction() as conn:
        await records.insert(conn, record("a" * 64, fingerprint=b"n" * 32))
    found = await records.find("token:abc", "a" * 64)
    assert found is not None and found.fingerprint == b"n" * 32
    assert await records.purge(batch=1) == 2  # b and c, one per transaction
    assert await count(database) == 2
    later = IdempotencyRecords(database, now=lambda: utcnow() + dt.timedelta(hours=2))
    assert await later.purge() == 2 and await count(database) == 0


def test_the_purge_runs_every_quarter_ttl_within_a_minute_and_an_hour() -> None:
    assert purge_interval(24 * 3600) == 3600
    assert purge_interval(1200) == 300
    assert purge_interval(1) == 60
