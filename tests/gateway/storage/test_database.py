"""The storage layer on SQLite and PostgreSQL: pragmas, transactions, read-only reads, time, ids, concurrency."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import DBAPIError, StatementError

from gateway.settings import Settings
from gateway.storage import Database, DatabaseBusy, UTCDateTime, new_id, utcnow

scratch = MetaData()
counters = Table(
    "scratch_counters",
    scratch,
    Column("name", String(20), primary_key=True),
    Column("value", Integer, nullable=False),
)
moments = Table("scratch_moments", scratch, Column("id", String(32), primary_key=True), Column("at", UTCDateTime))


async def _scratch_tables(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(scratch.create_all)
        await conn.execute(insert(counters).values(name="c", value=0))


def test_new_id_is_32_hex_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(2000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(i[12] == "7" and i[16] in "89ab" for i in ids)  # UUIDv7 version and variant nibbles
    # The millisecond prefix never goes backwards.
    prefixes = [i[:12] for i in ids]
    assert prefixes == sorted(prefixes)


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_from_url_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Database.from_url("mysql+aiomysql://u@localhost/db")
    with pytest.raises(ValueError, match="PostgreSQL only"):
        Database.from_url("sqlite:///x.db", schema="s")


async def test_sqlite_connections_get_the_pragmas(settings: Settings) -> None:
    db = Database.from_settings(settings)
    try:
        assert db.dialect == "sqlite"
        assert (settings.data_dir / "onewindow.sqlite3").parent.is_dir()
        async with db.read() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await db.dispose()


async def test_transaction_commits_or_rolls_back(database: Database) -> None:
    await _scratch_tables(database)
    async with database.transaction() as conn:
        await conn.execute(update(counters).values(value=1))
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await conn.execute(update(counters).values(value=99))
            raise RuntimeError("boom")
    async with database.read() as conn:
        assert (await conn.execute(select(counters.c.value))).scalar_one() == 1


async def test_read_then_write_transactions_never_lose_updates(database: Database) -> None:
    """Each task reads the counter, yields, then writes it + 1: with BEGIN IMMEDIATE (SQLite) / a row lock
    (PostgreSQL) no update is lost and no transaction fails with a lock error."""
    await _scratch_tables(database)

    async def bump() -> None:
        async with database.transaction() as conn:
            query = select(counters.c.value).where(counters.c.name == "c")
            if database.dialect == "postgresql":
                query = query.with_for_update()
            value = (await conn.execute(query)).scalar_one()
            await asyncio.sleep(0)
            await conn.execute(update(counters).values(value=value + 1))

    await asyncio.gather(*(bump() for _ in range(40)))
    async with database.read() as conn:
        assert (await conn.execute(select(counters.c.value))).scalar_one() == 40


async def test_read_is_read_only_on_postgresql(database: Database) -> None:
    await _scratch_tables(database)
    if database.dialect != "postgresql":
        pytest.skip("SQLite reads are plain deferred transactions")
    with pytest.raises(DBAPIError, match="read-only"):
        async with database.read() as conn:
            await conn.execute(update(counters).values(value=5))
    # The pooled connection is writable again afterwards.
    async with database.transaction() as conn:
        await conn.execute(update(counters).values(value=6))


async def test_utc_datetime_round_trips_aware(database: Database) -> None:
    await _scratch_tables(database)
    beijing = timezone(timedelta(hours=8))
    at = datetime(2026, 2, 14, 9, 30, 15, 123456, tzinfo=beijing)
    async with database.transaction() as conn:
        await conn.execute(insert(moments).values(id="a", at=at))
    async with database.read() as conn:
        stored = (await conn.execute(select(moments.c.at))).scalar_one()
    assert stored == at and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == datetime(2026, 2, 14, 1, 30, 15, 123456, tzinfo=UTC)
    with pytest.raises(StatementError, match="naive datetime"):
        async with database.transaction() as conn:
            await conn.execute(insert(moments).values(id="b", at=datetime(2026, 1, 1)))


async def test_busy_writer_answers_database_busy(busy_error: DatabaseBusy) -> None:
    assert busy_error.status == 503 and busy_error.headers["Retry-After"] == "1"


async def test_ping_and_describe(database: Database) -> None:
    await database.ping()
    assert "password" not in database.describe()
    assert database.describe().startswith(("sqlite+aiosqlite", "postgresql+asyncpg"))
