"""Alembic environment: always online, on the connection `gateway.storage.migrate` passes in.

Every domain's tables are imported through `gateway.storage.tables`, so autogenerate sees the whole schema.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from gateway.storage.metadata import UTCDateTime
from gateway.storage.tables import metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations use plain SQLAlchemy types, never our TypeDecorators (a migration must not change with the app).
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported; run `await Database.migrate()`")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Developer use of the alembic command line (e.g. ``revision --autogenerate``): the configured database.
    import asyncio

    from gateway.settings import load_settings
    from gateway.storage.database import Database

    async def _online() -> None:
        db = Database.from_settings(load_settings())
        try:
            async with db.transaction() as conn:
                await conn.run_sync(_run)
        finally:
            await db.dispose()

    asyncio.run(_online())


_main()
