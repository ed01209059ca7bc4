"""`Database.fetch` / `PreparedRead`: the same rows as the engine's path on SQLite and PostgreSQL, always the newest
committed data (another connection's, another process's), never an uncommitted write, never blocked by a writer;
on SQLite inline on the calling thread, falling back to aiosqlite when busy or over budget; closed by dispose."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gateway.settings import Settings
from gateway.storage import Database, PreparedRead, UTCDateTime
from gateway.storage.inline import InlineReader

scratch = MetaData()
things = Table(
    "scratch_things",
    scratch,
    Column("id", String(32), primary_key=True),
    Column("kind", String(20), nullable=False, index=True),
    Column("amount", Integer, nullable=True),
    Column("flag", Boolean, nullable=False),
    Column("due", Date, nullable=True),
    Column("at", UTCDateTime, nullable=True),
    Column("extra", JSON, nullable=True),
)
tags = Table(
    "scratch_tags",
    scratch,
    Column("thing_id", String(32), primary_key=True),
    Column("tag", String(20), primary_key=True),
)
counters = Table(
    "scratch_counters",
    scratch,
    Column("name", String(20), primary_key=True),
    Column("value", Integer, nullable=False),
)

BY_KIND = PreparedRead(
    select(
        things.c.id,
        things.c.amount,
        things.c.flag,
        things.c.due,
        things.c.at,
        things.c.extra,
        exists().where(tags.c.thing_id == things.c.id).label("tagged"),
    )
    .where(things.c.kind == bindparam("kind"), things.c.id != "hidden")
    .order_by(things.c.id)
    .limit(10),
    name="test.by_kind",
)
COUNTER = PreparedRead(select(counters.c.value).where(counters.c.name == bindparam("name")), name="test.counter")
BEIJING = timezone(timedelta(hours=8))


async def _scratch_tables(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(scratch.create_all)
        await conn.execute(
            insert(things),
            [
                {
                    "id": "a",
                    "kind": "k",
                    "amount": 3,
                    "flag": True,
                    "due": date(2026, 3, 2),
                    "at": datetime(2026, 3, 2, 9, 30, 1, 5, tzinfo=BEIJING),
                    "extra": {"x": [1, "二"]},
                },
                {"id": "b", "kind": "k", "amount": None, "flag": False, "due": None, "at": None, "extra": None},
                {"id": "hidden", "kind": "k", "amount": 1, "flag": True, "due": None, "at": None, "extra": None},
                {"id": "c", "kind": "other", "amount": 9, "flag": True, "due": None, "at": None, "extra": None},
            ],
        )
        await conn.execute(insert(tags), [{"thing_id": "a", "tag": "t"}, {"thing_id": "a", "tag": "u"}])
        await conn.execute(insert(counters), [{"name": "c", "value": 0}, {"name": "d", "value": 0}])


async def _engine_rows(db: Database, query: PreparedRead, **params: object) -> list[tuple[object, ...]]:
    async with db.read() as conn:
        return [tuple(r) for r in await conn.execute(query.statement, params)]


async def _counter(db: Database, name: str) -> int | None:
    row = await db.fetch_one(COUNTER, name=name)
    return None if row is None else int(row.value)


def _served(db: Database) -> int:
    return db.inline.served if db.inline is not None else 0


async def test_fetch_gives_the_engines_rows(database: Database) -> None:
    await _scratch_tables(database)
    served = _served(database)
    rows = await database.fetch(BY_KIND, kind="k")
    assert [tuple(r) for r in rows] == await _engine_rows(database, BY_KIND, kind="k")
    a, b = rows
    assert (a.id, a.amount, a.flag, a.due, a.tagged, a.extra) == (
        "a",
        3,
        True,
        date(2026, 3, 2),
        True,
        {"x": [1, "二"]},
    )
    assert a.at == datetime(2026, 3, 2, 1, 30, 1, 5, tzinfo=UTC) and a.at.tzinfo is not None
    assert (b.amount, b.flag, b.due, b.at, b.extra, b.tagged) == (None, False, None, None, None, False)
    assert a._mapping["id"] == "a" and a[0] == "a" and a._asdict()["amount"] == 3
    assert await database.fetch(BY_KIND, kind="nothing") == []
    assert await _counter(database, "c") == 0
    assert await database.fetch_one(COUNTER, name="missing") is None
    if database.dialect == "sqlite":
        assert _served(database) == served + 4  # inline, not through aiosqlite
        assert database.inline is not None and database.inline.deferred == 0


async def test_fetch_of_a_join_gives_every_row_its_values(database: Database) -> None:
    """The parent's columns repeat on each joined row (converted once, shared): every row still reads right."""
    await _scratch_tables(database)
    async with database.transaction() as conn:
        await conn.execute(insert(tags), [{"thing_id": "b", "tag": "t"}, {"thing_id": "c", "tag": "t"}])
    joined = PreparedRead(
        select(things.c.id, things.c.due, things.c.at, things.c.flag, things.c.extra, tags.c.tag)
        .join(tags, tags.c.thing_id == things.c.id)
        .where(tags.c.tag >= bindparam("from_tag"))
        .order_by(things.c.id, tags.c.tag)
    )
    rows = await database.fetch(joined, from_tag="a")
    assert [tuple(r) for r in rows] == await _engine_rows(database, joined, from_tag="a")
    assert [(r.id, r.tag, r.due, r.flag) for r in rows] == [
        ("a", "t", date(2026, 3, 2), True),
        ("a", "u", date(2026, 3, 2), True),
        ("b", "t", None, False),
        ("c", "t", None, True),
    ]


async def test_fetch_checks_its_parameters(database: Database) -> None:
    await _scratch_tables(database)
    with pytest.raises(TypeError, match=r"missing \['kind'\]"):
        await database.fetch(BY_KIND)
    with pytest.raises(TypeError, match=r"unknown \['knid'\]"):
        await database.fetch(BY_KIND, kind="k", knid="k")
    # A named parameter with a default may be given or left out.
    limited = PreparedRead(select(things.c.id).order_by(things.c.id).limit(bindparam("n", value=2)))
    assert [r.id for r in await database.fetch(limited)] == ["a", "b"]
    assert [r.id for r in await database.fetch(limited, n=1)] == ["a"]


def test_prepared_read_needs_distinct_identifier_columns() -> None:
    with pytest.raises(ValueError, match="label"):
        PreparedRead(select(things.c.id, tags.c.thing_id.label("id")))
    with pytest.raises(TypeError):
        PreparedRead(update(things).values(amount=1))  # type: ignore[arg-type]


async def test_fetch_sees_other_connections_commits_at_once(database: Database, db_settings: Settings) -> None:
    await _scratch_tables(database)
    other = Database.from_settings(db_settings)  # its own pool: another connection, as another process has
    try:
        for value in range(1, 30):
            async with other.transaction() as conn:
                await conn.execute(update(counters).where(counters.c.name == "c").values(value=value))
            assert await _counter(database, "c") == value
    finally:
        await other.dispose()


async def test_fetch_leaves_pooled_connections_transactional(db_settings: Settings) -> None:
    """Through the engine (the fallback path) PostgreSQL reads run in autocommit mode: the connection goes back to
    the pool transactional again, so a write transaction on it still rolls back as a whole."""
    db = Database.from_url(
        db_settings.sqlalchemy_url,
        schema=db_settings.database_schema,
        inline_reads=False,
        pool_size=1,
        max_overflow=0,
    )  # one connection: the write below gets the one the read used
    assert db.inline is None and db.pg_reader is None
    try:
        await _scratch_tables(db)
        assert await _counter(db, "c") == 0
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute(update(counters).where(counters.c.name == "c").values(value=5))
                raise RuntimeError("roll back")
        assert await _counter(db, "c") == 0
        if db.dialect == "postgresql":
            with pytest.raises(DBAPIError, match="read-only"):
                async with db.read() as conn:
                    await conn.execute(update(counters).values(value=6))
    finally:
        await db.dispose()


@contextlib.contextmanager
def _writer_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process writing the SQLite file with the standard library alone: each line of stdin is a value,
    committed before it answers ``ok``."""
    script = (
        "import sqlite3, sys\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "db.execute('PRAGMA busy_timeout=5000')\n"
        "for line in sys.stdin:\n"
        "    db.execute('BEGIN IMMEDIATE')\n"
        "    db.execute(\"UPDATE scratch_counters SET value = ? WHERE name = 'c'\", (int(line),))\n"
        "    db.execute('COMMIT')\n"
        "    print('ok', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


async def test_sqlite_fetch_sees_another_process_commit_at_once(database: Database) -> None:
    if database.dialect != "sqlite":
        pytest.skip("the SQLite inline reader's freshness across processes")
    await _scratch_tables(database)
    path = Path(str(database.engine.url.database))
    assert await _counter(database, "c") == 0  # the inline connection is open from here on
    with _writer_process(path) as writer:
        assert writer.stdin is not None and writer.stdout is not None
        for value in range(1, 40):
            writer.stdin.write(f"{value}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "ok"
            assert await _counter(database, "c") == value
    assert database.inline is not None and database.inline.deferred == 0


async def test_fetch_never_sees_uncommitted_writes_nor_waits_for_them(database: Database) -> None:
    await _scratch_tables(database)
    served = _served(database)
    async with database.transaction() as conn:
        await conn.execute(update(counters).where(counters.c.name == "c").values(value=41))
        # The writer holds SQLite's write lock (BEGIN IMMEDIATE) / PostgreSQL's row lock: reads go on regardless.
        assert await asyncio.wait_for(_counter(database, "c"), timeout=30) == 0
    assert await _counter(database, "c") == 41
    if database.dialect == "sqlite":
        assert _served(database) == served + 2


async def test_fetch_under_concurrent_writes(database: Database) -> None:
    await _scratch_tables(database)
    rounds = 60

    async def writer(name: str) -> None:
        for value in range(1, rounds + 1):
            async with database.transaction() as conn:
                await conn.execute(update(counters).where(counters.c.name == name).values(value=value))

    seen: dict[str, list[int]] = {"c": [], "d": []}
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            for name in ("c", "d"):
                row = await database.fetch_one(COUNTER, name=name)
                assert row is not None
                seen[name].append(row.value)
            await asyncio.sleep(0)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    await asyncio.gather(writer("c"), writer("d"))
    done.set()
    await asyncio.gather(*readers)
    for values in seen.values():
        assert values  # the readers ran while the writers did
    assert await _counter(database, "c") == rounds
    assert await _counter(database, "d") == rounds


async def test_sqlite_fetch_over_its_step_budget_runs_on_the_database_thread(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement that turns out to be a scan is interrupted after its budget of SQLite steps and answered from
    aiosqlite's thread (the event loop is not held up by it); point reads stay inline."""
    db = Database.from_settings(settings)
    db.inline = InlineReader(settings.data_dir / "onewindow.sqlite3", db.engine.dialect, step_budget=2)
    scan = PreparedRead(
        select(func.count().label("n")).select_from(things).where(things.c.amount > bindparam("over")),
        name="test.scan",
    )
    try:
        await db.migrate()
        await _scratch_tables(db)
        async with db.transaction() as conn:
            await conn.execute(
                insert(things),
                [{"id": f"bulk{i:05d}", "kind": "bulk", "amount": i, "flag": False} for i in range(3000)],
            )
        with caplog.at_level(logging.WARNING, logger="onewindow.storage"):
            for _ in range(3):
                assert (await db.fetch_one(scan, over=-1)) is not None
                assert [r.n for r in await db.fetch(scan, over=2990)] == [9]  # bulk02991 … bulk02999
                assert await _counter(db, "c") == 0
        assert db.inline.deferred == 6  # both scans, every time
        assert db.inline.served == 3  # the point reads
        budget_warnings = [r.message for r in caplog.records if "budget" in r.message]
        assert budget_warnings == ["test.scan exceeded the inline read budget; it runs on the database thread"]
    finally:
        await db.dispose()


async def test_sqlite_fetch_does_not_wait_on_the_loop_when_the_file_is_locked(settings: Settings) -> None:
    """Another connection holding the file exclusively (``locking_mode=EXCLUSIVE``, which only works while nobody
    else has it open) makes the inline read give up at once; the read waits on aiosqlite's thread instead, and the
    event loop keeps running meanwhile."""
    db = Database.from_settings(settings)
    try:
        await db.migrate()
        await _scratch_tables(db)
        assert await _counter(db, "c") == 0
        await db.dispose()  # every connection closed, so the other one can take the file exclusively
        assert db.inline is not None
        locked, release = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def hold_exclusive_lock() -> None:
            try:
                conn = sqlite3.connect(str(settings.data_dir / "onewindow.sqlite3"), isolation_level=None)
                try:
                    conn.execute("PRAGMA busy_timeout=5000")
                    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                    conn.execute("BEGIN EXCLUSIVE")
                    conn.execute("UPDATE scratch_counters SET value = 7 WHERE name = 'c'")
                    conn.execute("COMMIT")  # exclusive mode keeps the lock until the connection closes
                    locked.set()
                    release.wait(5)
                finally:
                    conn.close()
            except BaseException as exc:
                failure.append(exc)
                locked.set()

        holder = threading.Thread(target=hold_exclusive_lock)
        holder.start()
        try:
            assert await asyncio.to_thread(locked.wait, 5)
            assert not failure
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1
                    if ticks == 10:
                        release.set()  # only a loop that runs while the read waits ever lets the lock go

            tick_task = asyncio.create_task(ticker())
            deferred = db.inline.deferred
            value = await asyncio.wait_for(_counter(db, "c"), timeout=30)
            tick_task.cancel()
            assert value == 7
            assert ticks >= 10  # the loop ran while the read waited for the lock
            assert db.inline.deferred == deferred + 1
        finally:
            release.set()
            holder.join(5)
        served = db.inline.served
        assert await _counter(db, "c") == 7
        assert db.inline.served == served + 1  # inline again once the file is free
    finally:
        await db.dispose()


async def test_sqlite_inline_connections_are_read_only_and_closed_by_dispose(settings: Settings) -> None:
    db = Database.from_settings(settings)
    await db.migrate()
    await _scratch_tables(db)
    reader = db.inline
    assert reader is not None
    assert await _counter(db, "c") == 0
    # Another thread (another event loop) gets a connection of its own.
    assert await asyncio.to_thread(asyncio.run, _counter(db, "c")) == 0
    assert reader.open_connections == 2
    connections = [slot.conn for slot in reader._slots.values()]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        connections[0].execute("UPDATE scratch_counters SET value = 5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await db.dispose()
        gc.collect()
    assert reader.open_connections == 0
    for conn in connections:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    # A disposed database opens again on use, as its engine does.
    try:
        assert await _counter(db, "c") == 0
        assert reader.open_connections == 1
    finally:
        await db.dispose()
    assert reader.open_connections == 0


def test_inline_reader_declines_memory_databases_and_files_not_in_wal_mode(tmp_path: Path) -> None:
    dialect = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'any.sqlite3'}").engine.dialect
    assert InlineReader.for_url(make_url("sqlite+aiosqlite:///:memory:"), dialect) is None
    assert InlineReader.for_url(make_url("sqlite+aiosqlite://"), dialect) is None
    path = tmp_path / "rollback.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE scratch_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("INSERT INTO scratch_counters VALUES ('c', 1)")
    conn.close()
    reader = InlineReader(path, dialect)
    try:
        assert reader.fetch(COUNTER, {"name": "c"}) is None  # journal_mode=delete: a reader could wait for writers
        assert reader.deferred == 1 and reader.open_connections == 0
    finally:
        reader.close()
    assert Database.from_url(f"sqlite+aiosqlite:///{path}", inline_reads=False).inline is None


async def test_postgres_reads_use_a_few_read_only_connections_of_their_own(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the PostgreSQL reader")
    await _scratch_tables(database)
    reader = database.pg_reader
    assert reader is not None
    values = await asyncio.gather(*(_counter(database, "c") for _ in range(50)))
    assert values == [0] * 50
    assert reader.served >= 50 and reader.deferred == 0
    assert 1 <= reader.open_connections <= reader.max_connections
    conns = reader._for_loop()
    conn = conns.idle[0]
    with pytest.raises(Exception, match="read-only"):
        await conn.execute("UPDATE scratch_counters SET value = 9")
    # A failed statement: the engine's error, as every read raises it; the connection is not reused.
    missing = PreparedRead(select(Table("scratch_missing", MetaData(), Column("id", Integer)).c.id))
    with pytest.raises(DBAPIError, match="scratch_missing"):
        await database.fetch(missing)
    assert reader.deferred == 1
    assert await _counter(database, "c") == 0


async def test_postgres_read_cancelled_mid_query_leaves_the_reader_usable(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the PostgreSQL reader")
    await _scratch_tables(database)
    reader = database.pg_reader
    assert reader is not None
    slow = PreparedRead(select(func.pg_sleep(bindparam("seconds")).label("slept")), name="test.slow")
    name = f"onewindow-test-{uuid.uuid4().hex[:12]}"  # tells this reader's connections apart on the server
    reader._server_settings["application_name"] = name
    sleeping = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND state = 'active' "
        "AND query LIKE '%pg_sleep%'"
    )
    tasks = [asyncio.create_task(database.fetch(slow, seconds=5)) for _ in range(reader.max_connections + 2)]
    conns = reader._for_loop()
    async with asyncio.timeout(30):  # every connection busy in its query, two readers waiting for one
        while True:
            async with database.read() as conn:
                busy = (await conn.execute(sleeping, {"name": name})).scalar_one()
            if busy == reader.max_connections and len(conns.waiters) == 2:
                break
            await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    conns = reader._for_loop()
    assert conns.size == len(conns.idle) == 0 and not conns.waiters  # the busy ones were dropped, none leaked
    assert await asyncio.wait_for(_counter(database, "c"), timeout=5) == 0
    assert reader.open_connections == 1


async def test_postgres_reader_closes_with_dispose(db_settings: Settings) -> None:
    if not db_settings.database_url.startswith("postgres"):
        pytest.skip("the PostgreSQL reader")
    db = Database.from_settings(db_settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            await _scratch_tables(db)
            assert db.pg_reader is not None
            await asyncio.gather(*(_counter(db, "c") for _ in range(10)))
            held = list(db.pg_reader._for_loop().idle)
            assert held
        finally:
            await db.dispose()
        gc.collect()
    assert db.pg_reader.open_connections == 0
    assert all(conn.is_closed() for conn in held)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    try:  # opens again on use, as the engine does
        assert await _counter(db, "c") == 0
    finally:
        await db.dispose()


async def test_postgres_reader_that_cannot_connect_leaves_reads_to_the_engine(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the PostgreSQL reader")
    await _scratch_tables(database)
    reader = database.pg_reader
    assert reader is not None
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        reader._connect_args["port"] = sock.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="onewindow.storage"):
        for _ in range(3):
            assert await _counter(database, "c") == 0  # answered by the engine
    assert reader.served == 0 and reader.deferred == 3
    # One attempt, then the back-off: no new attempt (and no new warning) for a while.
    assert len([r for r in caplog.records if "cannot connect" in r.message]) == 1
