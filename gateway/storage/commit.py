"""Work a write transaction does last, just before it commits (`before_commit`).

A domain that wants to write something once per transaction, at its very end — the audit chain appends the
transaction's records there in one statement, so the chain's lock (PostgreSQL) is held from then until the commit
instead of from the first record on — asks for the transaction's `CommitStage` and registers a step under a key
of its own::

    stage = before_commit(conn)          # None: not a `Database.transaction` (write at once instead)
    if stage is not None:
        batch = stage.state.setdefault(MY_KEY, [])
        stage.add(MY_KEY, lambda conn: write(conn, batch))   # once per key; later adds of the key are ignored

`Database.transaction` runs the steps in the order they were first added, on the transaction's connection, after
its block ended without an exception and before ``COMMIT``; a step that raises rolls the whole transaction back.
When the block raises, no step runs. Steps run once: work a step adds to the stage while the steps run is not
run. Storage knows nothing of what the steps do (it imports no domain).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

Step = Callable[[AsyncConnection], Awaitable[None]]


class CommitStage:
    """The steps one write transaction runs before it commits, and state the steps' owners keep meanwhile."""

    __slots__ = ("_closed", "_steps", "state")

    def __init__(self) -> None:
        self._steps: dict[object, Step] = {}
        self._closed = False
        #: Per-transaction state, keyed by each owner's own key (e.g. the records waiting to be written).
        self.state: dict[object, Any] = {}

    def add(self, key: object, step: Step) -> None:
        """Run ``step`` before the commit, once for ``key`` (a later add of the same key is ignored)."""
        if self._closed:
            raise RuntimeError("the transaction's before-commit steps already ran")
        self._steps.setdefault(key, step)

    async def run(self, conn: AsyncConnection) -> None:
        self._closed = True
        for step in list(self._steps.values()):
            await step(conn)


_open: dict[AsyncConnection, CommitStage] = {}


def before_commit(conn: AsyncConnection) -> CommitStage | None:
    """The commit stage of ``conn``'s write transaction, or None when ``conn`` is not a `Database.transaction`'s
    connection (a read, or a connection opened another way): then the caller writes at once."""
    stage = _open.get(conn)
    if stage is None or stage._closed:
        return None
    return stage


def open_stage(conn: AsyncConnection) -> CommitStage:
    """`Database.transaction` only: a new stage for the transaction just begun on ``conn``."""
    stage = _open[conn] = CommitStage()
    return stage


def close_stage(conn: AsyncConnection) -> None:
    """`Database.transaction` only: forget ``conn``'s stage (the transaction ended, whichever way)."""
    _open.pop(conn, None)


__all__ = ["CommitStage", "before_commit"]
