"""`BulkWrite` / `Database.execute_many`: many rows through the driver's executemany inside a write transaction —
the same stored values as SQLAlchemy's own executemany, on SQLite and PostgreSQL; counts, upserts, updates,
constants, rollback, and the mistakes it refuses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Date, Integer, MetaData, String, Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gateway.storage import BulkWrite, Database, UTCDateTime

scratch = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        scratch,
        Column("id", String(32), primary_key=True),
        Column("kind", String(20), nullable=False),
        Column("amount", Integer, nullable=True),
        Column("flag", Boolean, nullable=False),
        Column("due", Date, nullable=True),
        Column("at", UTCDateTime, nullable=True),
        Column("extra", JSON, nullable=True),
    )


items = _table("scratch_items")
mirror = _table("scratch_mirror")  # filled through SQLAlchemy's own executemany, for comparison
BEIJING = timezone(timedelta(hours=8))


def _rows(n: int, *, kind: str = "k") -> list[dict[str, Any]]:
    at = datetime(2026, 3, 2, 9, 30, 1, 5, tzinfo=BEIJING)
    return [
        {
            "id": f"i{i:04d}",
            "kind": kind,
            "amount": i if i % 3 else None,
            "flag": i % 2 == 0,
            "due": date(2026, 1, 1) + timedelta(days=i % 5) if i % 4 else None,
            "at": at + timedelta(seconds=i % 7) if i % 5 else None,
            "extra": {"i": i, "名": ["一", None]} if i % 2 else None,
        }
        for i in range(n)
    ]


async def _stored(db: Database, table: Table) -> list[tuple[Any, ...]]:
    async with db.read() as conn:
        return [tuple(r) for r in await conn.execute(select(table).order_by(table.c.id))]


def _upsert(db: Database) -> BulkWrite:
    insert = (sqlite.insert if db.dialect == "sqlite" else postgresql.insert)(items)
    return BulkWrite(
        insert.on_conflict_do_update(
            index_elements=[items.c.id],
            set_={"amount": insert.excluded.amount, "kind": insert.excluded.kind},
            where=insert.excluded.amount > items.c.amount,  # only a larger amount replaces the stored one
        ),
        name="test.upsert",
    )


@pytest.fixture
async def db(database: Database) -> Database:
    async with database.transaction() as conn:
        await conn.run_sync(scratch.create_all)
    return database


async def test_stores_what_sqlalchemys_executemany_stores(db: Database) -> None:
    rows = _rows(250)
    write = BulkWrite(items.insert(), name="test.insert")
    async with db.transaction() as conn:
        written = await db.execute_many(conn, write, rows)
        await conn.execute(mirror.insert(), rows)  # SQLAlchemy's own path, for comparison
    assert written == (250 if db.dialect == "sqlite" else -1)  # asyncpg does not count an executemany
    stored = await _stored(db, items)
    assert stored == await _stored(db, mirror)
    first = next(r for r in stored if r[0] == "i0001")
    assert first[1:] == (
        "k",
        1,
        False,
        date(2026, 1, 2),
        datetime(2026, 3, 2, 1, 30, 2, 5, tzinfo=UTC),
        {"i": 1, "名": ["一", None]},
    )


async def test_one_row_is_counted_on_both_databases(db: Database) -> None:
    write = BulkWrite(items.insert())
    async with db.transaction() as conn:
        assert await db.execute_many(conn, write, _rows(1)) == 1
        assert await db.execute_many(conn, write, []) == 0  # nothing to run


async def test_upsert_counts_only_the_rows_it_wrote(db: Database) -> None:
    write = _upsert(db)
    async with db.transaction() as conn:
        await db.execute_many(conn, write, _rows(10))
    again = [
        dict(row, amount=(row["amount"] or 0) + (100 if i < 4 else -100), kind="new") for i, row in enumerate(_rows(10))
    ]
    async with db.transaction() as conn:
        written = await db.execute_many(conn, write, again)
    # Rows 0-3 come with a larger amount, but a stored NULL compares as unknown: i0001 and i0002 are replaced, i0000
    # and i0003 are not; rows 4-9 come with smaller amounts: kept.
    assert written == (2 if db.dialect == "sqlite" else -1)
    kinds = {r[0]: (r[1], r[2]) for r in await _stored(db, items)}
    assert kinds["i0001"] == ("new", 101) and kinds["i0002"] == ("new", 102)
    assert kinds["i0000"] == ("k", None) and kinds["i0004"] == ("k", 4)
    async with db.transaction() as conn:  # one row: counted on PostgreSQL too, skipped conflicts not counted
        assert await db.execute_many(conn, write, [dict(again[5], amount=1)]) == 0
        assert await db.execute_many(conn, write, [dict(again[5], amount=500)]) == 1


async def test_updates_by_named_parameters_used_twice_and_constants(db: Database) -> None:
    async with db.transaction() as conn:
        await db.execute_many(conn, BulkWrite(items.insert()), _rows(6))
    bump = BulkWrite(
        items.update()
        .where(items.c.id == bindparam("b_id"), items.c.kind == "k")  # "k": a constant of the statement
        .values(amount=bindparam("b_amount"), due=bindparam("b_due"), flag=True, kind="bumped")
        .where((items.c.amount.is_(None)) | (items.c.amount < bindparam("b_amount"))),  # b_amount twice
        name="test.bump",
    )
    rows = [{"b_id": f"i{i:04d}", "b_amount": 3, "b_due": date(2027, 1, 1)} for i in range(6)]
    async with db.transaction() as conn:
        written = await db.execute_many(conn, bump, rows)
    # Stored amounts: NULL, 1, 2, NULL, 4, 5 — the first four are NULL or below 3.
    assert written == (4 if db.dialect == "sqlite" else -1)
    stored = {r[0]: r for r in await _stored(db, items)}
    bumped = sorted(i for i, r in stored.items() if r[1] == "bumped")
    assert bumped == ["i0000", "i0001", "i0002", "i0003"]
    assert all(stored[i][2] == 3 and stored[i][3] is True and stored[i][4] == date(2027, 1, 1) for i in bumped)


async def test_rows_are_part_of_the_transaction(db: Database) -> None:
    write = BulkWrite(items.insert())
    with pytest.raises(RuntimeError, match="roll back"):
        async with db.transaction() as conn:
            await db.execute_many(conn, write, _rows(20))
            raise RuntimeError("roll back")
    assert await _stored(db, items) == []
    with pytest.raises(IntegrityError):  # a duplicate key fails the statement and the transaction
        async with db.transaction() as conn:
            await db.execute_many(conn, write, _rows(3) + _rows(1))
    assert await _stored(db, items) == []


async def test_rows_converted_before_the_transaction(db: Database) -> None:
    write = BulkWrite(items.insert())
    bound = db.bulk_rows(write, _rows(30))
    assert len(bound) == 30
    async with db.transaction() as conn:
        await db.execute_many(conn, write, bound)
    assert len(await _stored(db, items)) == 30
    with pytest.raises(ValueError, match="another statement"):
        async with db.transaction() as conn:
            await db.execute_many(conn, BulkWrite(mirror.insert()), bound)


async def test_refuses_what_it_cannot_do(db: Database) -> None:
    write = BulkWrite(items.insert(), name="test.insert")
    with pytest.raises(RuntimeError, match=r"inside Database\.transaction"):
        async with db.engine.connect() as conn:
            await db.execute_many(conn, write, _rows(2))
    rows = _rows(2)
    del rows[1]["flag"]
    with pytest.raises(ValueError, match=r"test\.insert: a row lacks 'flag'"):
        db.bulk_rows(write, rows)
    with pytest.raises(ValueError, match="RETURNING"):
        BulkWrite(items.insert().returning(items.c.id))
    with pytest.raises(TypeError):
        BulkWrite(select(items.c.id))  # type: ignore[arg-type]
    expanding = BulkWrite(delete(items).where(items.c.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="expanding"):
        db.bulk_rows(expanding, [{"ids": ["a"]}])
