"""What the storage tests share: a real `DatabaseBusy`, as a write transaction waiting past its turn raises it."""

from __future__ import annotations

import pytest

from gateway.settings import Settings
from gateway.storage import Database, DatabaseBusy


@pytest.fixture
async def busy_error(settings: Settings) -> DatabaseBusy:
    """The error a second write transaction raises behind an open one, on SQLite, after a short wait for its turn."""
    db = Database.from_url(settings.sqlalchemy_url, write_wait_seconds=0.1)
    try:
        await db.migrate()
        async with db.transaction():
            with pytest.raises(DatabaseBusy) as info:
                async with db.transaction():
                    pass
        return info.value
    finally:
        await db.dispose()
