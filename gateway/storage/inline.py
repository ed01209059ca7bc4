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

Connections are closed by `close` (`Database.dispose`); a forked child never touches its parent's connections.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.engine import URL

from gateway.storage.prepared import CompiledRead, PreparedRead, ReadRow

log = logging.getLogger("onewindow.storage")

#: The progress handler runs every this many SQLite VM instructions.
_STEP_GRAIN = 1000
#: Default budget of VM instructions (x `_STEP_GRAIN`) for one inline statement: ~1–3 ms of work; an indexed
#: lookup of a case and its history needs well under one grain.
DEFAULT_STEP_BUDGET = 100


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
        self._warned: set[PreparedRead] = set()
        #: Statements answered inline / handed to the aiosqlite path (observability and tests).
        self.served = 0
        self.deferred = 0
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

__all__ = ["DEFAULT_STEP_BUDGET", "InlineReader"]
