"""Short PostgreSQL reads on connections of their own: `PostgresReader`, the PostgreSQL side of `Database.fetch`.

Through SQLAlchemy's async engine a point read costs about five times what asyncpg needs for it: the pool's
checkout and its reset on return (a ROLLBACK round trip), the greenlet hand-offs and the per-execution statement
machinery. A `PreparedRead` needs none of them — it is one ``SELECT`` with its SQL compiled once — so this reader
keeps a few asyncpg connections per event loop for them alone:

* opened with the gateway's server settings (``search_path`` for the schema, ``jit=off``, the application name)
  and ``default_transaction_read_only=on``: they cannot write;
* every statement runs in autocommit, so it is its own snapshot of everything committed before it started, by
  any process — nothing is cached; asyncpg keeps each connection's statements prepared;
* no reset between uses (nothing but these reads ever runs on them, and they leave no session state); a connection
  whose query failed or was cancelled is closed, not reused;
* any failure answers ``None`` and `Database.fetch` runs the statement through the engine instead, so errors reach
  the caller as SQLAlchemy's, as for every other read.

Connections belong to the event loop that opened them (asyncpg's rule); `close` (`Database.dispose`) closes those
of the calling loop and terminates the others'. A forked child forgets its parent's connections.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
import types
import weakref
from collections.abc import Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information shipped
from sqlalchemy import Dialect
from sqlalchemy.engine import URL

from gateway.storage.prepared import CompiledRead, PreparedRead, ReadRow

log = logging.getLogger("onewindow.storage")

#: Connections per event loop: queries on one connection run one at a time, a handful keeps the loop busy.
DEFAULT_CONNECTIONS = 4
#: Opening a connection may take this long; after a failure the engine answers alone for the back-off time.
CONNECT_TIMEOUT_SECONDS = 5.0
CONNECT_BACKOFF_SECONDS = 5.0


class _LoopConnections:
    """One event loop's connections: the idle ones, how many exist, and the readers waiting for one."""

    __slots__ = ("closed", "idle", "size", "waiters")

    def __init__(self) -> None:
        self.idle: list[asyncpg.Connection] = []
        self.size = 0
        self.waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        #: Set by `PostgresReader.close`: connections still in use are closed when they come back.
        self.closed = False


class PostgresReader:
    """Read-only autocommit asyncpg connections (a few per event loop) for `PreparedRead` statements."""

    def __init__(
        self,
        connect_args: Mapping[str, Any],
        dialect: Dialect,
        *,
        server_settings: Mapping[str, str],
        command_timeout: float = 60.0,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        self.dialect = dialect
        self.max_connections = max(1, connections)
        self._connect_args = dict(connect_args)
        self._server_settings = {**server_settings, "default_transaction_read_only": "on"}
        self._command_timeout = command_timeout
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = (
            weakref.WeakKeyDictionary()
        )
        self._forms: dict[PreparedRead, CompiledRead | None] = {}
        self._connect_again_at = 0.0
        #: Statements answered here / handed to the engine (observability and tests).
        self.served = 0
        self.deferred = 0
        _readers.add(self)

    @classmethod
    def for_url(cls, url: URL, dialect: Dialect, **options: Any) -> PostgresReader | None:
        """A reader for a plain ``postgresql+asyncpg://user@host:port/db`` URL; ``None`` for URLs with options
        (those always take the engine's path, which knows how to read them)."""
        if url.query:
            return None
        args = url.translate_connect_args(username="user")
        if "port" in args:
            args["port"] = int(args["port"])
        return cls(args, dialect, **options)

    # -- reading ----------------------------------------------------------------------------------------------

    async def fetch(self, query: PreparedRead, params: Mapping[str, Any]) -> list[ReadRow] | None:
        """The rows of ``query``; ``None`` when the engine's path must answer instead."""
        try:
            form = self._forms[query]
        except KeyError:
            form = self._forms[query] = query.compiled_form(self.dialect)
        if form is None:
            self.deferred += 1
            return None
        conns = self._for_loop()
        conn = await self._acquire(conns)
        if conn is None:
            self.deferred += 1
            return None
        try:
            records = await conn.fetch(form.sql, *form.arguments(params))
        except BaseException as exc:
            # Whatever state the connection is in now, it is not worth finding out: drop it.
            self._discard(conns, conn)
            if not isinstance(exc, Exception):
                raise  # cancelled: the caller is gone
            log.debug("inline PostgreSQL read of %s failed (%s); using the engine", query.name, type(exc).__name__)
            self.deferred += 1
            return None
        self._release(conns, conn)
        self.served += 1
        return form.convert(records)

    def _for_loop(self) -> _LoopConnections:
        loop = asyncio.get_running_loop()
        conns = self._loops.get(loop)
        if conns is None:
            conns = self._loops[loop] = _LoopConnections()
        return conns

    async def _acquire(self, conns: _LoopConnections) -> asyncpg.Connection | None:
        """An idle connection, a new one while there are fewer than the maximum, else the next one released;
        ``None`` when the reader was closed or cannot connect (the engine answers then)."""
        while True:
            if conns.closed:
                return None
            while conns.idle:
                conn = conns.idle.pop()
                if not conn.is_closed():
                    return conn
                conns.size -= 1
            if conns.size < self.max_connections:
                break
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            conns.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and (late := waiter.result()) is not None:
                    self._release(conns, late)  # handed over just as we were cancelled: pass it on
                raise
            if handed is not None:
                return handed
            # None: a connection was dropped (there is room for a new one) or the reader closed: look again.
        if time.monotonic() < self._connect_again_at:
            return None
        conns.size += 1
        try:
            opened: asyncpg.Connection = await asyncpg.connect(
                **self._connect_args,
                server_settings=self._server_settings,
                command_timeout=self._command_timeout,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
            try:
                await self._set_codecs(opened)
            except BaseException:
                opened.terminate()
                raise
        except BaseException as exc:
            conns.size -= 1
            self._wake_one(conns)
            if not isinstance(exc, Exception):
                raise
            # The server is down or refusing: leave it to the engine (and its timeouts) for a while.
            self._connect_again_at = time.monotonic() + CONNECT_BACKOFF_SECONDS
            log.warning("inline PostgreSQL reads cannot connect (%s); using the engine", type(exc).__name__)
            return None
        return opened

    async def _set_codecs(self, conn: asyncpg.Connection) -> None:
        """The type codecs SQLAlchemy's asyncpg dialect gives its own connections (JSON and JSONB decoded with the
        dialect's deserializer), so values come back as they do through the engine."""
        adapted = types.SimpleNamespace(_connection=conn)  # what the dialect's set-up methods take
        dialect: Any = self.dialect  # PGDialect_asyncpg
        await dialect.setup_asyncpg_json_codec(adapted)
        await dialect.setup_asyncpg_jsonb_codec(adapted)
        if getattr(dialect, "_native_inet_types", None) is False:
            await dialect._disable_asyncpg_inet_codecs(adapted)

    def _release(self, conns: _LoopConnections, conn: asyncpg.Connection) -> None:
        if conns.closed:
            conns.size -= 1
            conn.terminate()
            return
        while conns.waiters:
            waiter = conns.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conns.idle.append(conn)

    def _discard(self, conns: _LoopConnections, conn: asyncpg.Connection) -> None:
        conns.size -= 1
        conn.terminate()
        self._wake_one(conns)

    @staticmethod
    def _wake_one(conns: _LoopConnections) -> None:
        # A waiter given None looks again: there is room for a new connection now.
        while conns.waiters:
            waiter = conns.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every connection: gracefully on the calling loop, by termination on other (or closed) loops."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        loops, self._loops = list(self._loops.items()), weakref.WeakKeyDictionary()
        for loop, conns in loops:
            conns.closed = True
            idle, conns.idle = conns.idle, []
            conns.size -= len(idle)
            for waiter in conns.waiters:
                if not waiter.done() and not loop.is_closed():
                    loop.call_soon_threadsafe(_resolve_none, waiter)
            for conn in idle:
                if loop is current:
                    try:
                        await asyncio.wait_for(conn.close(), timeout=2)
                    except Exception:
                        conn.terminate()
                else:
                    conn.terminate()

    def _forget_after_fork(self) -> None:
        self._loops = weakref.WeakKeyDictionary()

    @property
    def open_connections(self) -> int:
        return sum(len(c.idle) for c in self._loops.values())


def _resolve_none(waiter: asyncio.Future[asyncpg.Connection | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_readers: weakref.WeakSet[PostgresReader] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reader in list(_readers):
        reader._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["DEFAULT_CONNECTIONS", "PostgresReader"]
