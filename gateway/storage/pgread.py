"""Short PostgreSQL reads on connections of their own: `PostgresReader`, the PostgreSQL side of `Database.fetch` and
`Database.fetch_keyed`.

A `PreparedRead` is one ``SELECT`` with its SQL compiled once; this reader keeps a few asyncpg connections per event
loop for such statements alone:

* opened with the gateway's server settings (``search_path`` for the schema, ``jit=off``, the application name)
  and ``default_transaction_read_only=on``: they cannot write; JSON and JSONB decoded as the engine decodes them;
* every statement runs in autocommit, so it is its own snapshot of everything committed before it started, by
  any process — nothing is cached; asyncpg keeps each connection's statements prepared;
* no reset between uses (nothing but these reads ever runs on them, and they leave no session state); a connection
  whose query failed or was cancelled is closed, not reused;
* a reader waiting for a connection is handed the next one released, in turn (no newcomer takes it first);
* any failure answers ``None`` and `Database.fetch` runs the statement through the engine instead, so errors reach
  the caller as SQLAlchemy's, as for every other read.

Why not SQLAlchemy's own levers (measured with ``bench.tracking_fastpath --database postgresql``, see
bench/RESULTS.md): a second engine for these reads in autocommit (``isolation_level="AUTOCOMMIT"``, read-only
sessions, ``pool_reset_on_return=None`` — no BEGIN, no ROLLBACK on return), the asyncpg dialect's prepared-statement
cache (``prepared_statement_cache_size``), the statement compiled once (SQLAlchemy's compiled cache, or the
`PreparedRead`'s own SQL through ``exec_driver_sql``). A point read that way costs 130–220 µs of CPU (this reader:
25–35 µs): three greenlet hand-offs (connect, execute, close), the pool's checkout and check-in and the adapter's
per-statement work. In the tracking lookup that is 400–650 µs of server CPU per request against 220–340 µs here,
half the requests per second and a p99 of 140–630 ms against 40–110 ms (up to 220 ms on a saturated machine).
Running the driver's ``fetch`` on a connection checked out of that engine's pool (``AsyncEngine.raw_connection()``)
comes closer (255–480 µs per request), but the pool hands a returned connection to whoever asks first, so under 64
concurrent lookups its p99 was 145–515 ms unless a FIFO semaphore is put in front of it — this module's
turn-taking again, and still 12–33 % more CPU per lookup than here.

Batched lookups (`fetch_keyed`, `Database.fetch_keyed`): a `KeyedRead` is one read by a key (a tracking number)
with a second form for a list of keys (``… = ANY($1)``). Under load most of a point read's cost is the round trip
itself — 65–100 µs of the gateway's CPU per asyncpg query and about as much of PostgreSQL's, on the same cores —
so the lookups of one read that queue up while queries are in flight share the next query:

* a lookup puts its key in the loop's pending set and waits for its own future; when no batch is about to start
  and fewer batch queries run than the reader has connections, it starts a batch task, which takes the pending
  keys when it first runs (the loop's next turn — lookups arriving in this one come along) and queries them at
  once: at low load a lookup goes out as soon as it is asked, one loop turn later;
* while every connection has a batch query in flight, lookups only queue; a task whose query returns answers its
  lookups and, in the same step, takes what queued up behind it (at most ``batch_limit`` keys, the longest
  waiting first; a task that cannot take them all starts another while a connection is left for it);
* each lookup is answered by a query that started after it was asked (the keys are taken before the query is
  sent), in autocommit as every read here — nothing is kept between queries; the rows are split back by the key
  column, and lookups of the same key get the same rows (each its own list);
* the query runs in the batch task, not in any lookup's: a lookup that is cancelled (its client went away) drops
  its own future and the others still get the answer; a key whose lookups have all gone is not queried;
* a failed batch query (the connection dropped as above) answers ``None`` to all of its lookups, and each runs
  the one-key form through the engine, exactly as a single failed read here does — so every error reaches each
  caller as the engine raises it.

Connections belong to the event loop that opened them (asyncpg's rule); `close` (`Database.dispose`) closes those
of the calling loop and terminates the others'. A forked child forgets its parent's connections.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import os
import time
import weakref
from collections.abc import Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information shipped
from sqlalchemy import Dialect
from sqlalchemy.engine import URL

from gateway.storage.prepared import CompiledRead, KeyedRead, PreparedRead, ReadRow

log = logging.getLogger("onewindow.storage")

#: Connections per event loop: queries on one connection run one at a time, a handful keeps the loop busy.
DEFAULT_CONNECTIONS = 4
#: Opening a connection may take this long; after a failure the engine answers alone for the back-off time.
CONNECT_TIMEOUT_SECONDS = 5.0
CONNECT_BACKOFF_SECONDS = 5.0


Answer = asyncio.Future[list[ReadRow] | None]


class _Batches:
    """One event loop's lookups of one `KeyedRead`: those waiting for the next query, and the tasks running them."""

    __slots__ = ("gathering", "pending", "running")

    def __init__(self) -> None:
        #: Key -> the lookups of it waiting for a query to take them (in arrival order).
        self.pending: dict[Any, list[Answer]] = {}
        #: Batch tasks alive (at most the reader's connections), and whether one of them is about to take keys.
        self.running = 0
        self.gathering = False


class _LoopConnections:
    """One event loop's connections: the idle ones, how many exist, and the readers waiting for one; its lookups
    by key waiting to be batched."""

    __slots__ = ("batches", "closed", "idle", "size", "tasks", "waiters")

    def __init__(self) -> None:
        self.idle: list[asyncpg.Connection] = []
        self.size = 0
        self.waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        #: Set by `PostgresReader.close`: connections still in use are closed when they come back.
        self.closed = False
        self.batches: dict[KeyedRead, _Batches] = {}
        #: The batch tasks (held here: the loop keeps only weak references to tasks).
        self.tasks: set[asyncio.Task[None]] = set()


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

    async def fetch_keyed(self, read: KeyedRead, key: Any) -> list[ReadRow] | None:
        """The rows of ``read`` for ``key``, answered by a query of ``read.many`` that started after this call
        (with the other keys waiting then); ``None`` when the engine's path must answer instead."""
        loop = asyncio.get_running_loop()
        conns = self._for_loop()
        batches = conns.batches.get(read)
        if batches is None:
            batches = conns.batches[read] = _Batches()
        answer: Answer = loop.create_future()
        waiting = batches.pending.get(key)
        if waiting is None:
            batches.pending[key] = [answer]
        else:
            waiting.append(answer)
        if not batches.gathering and batches.running < self.max_connections:
            self._start_batch(loop, conns, read, batches)
        # A cancelled lookup cancels its own answer only: the query goes on for the others.
        return await answer

    def _start_batch(
        self, loop: asyncio.AbstractEventLoop, conns: _LoopConnections, read: KeyedRead, batches: _Batches
    ) -> None:
        """A task that takes the pending keys when it first runs — the loop's next turn: the lookups arriving in
        this one come along — and queries them (a task of its own, so that no lookup's cancellation cancels it)."""
        batches.gathering = True
        batches.running += 1
        state = _BatchTask()
        task = loop.create_task(self._run_batches(conns, read, batches, state), name=f"onewindow.batch.{read.name}")
        conns.tasks.add(task)
        task.add_done_callback(functools.partial(_batch_done, conns, read, batches, state))

    async def _run_batches(
        self, conns: _LoopConnections, read: KeyedRead, batches: _Batches, state: _BatchTask
    ) -> None:
        """Query up to ``read.batch_limit`` pending keys and answer their lookups; then, in the same step, the
        lookups that queued up behind the query (unless another task is about to take them)."""
        state.started = True
        try:
            while True:
                batches.gathering = False
                state.taken = _take(batches.pending, read.batch_limit)
                if not state.taken:
                    return
                if batches.pending and batches.running < self.max_connections:
                    # More keys than one batch takes, and a connection left for another.
                    self._start_batch(asyncio.get_running_loop(), conns, read, batches)
                rows = await self.fetch(read.many, {read.keys: list(state.taken)})
                _answer(state.taken, rows, read.index)
                state.taken = {}
                if batches.gathering or not batches.pending:
                    return
        except BaseException:
            # Cancelled (the loop is closing) or broken: the engine answers these lookups and those still waiting.
            _answer(state.taken, None, read.index)
            pending, batches.pending = batches.pending, {}
            _answer(pending, None, read.index)
            raise
        finally:
            batches.running -= 1

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

    @staticmethod
    async def _set_codecs(conn: asyncpg.Connection) -> None:
        """JSON and JSONB as the engine's connections have them: parameters arrive as JSON text (the column type's
        bind processor serialised them) and results are decoded with the standard ``json`` module, the engine's
        default deserialiser — so a `PreparedRead` gives the same values here as through the engine."""
        for name in ("json", "jsonb"):
            await conn.set_type_codec(name, encoder=_as_text, decoder=json.loads, schema="pg_catalog", format="text")

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


class _BatchTask:
    """What one batch task has taken, and whether it ever ran (a task cancelled before its first step runs none of
    its code: its done callback tidies up)."""

    __slots__ = ("started", "taken")

    def __init__(self) -> None:
        self.started = False
        self.taken: dict[Any, list[Answer]] = {}


def _batch_done(
    conns: _LoopConnections, read: KeyedRead, batches: _Batches, state: _BatchTask, task: asyncio.Task[None]
) -> None:
    conns.tasks.discard(task)
    if not state.started:
        batches.running -= 1
        batches.gathering = False
        pending, batches.pending = batches.pending, {}
        _answer(pending, None, read.index)
    elif not task.cancelled() and (exc := task.exception()) is not None:
        log.error("batched PostgreSQL read of %s failed", read.name, exc_info=exc)


def _take(pending: dict[Any, list[Answer]], limit: int) -> dict[Any, list[Answer]]:
    """Up to ``limit`` of the longest-waiting keys out of ``pending`` (keys whose lookups all went away skipped)."""
    taken: dict[Any, list[Answer]] = {}
    while pending and len(taken) < limit:
        key = next(iter(pending))
        answers = pending.pop(key)
        if any(not answer.done() for answer in answers):
            taken[key] = answers
    return taken


def _answer(taken: dict[Any, list[Answer]], rows: list[ReadRow] | None, index: int) -> None:
    """Each lookup its key's rows (a list of its own), or ``None`` for all."""
    if rows is None:
        for answers in taken.values():
            for answer in answers:
                if not answer.done():
                    answer.set_result(None)
        return
    by_key: dict[Any, list[ReadRow]] = {}
    for row in rows:
        found = by_key.get(row[index])
        if found is None:
            by_key[row[index]] = [row]
        else:
            found.append(row)
    for key, answers in taken.items():
        mine = by_key.get(key, [])
        for answer in answers:
            if not answer.done():
                answer.set_result(mine)
                mine = list(mine)


def _as_text(value: str) -> str:
    return value


def _resolve_none(waiter: asyncio.Future[asyncpg.Connection | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_readers: weakref.WeakSet[PostgresReader] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reader in list(_readers):
        reader._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["DEFAULT_CONNECTIONS", "PostgresReader"]
