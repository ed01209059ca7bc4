"""What-if, for the benchmark only: the gateway with the changes RESULTS.md recommends for the tracking lookup.

``create_app_sync_reads`` is `gateway.app.create_app` plus a start-up hook that replaces the database's ``read()``
for the public lookup's statement: instead of SQLAlchemy over aiosqlite (each step — begin, execute, fetch,
close, commit — a round trip to aiosqlite's worker thread, plus SQLAlchemy's per-execution machinery), the
statement is built once, compiled once to SQL, and run with the standard library's ``sqlite3`` on the event loop's
thread (a short indexed read of a WAL database takes tens of microseconds: less than one thread round trip).
Result values are converted by the statement's column types, so `TrackingService.track` runs unchanged. Any other
read goes through a plain (pysqlite) SQLAlchemy connection in the same thread; writes keep aiosqlite.

`bench.tracking_bench --what-if` serves this factory next to the real one, so RESULTS.md can say what the change
would buy before anyone makes it in `gateway/storage` / `gateway/tracking`. Not used by the gateway.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

from litestar import Litestar
from sqlalchemy import Connection, Date, Engine, Select, bindparam, create_engine, event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from gateway.app import create_app
from gateway.storage.metadata import UTCDateTime
from gateway.tracking.services import TrackingService

_number: contextvars.ContextVar[str] = contextvars.ContextVar("tracking_number", default="")
_SENTINEL = "__tracking_number__"


def _converter(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, UTCDateTime):
        return lambda v: None if v is None else dt.datetime.fromisoformat(v).replace(tzinfo=dt.UTC)
    if isinstance(column_type, Date):
        return lambda v: None if v is None else dt.date.fromisoformat(v)
    return None


class _LookupStatement:
    """The lookup's statement, built once with a parameter, compiled once for sqlite3."""

    def __init__(self) -> None:
        statement = TrackingService._timeline_query(_SENTINEL)

        def parameterise(element: Any) -> Any:
            if isinstance(element, BindParameter) and element.value == _SENTINEL:
                return bindparam("number", callable_=_number.get, type_=element.type)
            return None

        self.statement = cast("Select[Any]", visitors.replacement_traverse(statement, {}, parameterise))  # type: ignore[call-overload]
        compiled = self.statement.compile(dialect=sqlite_dialect.dialect())
        if list(compiled.positiontup or []) != ["number"]:
            raise RuntimeError("the lookup statement changed shape; update bench/whatif_sync_reads.py")
        self.sql = compiled.string
        columns = list(self.statement.selected_columns)
        self.row = collections.namedtuple("LookupRow", [c.key for c in columns])  # type: ignore[misc]
        self.converters = [_converter(c.type) for c in columns]

    def run(self, conn: sqlite3.Connection) -> list[Any]:
        rows = conn.execute(self.sql, (_number.get(),)).fetchall()
        return [self.row(*(f(v) if f else v for f, v in zip(self.converters, r, strict=True))) for r in rows]


class _InlineConnection:
    """Just enough of `AsyncConnection` for read paths: ``await conn.execute(statement, params)``."""

    def __init__(self, lookup: _LookupStatement, raw: sqlite3.Connection, fallback: Callable[[], Connection]) -> None:
        self._lookup = lookup
        self._raw = raw
        self._fallback = fallback

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if statement is self._lookup.statement:
            return self._lookup.run(self._raw)
        return self._fallback().execute(statement, parameters)


def _sync_engine(async_url: str) -> Engine:
    engine = create_engine(async_url.replace("sqlite+aiosqlite://", "sqlite://"), pool_size=1, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=5000", "PRAGMA query_only=1"):
            dbapi_connection.execute(pragma)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _install(app: Litestar, lookup: _LookupStatement) -> None:
    db = app.state.database
    if db.dialect != "sqlite":
        return
    url = db.engine.url
    engine = _sync_engine(url.render_as_string(hide_password=False))
    raw = sqlite3.connect(url.database, isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA busy_timeout=5000")
    raw.execute("PRAGMA query_only=1")

    @contextlib.contextmanager
    def fallback_transaction() -> Iterator[Callable[[], Connection]]:
        with contextlib.ExitStack() as stack:
            opened: list[Connection] = []

            def connection() -> Connection:
                if not opened:
                    conn = stack.enter_context(engine.connect())
                    stack.enter_context(conn.begin())
                    opened.append(conn)
                return opened[0]

            yield connection

    @contextlib.asynccontextmanager
    async def read() -> AsyncIterator[_InlineConnection]:
        # one statement in autocommit mode is its own consistent snapshot; other reads get a real transaction
        with fallback_transaction() as fallback:
            yield _InlineConnection(lookup, raw, fallback)

    db.read = read  # the instance's read path only; writes keep aiosqlite


def with_sync_reads(app: Litestar) -> Litestar:
    """``app`` with the inline read path installed at start-up (after the database lifespan)."""
    lookup = _LookupStatement()

    def cached(number: str) -> Select[Any]:
        _number.set(number)
        return lookup.statement

    TrackingService._timeline_query = staticmethod(cached)  # type: ignore[method-assign]
    app.on_startup.append(lambda app: _install(app, lookup))
    return app


def create_app_sync_reads() -> Litestar:
    return with_sync_reads(create_app())
