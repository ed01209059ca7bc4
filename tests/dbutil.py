"""Isolated databases for tests: a fresh SQLite file, or a PostgreSQL schema of the test's own.

Several test processes (pytest-xdist workers, other checkouts' runs) share one PostgreSQL database, so each test
gets its own schema (``search_path`` set on every connection through ``Settings.database_schema``). Use the
fixtures in tests/conftest.py: ``db_settings`` (Settings on an isolated database already migrated to the newest
schema, with empty tables — for ``create_app``) and ``database`` (a `Database` on the same).

Running Alembic costs a few hundred milliseconds, and PostgreSQL DDL as much again, so tests pay it once per
process: a SQLite database is a copy of a template file migrated once; a PostgreSQL schema comes from a small
per-process pool. A schema goes back to the pool only if its structure still equals a freshly migrated one
(tables, columns, constraints, triggers, functions, Alembic revision); its rows are deleted with triggers
suspended. Anything else (a test that dropped a trigger or created a table) is dropped instead. Pooled schemas
(named after the process id) and the template file are removed when the process exits; each pytest-xdist worker
has its own. ``ONEWINDOW_TEST_REAL_MIGRATIONS=1`` runs Alembic for every test instead; the migrations themselves
are tested for real in tests/gateway/storage/test_migrations.py.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
from litestar import Litestar
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from gateway.settings import Settings, load_settings
from gateway.storage import Database
from gateway.storage.migrate import upgrade_heads

FAST = os.environ.get("ONEWINDOW_TEST_REAL_MIGRATIONS") != "1"


@contextlib.asynccontextmanager
async def isolated_settings(database_url: str, data_dir: Path, *, migrated: bool = True) -> AsyncIterator[Settings]:
    """Settings on a database of ``database_url``'s kind that no other test uses.

    With ``migrated`` (the default) the database is at the newest schema with empty tables; otherwise it is
    empty (no tables). A PostgreSQL schema is returned to the pool or dropped on exit.
    """
    settings = load_settings(environ={}, data_dir=data_dir, database_url=database_url)
    if settings.is_sqlite:
        if migrated:
            await _copy_sqlite_template(settings)
        yield settings
        return
    if not migrated:
        schema = f"test_{uuid.uuid4().hex[:20]}"
        try:
            yield msgspec.structs.replace(settings, database_schema=schema)
        finally:
            await drop_schema(database_url, schema)
        return
    pool = _pools.setdefault(database_url, _SchemaPool(database_url))
    schema = await pool.acquire()
    try:
        yield msgspec.structs.replace(settings, database_schema=schema)
    finally:
        await pool.release(schema)


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """A `Database` for ``settings``, disposed on exit (no migration)."""
    db = Database.from_settings(settings)
    try:
        yield db
    finally:
        await db.dispose()


#: A deployment's settings and its open database (`two_schemas`).
Deployment = tuple[Settings, Database]


@contextlib.asynccontextmanager
async def two_schemas(database_url: str, data_dir: Path) -> AsyncIterator[tuple[Deployment, Deployment]]:
    """Two deployments in two schemas of one PostgreSQL database (settings and an open `Database` each), both
    migrated with empty tables — what shares the database server and must not share anything else."""
    async with (
        isolated_settings(database_url, data_dir / "a") as a,
        isolated_settings(database_url, data_dir / "b") as b,
        open_database(a) as one,
        open_database(b) as other,
    ):
        assert a.database_schema != b.database_schema
        yield (a, one), (b, other)


@contextlib.asynccontextmanager
async def migrated_database(settings: Settings) -> AsyncIterator[Database]:
    """A `Database` for ``settings``, migrated to the newest schema (a no-op when it is), disposed on exit."""
    async with open_database(settings) as db:
        await db.migrate()
        yield db


async def drop_schema(database_url: str, schema: str) -> None:
    """Drop a test schema and everything in it (waits at most a few seconds for locks)."""
    async with _admin(database_url) as conn:
        await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@contextlib.asynccontextmanager
async def _admin(database_url: str, schema: str = "") -> AsyncIterator[AsyncConnection]:
    db = Database.from_url(database_url, schema=schema, poolclass=NullPool)
    try:
        async with db.engine.begin() as conn:
            yield conn
    finally:
        await db.dispose()


# -- SQLite: copies of one migrated template file -------------------------------------------------------------

_sqlite_template: Path | None = None


async def _copy_sqlite_template(settings: Settings) -> None:
    global _sqlite_template
    target = Path(settings.sqlalchemy_url.split(":///", 1)[1])
    if not FAST:
        async with migrated_database(settings):
            return
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="onewindow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / "template.sqlite3"
        db = Database.from_url(f"sqlite+aiosqlite:///{template}")
        try:
            await db.migrate()
        finally:
            await db.dispose()  # the last connection to close checkpoints the WAL into the file
        _sqlite_template = template
    _place_copy(_sqlite_template, target)


def _place_copy(template: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.stat().st_size > 0:
        raise RuntimeError(f"{target} is not empty; a test database must start empty")
    shutil.copyfile(template, target)
    target.chmod(0o600)


# -- PostgreSQL: a per-process pool of migrated schemas -------------------------------------------------------

#: One text per database object (table + columns, constraint, trigger, function) and the Alembic revision.
_STRUCTURE = """
SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')) FROM (
    SELECT 'rel:' || c.relname || ':' || c.relkind::text || ':' || coalesce((
        SELECT string_agg(a.attname || '/' || format_type(a.atttypid, a.atttypmod) || '/' || a.attnotnull::text,
                          ';' ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS x
    FROM pg_class c WHERE c.relnamespace = CAST(:schema AS regnamespace)
    UNION ALL
    SELECT 'con:' || conname || ':' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = CAST(:schema AS regnamespace)
    UNION ALL
    SELECT 'trg:' || t.tgname || ':' || t.tgenabled::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = CAST(:schema AS regnamespace) AND NOT t.tgisinternal
    UNION ALL
    SELECT 'fn:' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p
    WHERE p.pronamespace = CAST(:schema AS regnamespace)
) objects
"""


class _SchemaPool:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.prefix = f"test_p{os.getpid()}_"
        self.free: list[str] = []
        self.script: str | None = None
        self.structure: str | None = None
        self.revisions: list[str] = []
        self.all: set[str] = set()
        atexit.register(self._drop_all_at_exit)

    async def acquire(self) -> str:
        if self.free:
            return self.free.pop()
        schema = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        self.all.add(schema)
        if self.script is None:
            self.script = await _capture_migration_script(self.url) if FAST else None
        try:
            async with _admin(self.url) as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            settings = load_settings(environ={}, database_url=self.url, database_schema=schema)
            async with open_database(settings) as db:
                if self.script is None:
                    await db.migrate()
                else:
                    async with db.transaction() as conn:
                        raw = await conn.get_raw_connection()
                        await raw.driver_connection.execute(self.script)  # type: ignore[union-attr]
            if self.structure is None:
                self.structure, self.revisions = await self._describe(schema)
        except BaseException:
            self.all.discard(schema)
            await drop_schema(self.url, schema)
            raise
        return schema

    async def release(self, schema: str) -> None:
        """Back to the pool with empty tables if the structure is untouched; dropped otherwise."""
        try:
            if FAST and await self._empty_if_intact(schema):
                self.free.append(schema)
                return
        except Exception:  # any doubt: drop it
            pass
        self.all.discard(schema)
        await drop_schema(self.url, schema)

    async def _describe(self, schema: str) -> tuple[str, list[str]]:
        async with _admin(self.url, schema) as conn:
            return await self._structure(conn, schema)

    @staticmethod
    async def _structure(conn: AsyncConnection, schema: str) -> tuple[str, list[str]]:
        await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        structure = (await conn.execute(text(_STRUCTURE), {"schema": schema})).scalar_one()
        revisions = sorted(r for (r,) in await conn.execute(text("SELECT version_num FROM alembic_version")))
        return str(structure), revisions

    async def _empty_if_intact(self, schema: str) -> bool:
        async with _admin(self.url, schema) as conn:
            if await self._structure(conn, schema) != (self.structure, self.revisions):
                return False
            # Skip ordinary triggers (the audit log refuses DELETE) and foreign-key checks while emptying.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            tables = [
                name
                for (name,) in await conn.execute(
                    text(
                        "SELECT relname FROM pg_class WHERE relnamespace = CAST(:schema AS regnamespace) "
                        "AND relkind = 'r' AND relname <> 'alembic_version'"
                    ),
                    {"schema": schema},
                )
            ]
            if tables:
                raw = await conn.get_raw_connection()
                await raw.driver_connection.execute(  # type: ignore[union-attr]
                    "".join(f'DELETE FROM "{schema}"."{t}";' for t in tables)
                )
        return True

    def _drop_all_at_exit(self) -> None:
        if not self.all:
            return

        async def drop() -> None:
            for schema in sorted(self.all):
                with contextlib.suppress(Exception):
                    await drop_schema(self.url, schema)

        with contextlib.suppress(Exception):
            asyncio.run(drop())


_pools: dict[str, _SchemaPool] = {}


async def _capture_migration_script(database_url: str) -> str | None:
    """The DDL a real migration executes (captured once), or None when it cannot be replayed verbatim."""
    schema = f"tmpl_{uuid.uuid4().hex[:20]}"
    db = Database.from_url(database_url, schema=schema)
    statements: list[str] = []
    replayable = True

    def upgrade(sync_conn: Connection) -> None:
        def record(_c: object, _cur: object, statement: str, parameters: object, *_: object) -> None:
            nonlocal replayable
            if statement.lstrip().upper().startswith("SELECT"):
                return  # Alembic's reflection queries
            if parameters:
                replayable = False
            statements.append(statement.strip())

        event.listen(sync_conn, "before_cursor_execute", record)
        try:
            upgrade_heads(sync_conn)
        finally:
            event.remove(sync_conn, "before_cursor_execute", record)

    try:
        async with db.transaction() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(upgrade)
    finally:
        await db.dispose()
        await drop_schema(database_url, schema)
    return ";\n".join(statements) + ";" if replayable and statements else None


# -- HTTP in the test's own event loop ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def asgi_client(app: Litestar, *, lifespan: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling ``app`` in the test's own event loop (lifespan run too, unless told otherwise).

    Litestar's ``AsyncTestClient`` runs the app in another thread's loop, so an app there cannot share asyncpg
    connections (a `Database`) with the test; this client can: the test may use ``context_of(app).database``.
    """
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    if not lifespan:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
        return
    # The lifespan runs in a task of its own: it must start and stop in one task (anyio's rule), while a
    # fixture's setup and teardown may run in different ones.
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiter.cancel()
        await task  # start-up failed: raise its error
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        stop.set()
        await task
