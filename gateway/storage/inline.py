"""Short SQLite reads on the calling thread: `InlineReader`, the SQLite side of `Database.fetch`.

Why it is safe to run a read on the event loop's thread: the database is in WAL mode, where a reader never waits
for a writer (it reads the last committed snapshot while the writer appends to the WAL), so a read blocks for as
long as the query itself runs — tens of microseconds for an indexed point lookup, less than one hand-off to
aiosqlite's worker thread. What keeps it safe:

* one plain ``sqlite3`` connection per thread (so per event loop), opened ``mode=rw`` (never creates a file),
  ``PRAGMA query_only=ON`` (it cannot write), in autocommit: every statement is its own read transaction, which
  starts at the newest commit — another connection's or another process's commit is visible to the next read.
  Results are always fetched to the end and the cursor closed, so no read transaction outlives its statement (an
  open one would pin an old snapshot);
* ``busy_timeout=0``: when SQLite cannot start the read at once (a WAL recovery, an exclusive lock) the call does
  not wait on the loop; it answers ``None`` and `Database.fetch` runs the statement through aiosqlite instead, which
  waits off the loop with the usual busy timeout;
* a budget of SQLite virtual-machine steps (a progress handler): a statement that turns out not to be a point read
  (a scan of a large table) is interrupted after about a millisecond or two of work and also goes the aiosqlite way;
* a file that is not in WAL mode (or an in-memory database, which is private to its connection) is never read
  inline.

Keyed lookups (`fetch_keyed`, behind `Database.fetch_keyed`): the lookups of one `KeyedRead` asked in the same
turn of the event loop are read together, in one statement — the one-key form with its ``column = :key`` turned
into ``column IN (…)`` for all their keys (at most ``batch_limit``; the list padded to a power of two, so a handful
of compiled forms serve every batch). Under load that is what a lookup costs most: measured with 64 concurrent
tracking lookups, each one's own statement cost ~30 µs of the worker's CPU, about as much as all the rest of the
lookup (bench/RESULTS.md). What holds:

* only when lookups come together: while the recent turns of the loop (or this one so far) have had fewer than
  `BATCH_FROM` lookups of the read, each reads alone at once, as any `fetch` — waiting for a batch costs a turn of
  the loop, which a batch of one or two does not earn back (`batches`);
* a batched lookup puts its key in the loop's pending set and waits for its future; the first one of a turn
  schedules the batch with ``call_soon``, so it runs after every lookup already scheduled in that turn — a lookup
  is always answered by a read that started after it was asked, nothing is kept;
* the rows are split back by the key column, in the one-key form's order; each lookup gets a list of its own, and
  a lookup cancelled before its batch runs is left out;
* a one-key form that uses its key other than in one ``column = :key`` (or whose batch the reader cannot run:
  busy, over its step budget, an error) answers ``None`` to each lookup, which then reads alone through `fetch`'s
  path — so every error reaches each caller as a single read raises it.

Connections are closed by `close` (`Database.dispose`); a forked child never touches its parent's connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Dialect, Select, bindparam
from sqlalchemy.engine import URL
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from gateway.storage.prepared import CompiledRead, KeyedRead, PreparedRead, ReadRow

log = logging.getLogger("onewindow.storage")

#: The progress handler runs every this many SQLite VM instructions.
_STEP_GRAIN = 1000
#: Default budget of VM instructions (x `_STEP_GRAIN`) for one inline statement: ~1–3 ms of work; an indexed
#: lookup of a case and its history needs well under one grain.
DEFAULT_STEP_BUDGET = 100
#: The parameters of a keyed read's batch form (`_listed_read`): onewindow_key_0, onewindow_key_1, …
_KEYS = "onewindow_key"
#: Lookups of one keyed read per turn of the loop (recent average, or so far in this turn) from which a turn's
#: lookups are read together: a batched lookup waits one more turn of the loop (~10 µs of CPU), which a batch of
#: one or two does not earn back — measured at 4 connections, batching every lookup cost 11 % more CPU per lookup.
BATCH_FROM = 3
#: A lookup's pending futures, per key, of one keyed read.
_Pending = dict[Any, list["asyncio.Future[list[ReadRow] | None]"]]


class _Turns:
    """One keyed read's lookups on one event loop: the batch forming in this turn (if any), the lookups asked so far
    in this turn, and the recent lookups per turn (a moving mean: at the end of each turn with lookups, the mean of
    the previous value and that turn's count)."""

    __slots__ = ("counting", "load", "pending", "seen")

    def __init__(self) -> None:
        self.pending: _Pending | None = None
        self.seen = 0
        self.counting = False
        self.load = 0.0


def _listed_read(read: KeyedRead, size: int) -> PreparedRead | None:
    """``read.one`` with its ``column = :key`` as ``column IN (:onewindow_key_0, …)`` for ``size`` keys — a
    `PreparedRead` like any other, compiled and run by `InlineReader.fetch`; ``None`` when the key appears anywhere
    else in the statement (no batch form: each lookup reads alone)."""
    found: list[Any] = []

    def replace(element: Any, **_: Any) -> Any:
        if (
            isinstance(element, BinaryExpression)
            and element.operator is operators.eq
            and isinstance(element.right, BindParameter)
            and element.right.key == read.key
        ):
            found.append(element)
            return element.left.in_([bindparam(_key_name(i), type_=element.right.type) for i in range(size)])
        return None

    options: dict[str, Any] = {}
    statement = cast("Select[Any]", visitors.replacement_traverse(read.one.statement, options, replace))
    if len(found) != 1:
        return None
    listed = PreparedRead(statement, name=f"{read.name}[{size}]", step_budget=read.one.step_budget)
    return None if read.key in listed.required | listed.optional else listed


def _key_name(index: int) -> str:
    return f"{_KEYS}_{index}"


class _Slot:
    """One thread's connection and its statement's step count."""

    __slots__ = ("conn", "steps")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.steps = 0


class InlineReader:
    """Per-thread read-only ``sqlite3`` connections to one database file, for `PreparedRead` statements."""

    def __init__(
        self,
        path: Path,
        dialect: Dialect,
        *,
        step_budget: int = DEFAULT_STEP_BUDGET,
    ) -> None:
        self.path = path
        self.dialect = dialect
        self.step_budget = step_budget
        self._uri = f"{path.resolve().as_uri()}?mode=rw"
        self._slots: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._forms: dict[PreparedRead, CompiledRead | None] = {}
        self._listed: dict[tuple[KeyedRead, int], PreparedRead | None] = {}
        #: Keyed lookups per event loop and read: the batch forming, the recent load.
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[KeyedRead, _Turns]] = (
            weakref.WeakKeyDictionary()
        )
        self._warned: set[PreparedRead] = set()
        #: Statements answered inline / handed to the aiosqlite path (observability and tests); keyed lookups
        #: answered from a batch of more than one key.
        self.served = 0
        self.deferred = 0
        self.batched = 0
        _readers.add(self)

    @classmethod
    def for_url(cls, url: URL, dialect: Dialect, **options: Any) -> InlineReader | None:
        """A reader for a SQLite file URL; ``None`` for in-memory databases and URLs with options we do not
        interpret (those always take the aiosqlite path)."""
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:") or url.query:
            return None
        return cls(Path(database).expanduser(), dialect, **options)

    # -- reading ----------------------------------------------------------------------------------------------

    def fetch(self, query: PreparedRead, params: Mapping[str, Any]) -> list[ReadRow] | None:
        """The rows of ``query``, read on this thread; ``None`` when it must go the aiosqlite way instead."""
        try:
            form = self._forms[query]
        except KeyError:
            form = self._forms[query] = query.compiled_form(self.dialect)
        if form is None:
            self.deferred += 1
            return None
        slot = self._slots.get(threading.get_ident()) or self._open()
        if slot is None:
            self.deferred += 1
            return None
        # The progress handler stops the statement after ``self.step_budget`` grains; a query with a budget of its
        # own starts its count that much lower (or higher).
        slot.steps = 0 if query.step_budget is None else self.step_budget - query.step_budget
        arguments = form.arguments(params)
        try:
            cursor = slot.conn.execute(form.sql, arguments)
            try:
                raw = cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            # Busy, interrupted by the step budget, or a real error: the aiosqlite path either waits off the loop
            # or raises the error the way every other read does.
            self.deferred += 1
            if query not in self._warned and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT:
                self._warned.add(query)
                log.warning("%s exceeded the inline read budget; it runs on the database thread", query.name)
            return None
        self.served += 1
        return form.convert(raw)

    # -- keyed lookups, batched per turn of the loop ------------------------------------------------------------

    def batches(self, read: KeyedRead) -> bool:
        """Whether a lookup of ``read`` asked now joins this turn's batch (`fetch_keyed`) rather than reading alone
        (`fetch` of ``read.one``): a batch is forming already, or the recent turns have had `BATCH_FROM` lookups
        or more, or this one has had more. Every lookup asked counts for its turn."""
        loop = asyncio.get_running_loop()
        turns = self._turns_of(loop, read)
        turns.seen += 1
        if not turns.counting:
            turns.counting = True
            loop.call_soon(self._end_turn, turns)
        return turns.pending is not None or turns.load >= BATCH_FROM or turns.seen > BATCH_FROM

    def _turns_of(self, loop: asyncio.AbstractEventLoop, read: KeyedRead) -> _Turns:
        reads = self._turns.get(loop)
        if reads is None:
            reads = self._turns[loop] = {}
        turns = reads.get(read)
        if turns is None:
            turns = reads[read] = _Turns()
        return turns

    @staticmethod
    def _end_turn(turns: _Turns) -> None:
        turns.load = (turns.load + turns.seen) / 2
        turns.seen = 0
        turns.counting = False

    async def fetch_keyed(self, read: KeyedRead, key: Any) -> list[ReadRow] | None:
        """``read.one``'s rows for ``key``, read with the other lookups of ``read`` asked in this turn of the loop
        (see the module docstring); ``None`` when this lookup must read alone through `fetch`'s path."""
        loop = asyncio.get_running_loop()
        turns = self._turns_of(loop, read)
        pending = turns.pending
        if pending is None:
            pending = turns.pending = {}
            loop.call_soon(self._run_batch, turns, read)
        future: asyncio.Future[list[ReadRow] | None] = loop.create_future()
        pending.setdefault(key, []).append(future)
        return await future

    def _run_batch(self, turns: _Turns, read: KeyedRead) -> None:
        pending, turns.pending = turns.pending or {}, None
        waiting = {key: live for key, futures in pending.items() if (live := [f for f in futures if not f.done()])}
        keys = list(waiting)
        for start in range(0, len(keys), read.batch_limit):
            chunk = keys[start : start + read.batch_limit]
            try:
                answers = self.fetch_many(read, chunk)
            except Exception:  # answered below: each lookup reads alone and meets the error itself
                log.debug("%s: batched read failed; the lookups read alone", read.name, exc_info=True)
                answers = None
            for key in chunk:
                rows = None if answers is None else answers.get(key, [])
                for future in waiting[key]:
                    if not future.done():
                        future.set_result(None if rows is None else list(rows))

    def fetch_many(self, read: KeyedRead, keys: Sequence[Any]) -> dict[Any, list[ReadRow]] | None:
        """``read.one``'s rows for each of ``keys`` (distinct, at most ``read.batch_limit``), in one statement;
        ``None`` when the reader cannot answer them so."""
        if len(keys) == 1:
            rows = self.fetch(read.one, {read.key: keys[0]})
            return None if rows is None else {keys[0]: rows}
        size = min(1 << (len(keys) - 1).bit_length(), read.batch_limit)  # a power of two: few compiled forms
        try:
            listed = self._listed[(read, size)]
        except KeyError:
            listed = self._listed[(read, size)] = _listed_read(read, size)
        if listed is None:
            return None
        last = len(keys) - 1
        rows = self.fetch(listed, {_key_name(i): keys[min(i, last)] for i in range(size)})  # padded: the last key
        if rows is None:
            return None
        answers: dict[Any, list[ReadRow]] = {key: [] for key in keys}
        index = read.index
        for row in rows:
            found = answers.get(row[index])
            if found is not None:
                found.append(row)
        self.batched += len(keys)
        return answers

    def _open(self) -> _Slot | None:
        try:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA query_only=ON")
            mode = conn.execute("PRAGMA journal_mode").fetchone()
        except sqlite3.Error:
            conn.close()
            return None
        if not mode or str(mode[0]).lower() != "wal":
            # Not (yet) WAL: readers would wait for writers. The engine switches the file to WAL on its first
            # connection, so try again next time.
            conn.close()
            return None
        slot = _Slot(conn)
        budget = self.step_budget

        def over_budget() -> int:
            slot.steps += 1
            return 1 if slot.steps > budget else 0

        conn.set_progress_handler(over_budget, _STEP_GRAIN)
        with self._lock:
            self._slots[threading.get_ident()] = slot
        return slot

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection (the next read opens a new one)."""
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            slot.conn.close()

    def _forget_after_fork(self) -> None:
        # The parent's connections belong to the parent: the child never uses nor closes them (SQLite's rule for
        # fork), so they are kept referenced rather than left to the garbage collector.
        _inherited.extend(self._slots.values())
        self._slots = {}
        self._lock = threading.Lock()

    @property
    def open_connections(self) -> int:
        return len(self._slots)


_readers: weakref.WeakSet[InlineReader] = weakref.WeakSet()
_inherited: list[_Slot] = []


def _after_fork_in_child() -> None:
    for reader in list(_readers):
        reader._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["BATCH_FROM", "DEFAULT_STEP_BUDGET", "InlineReader"]
