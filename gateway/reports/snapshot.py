"""Read connections that share one snapshot, so a report's independent grouped reads can run side by side and
still count the same database state.

On PostgreSQL the first connection opens a ``REPEATABLE READ, READ ONLY`` transaction and exports its snapshot
(``pg_export_snapshot``); the others open the same kind of transaction and import it (``SET TRANSACTION
SNAPSHOT``), so every read of one report sees exactly the same committed rows — a stronger guarantee than one
``READ COMMITTED`` transaction, where each statement takes its own. Each transaction also raises ``work_mem`` for
itself (`REPORT_WORK_MEM`): the grouped reads sort and hash tens of thousands of rows and would otherwise spill to
disk. On SQLite there is one connection: its read transaction is one snapshot already, and a second connection
would only wait for the first.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.database import Database

#: Read connections one report generation uses on PostgreSQL (the machine this was measured on has 2 cores).
REPORT_READERS: Final = 3
#: ``work_mem`` of a report's read transactions (PostgreSQL; the server default is 4 MB).
REPORT_WORK_MEM: Final = "32MB"
_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$")


@contextlib.asynccontextmanager
async def shared_snapshot(db: Database, readers: int = REPORT_READERS) -> AsyncIterator[list[AsyncConnection]]:
    """``readers`` read-only connections in one snapshot (PostgreSQL), or the one read connection (SQLite)."""
    if db.dialect != "postgresql":
        async with db.read() as conn:
            yield [conn]
        return
    async with contextlib.AsyncExitStack() as stack:
        conns: list[AsyncConnection] = []
        snapshot = ""
        for _ in range(readers):
            conn = await stack.enter_async_context(db.engine.connect())
            await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            await stack.enter_async_context(conn.begin())
            if not snapshot:
                snapshot = str((await conn.execute(text("SELECT pg_export_snapshot()"))).scalar_one())
                if not _SNAPSHOT_ID.match(snapshot):  # pragma: no cover - the server's own format
                    raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
            else:
                # The first statement of the transaction; SET takes no bound parameters (the id was checked).
                await conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            await conn.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
            conns.append(conn)
        yield conns


__all__ = ["REPORT_READERS", "REPORT_WORK_MEM", "shared_snapshot"]
