"""`Database`: the async engine, write and read transactions, migrations — for SQLite and PostgreSQL alike.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``, a busy timeout and foreign keys on
every connection. A write transaction starts with ``BEGIN IMMEDIATE``: it takes the database's write lock up front,
so a transaction that reads and then writes never has to upgrade a shared lock (the upgrade is where two SQLite
writers deadlock and one fails with "database is locked"). Inside one process, writers also queue on an
`asyncio.Lock` first, so they wait in order instead of polling SQLite's busy handler.

PostgreSQL runs through asyncpg with a bounded pool; `Database.read` transactions are ``READ ONLY``. With
``Settings.database_schema`` every connection's ``search_path`` is that schema (tests isolate themselves so).

Usage::

    db = Database.from_settings(settings)
    await db.migrate()
    async with db.transaction() as conn:      # one write transaction: commit on success, rollback on error
        await conn.execute(table.insert().values(...))
        await audit.append(conn, ...)
    async with db.read() as conn:             # reads only
        row = (await conn.execute(select(...))).first()
    rows = await db.fetch(LOOKUP, number=n)   # one short prepared read (hot paths): inline on SQLite
    rows = await db.fetch_keyed(BY_NUMBER, n) # the same by one key: on PostgreSQL concurrent lookups share a query
    async with db.transaction() as conn:      # many rows of one statement: the driver's executemany
        await db.execute_many(conn, UPSERT, rows)
    await db.dispose()

A change decided on what the transaction read (a status, a version, "not yet revoked") must hold on PostgreSQL as
well as on SQLite, where writers take turns: read the row through `locked` (``SELECT … FOR UPDATE``), or make the
statement itself conditional (``UPDATE … WHERE status = 'open'``) and check its row count — best both.

`fetch` / `fetch_one` run one `PreparedRead` (a select built once, with named parameters). On SQLite they read on
the calling thread through a per-thread ``sqlite3`` connection (`gateway.storage.inline`: WAL, ``query_only``,
autocommit, no waiting on the loop, a step budget), falling back to the aiosqlite path when that cannot answer at
once; on PostgreSQL they run it on a few read-only asyncpg connections of their own (`gateway.storage.pgread`),
in autocommit. Either way they see every transaction committed before the call, by this process or any other.
SQLAlchemy's own levers for such reads (a read engine in autocommit without reset on return, the asyncpg dialect's
prepared-statement cache, a compiled cache) were measured at about twice the CPU per lookup; `gateway.storage.pgread`
gives the numbers.

`fetch_keyed` runs a `KeyedRead` (a read by one key, also written for a list of keys) for one key: as `fetch` of
its one-key form on SQLite; on PostgreSQL the lookups that queue up while the reader's connections are busy go out
together as one query of the list form, its rows split back per key (`gateway.storage.pgread`: each lookup is
answered by a query that started after it was asked; a failed batch leaves each lookup to the engine).

`execute_many` runs one `BulkWrite` (an insert, update or upsert compiled once) for many rows with the driver's
``executemany``, inside the caller's `transaction` (`gateway.storage.bulk`); `bulk_rows` converts the rows first,
so the conversion can happen before the transaction opens.

Nothing outside this package talks to a driver (``sqlite3``, aiosqlite, asyncpg) or to a dialect's internals:
domains use `transaction`, `read`, `fetch` and `execute_many`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Select, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.settings import Settings
from gateway.storage.bulk import BulkRows, BulkWrite
from gateway.storage.commit import close_stage, open_stage
from gateway.storage.faults import DatabaseBusy
from gateway.storage.inline import DEFAULT_STEP_BUDGET, InlineReader
from gateway.storage.metadata import new_id, utcnow
from gateway.storage.pgread import PostgresReader
from gateway.storage.prepared import KeyedRead, PreparedRead, ReadRow

#: PRAGMAs applied to every SQLite connection when it is opened.
SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # first, so switching to WAL below also waits for a busy file
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)

#: Advisory lock key (PostgreSQL) that serialises concurrent `Database.migrate` calls across processes.
MIGRATION_LOCK_KEY = 0x6F77_6D69  # "owmi"

#: Execution option that marks a connection as a writer (SQLite: BEGIN IMMEDIATE instead of BEGIN).
_WRITE_OPTION = "onewindow_write"

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Dialect = Literal["sqlite", "postgresql"]

_Select = TypeVar("_Select", bound=Select[Any])


class Database:
    """One database: an `AsyncEngine` plus the transaction discipline every domain uses."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str = "",
        write_wait_seconds: float = 10.0,
        inline_reads: bool = True,
        inline_step_budget: int = DEFAULT_STEP_BUDGET,
    ) -> None:
        name = engine.dialect.name
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {name!r}: use SQLite or PostgreSQL")
        self.engine = engine
        self.schema = schema
        self.dialect: Dialect = "sqlite" if name == "sqlite" else "postgresql"
        self._write_wait = write_wait_seconds
        # One writer at a time per process on SQLite (the file allows only one anyway).
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        #: Where `fetch` reads first (None: always the engine's path): SQLite on the calling thread, PostgreSQL on
        #: asyncpg connections of its own.
        self.inline: InlineReader | None = None
        self.pg_reader: PostgresReader | None = None
        if self.dialect == "sqlite":
            _install_sqlite_hooks(engine)
            if inline_reads:
                self.inline = InlineReader.for_url(engine.url, engine.dialect, step_budget=inline_step_budget)
        elif inline_reads:
            self.pg_reader = PostgresReader.for_url(
                engine.url, engine.dialect, server_settings=_pg_server_settings(schema), command_timeout=60
            )

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, **engine_options: Any) -> Database:
        """The gateway's database: the SQLite file in the data dir, or PostgreSQL from ``database_url``."""
        if "poolclass" not in engine_options:
            pool: dict[str, Any] = {"pool_timeout": settings.database_pool_timeout_seconds}
            if settings.database_pool_size is not None:
                pool["pool_size"] = settings.database_pool_size
            if settings.database_pool_overflow is not None:
                pool["max_overflow"] = settings.database_pool_overflow
            engine_options = pool | engine_options
        return cls.from_url(settings.sqlalchemy_url, schema=settings.database_schema, **engine_options)

    @classmethod
    def from_url(
        cls,
        url: str | URL,
        *,
        schema: str = "",
        write_wait_seconds: float = 10.0,
        inline_reads: bool = True,
        **engine_options: Any,
    ) -> Database:
        """A database from an async SQLAlchemy URL (``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``).

        Plain ``sqlite:///`` and ``postgresql://`` URLs are given their async driver. ``engine_options`` go to
        `create_async_engine` (e.g. ``poolclass=NullPool``, ``echo=True``). ``inline_reads=False`` sends `fetch`
        through the engine on SQLite too.
        """
        parsed = make_url(url) if isinstance(url, str) else url
        driver = parsed.drivername
        if driver == "sqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        elif driver in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+asyncpg")
        if parsed.get_backend_name() == "sqlite":
            if schema:
                raise ValueError("database_schema applies to PostgreSQL only")
            if parsed.database and parsed.database != ":memory:":
                _create_private_file(Path(parsed.database).expanduser())
            options: dict[str, Any] = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30}
        elif parsed.get_backend_name() == "postgresql":
            if schema and not _SCHEMA_NAME.match(schema):
                raise ValueError(f"database_schema {schema!r}: use lower-case letters, digits and _ only")
            options = {
                "pool_size": 10,
                "max_overflow": 20,
                "pool_timeout": 30,
                "pool_recycle": 1800,
                "connect_args": {"server_settings": _pg_server_settings(schema), "command_timeout": 60},
            }
        else:
            raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}")
        if "poolclass" in engine_options:  # e.g. NullPool: queue-pool sizing does not apply
            for key in ("pool_size", "max_overflow", "pool_timeout", "pool_recycle"):
                options.pop(key, None)
        options.update(engine_options)
        return cls(
            create_async_engine(parsed, **options),
            schema=schema,
            write_wait_seconds=write_wait_seconds,
            inline_reads=inline_reads,
        )

    # -- transactions ---------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: commits when the block ends, rolls back when it raises.

        Keep the block short and free of network calls: on SQLite every other writer waits for it. The steps
        registered with `gateway.storage.commit.before_commit` run after the block, before ``COMMIT``.
        Raises `DatabaseBusy` (503) when the turn does not come within the wait limit.
        """
        async with self._writer_turn(), self.engine.connect() as conn:
            if self._write_lock is not None:
                await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                stage = open_stage(conn)
                try:
                    yield conn
                    await stage.run(conn)  # e.g. the transaction's audit records, in one batch (before_commit)
                finally:
                    close_stage(conn)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (one consistent snapshot on SQLite; ``READ ONLY`` on PostgreSQL)."""
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execution_options(postgresql_readonly=True)
            async with conn.begin():
                yield conn

    async def fetch(self, query: PreparedRead, /, **params: Any) -> list[ReadRow]:
        """The rows of one prepared read (a short, indexed query), reading the newest committed data.

        SQLite: on this thread through `InlineReader` (no hand-off to a worker thread, no waiting: WAL readers do
        not wait for writers), or through the engine when that cannot answer at once. PostgreSQL: through
        `PostgresReader` (read-only asyncpg connections of its own, the statement prepared), or the engine; either
        way the one ``SELECT`` runs in autocommit — a statement is its own snapshot. Long or many-statement reads
        belong in `read`.
        """
        query.check(params)
        inline = self.inline
        if inline is not None:
            rows = inline.fetch(query, params)
            if rows is not None:
                return rows
        elif self.pg_reader is not None:
            rows = await self.pg_reader.fetch(query, params)
            if rows is not None:
                return rows
        return await self._engine_fetch(query, params)

    async def fetch_keyed(self, read: KeyedRead, key: Any, /) -> list[ReadRow]:
        """The rows of ``read`` for ``key``, as `fetch` of ``read.one`` gives them — but on PostgreSQL the lookups
        of ``read`` that queue up behind queries in flight go out together, one query of ``read.many`` for all of
        their keys (`PostgresReader.fetch_keyed`); on SQLite, when lookups come together, those asked in one turn of
        the event loop are read inline in one statement, the one-key form with ``IN (…)`` (`InlineReader`). Each lookup
        is answered by a query that started after it was asked: nothing is kept. Any lookup a batch could not
        answer takes `fetch`'s path, with its errors."""
        if self.pg_reader is not None:
            rows = await self.pg_reader.fetch_keyed(read, key)
            if rows is not None:
                return rows
            return await self._engine_fetch(read.one, {read.key: key})
        if self.inline is not None and self.inline.batches(read):
            rows = await self.inline.fetch_keyed(read, key)
            if rows is not None:
                return rows
        return await self.fetch(read.one, **{read.key: key})

    async def _engine_fetch(self, query: PreparedRead, params: Mapping[str, Any]) -> list[ReadRow]:
        """`fetch` through SQLAlchemy's engine (what the inline readers hand on; errors as every read raises them)."""
        if self.dialect == "postgresql":
            async with self.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                return query.rows(await conn.execute(query.statement, params))
        async with self.read() as conn:
            return query.rows(await conn.execute(query.statement, params))

    async def fetch_one(self, query: PreparedRead, /, **params: Any) -> ReadRow | None:
        """The first row of `fetch`, or ``None``."""
        rows = await self.fetch(query, **params)
        return rows[0] if rows else None

    # -- bulk writes ----------------------------------------------------------------------------------------

    def bulk_rows(self, write: BulkWrite, rows: Sequence[Mapping[str, Any]]) -> BulkRows:
        """``rows`` converted to the driver's parameters for `execute_many` (CPU only, no I/O): convert before the
        write transaction opens and the database's single writer (SQLite) is held only for the writing."""
        dialect = self.engine.dialect
        return BulkRows(write, dialect, write.compiled(dialect).parameters(rows))

    async def execute_many(
        self, conn: AsyncConnection, write: BulkWrite, rows: Sequence[Mapping[str, Any]] | BulkRows
    ) -> int:
        """Run ``write`` once for each row, with the driver's ``executemany``, on ``conn`` — a `transaction`'s
        connection: the rows commit or roll back with the rest of it. Returns the rows written as the driver
        reports them, ``-1`` when it does not (PostgreSQL, more than one row). See `gateway.storage.bulk`."""
        if not conn.in_transaction():
            raise RuntimeError(f"{write.name}: execute_many runs inside Database.transaction()")
        form = write.compiled(conn.dialect)
        if isinstance(rows, BulkRows):
            if rows.write is not write or rows.dialect is not conn.dialect:
                raise ValueError(f"{write.name}: these rows were converted for another statement or database")
            parameters = rows.parameters
        else:
            parameters = form.parameters(rows)
        if not parameters:
            return 0
        result = await conn.exec_driver_sql(form.sql, parameters)
        return result.rowcount if result.rowcount is not None else -1

    @contextlib.asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        lock = self._write_lock
        if lock is None:
            yield
            return
        try:
            async with asyncio.timeout(self._write_wait):
                await lock.acquire()
        except TimeoutError:
            raise DatabaseBusy("The database is busy; try again shortly.", headers={"Retry-After": "1"}) from None
        try:
            yield
        finally:
            lock.release()

    # -- operations -----------------------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Bring the schema up to date (``alembic upgrade heads``); safe to call from several processes at once."""
        from gateway.storage.migrate import upgrade_heads

        # Several processes starting at once queue on SQLite's write lock; one migrating a fresh file on a busy
        # machine can hold it past the 5 s busy timeout, so a locked file is waited for a few more turns.
        for attempt in range(_MIGRATE_LOCKED_RETRIES + 1):
            try:
                async with self._writer_turn(), self.engine.connect() as conn:
                    if self._write_lock is not None:
                        await conn.execution_options(**{_WRITE_OPTION: True})
                    async with conn.begin():
                        if self.dialect == "postgresql":
                            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                            if self.schema:
                                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                        await conn.run_sync(upgrade_heads)
                return
            except OperationalError as exc:
                if self.dialect != "sqlite" or "locked" not in str(exc) or attempt == _MIGRATE_LOCKED_RETRIES:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def ping(self, within: float = 2.0) -> None:
        """Raise unless the database answers a trivial query within ``within`` seconds."""
        async with asyncio.timeout(within), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection (and every inline reader's)."""
        if self.inline is not None:
            self.inline.close()
        if self.pg_reader is not None:
            await self.pg_reader.close()
        await self.engine.dispose()

    def describe(self) -> str:
        """The URL without its password, for logs and CLI output."""
        return self.engine.url.render_as_string(hide_password=True)


def locked(query: _Select, conn: AsyncConnection) -> _Select:
    """``query`` locking the rows it reads until the write transaction ends (``SELECT … FOR UPDATE``).

    For a change decided on what was read (a status, a version): on PostgreSQL, concurrent transactions read the
    same committed row and would each go ahead, so the row is locked and a second reader waits for the first to
    commit, then sees its change (and rows that no longer match the query, or were deleted, are not returned). On
    SQLite ``BEGIN IMMEDIATE`` already lets one writer in at a time, and the query is returned unchanged.
    """
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


#: Extra turns a migration waits for a SQLite file another process is migrating (each after the busy timeout).
_MIGRATE_LOCKED_RETRIES = 5


def _pg_server_settings(schema: str) -> dict[str, str]:
    """Session settings of every PostgreSQL connection (the engine's and the prepared reads')."""
    settings = {"application_name": "onewindow", "jit": "off"}
    if schema:
        settings["search_path"] = schema
    return settings


def _create_private_file(path: Path) -> None:
    """Create the SQLite file (and its directory) readable by the owner only; SQLite gives its -wal and -shm
    files the same mode. An empty file is a valid empty database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    """The documented pysqlite/aiosqlite recipe: we emit BEGIN ourselves, so we choose its kind."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Stop the driver from issuing its own (deferred) BEGIN and from committing around DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


__all__ = [
    "MIGRATION_LOCK_KEY",
    "SQLITE_PRAGMAS",
    "BulkRows",
    "BulkWrite",
    "Database",
    "DatabaseBusy",
    "KeyedRead",
    "PreparedRead",
    "ReadRow",
    "locked",
    "new_id",
    "utcnow",
]
