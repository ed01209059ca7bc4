"""Migrations: `alembic upgrade heads` works on both databases from empty, is idempotent and safe to run
concurrently, and the migrated schema equals `metadata` (every domain's tables)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from gateway.settings import Settings
from gateway.storage import Database
from gateway.storage.migrate import current_revisions, pending_revisions, script_heads
from gateway.storage.tables import metadata
from tests.dbutil import isolated_settings, migrated_database


@pytest.fixture
async def empty_settings(database_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """An isolated database with no tables at all (the `db_settings` fixture's is already migrated)."""
    async with isolated_settings(database_url, tmp_path / "fresh", migrated=False) as settings:
        yield settings


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_real_migration_matches_metadata(empty_settings: Settings) -> None:
    async with migrated_database(empty_settings) as db, db.read() as conn:
        diffs = await conn.run_sync(_differences)
        assert await conn.run_sync(pending_revisions) == set()
        current = await conn.run_sync(current_revisions)
    assert diffs == [], f"migrations and metadata differ (add a migration): {diffs}"
    assert current and set(current) <= set(script_heads()) | {"0001_foundation"}


async def test_test_databases_match_metadata_too(database: Database) -> None:
    """The fixture's fast path (template copy / replayed DDL) yields the same schema as a real migration."""
    async with database.read() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.run_sync(pending_revisions) == set()


async def test_migrate_twice_and_concurrently(empty_settings: Settings) -> None:
    first, second = Database.from_settings(empty_settings), Database.from_settings(empty_settings)
    try:
        await asyncio.gather(first.migrate(), second.migrate())
        await first.migrate()
        async with first.read() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"audit_records", "audit_checkpoints", "tokens", "alembic_version"} <= tables
    finally:
        await first.dispose()
        await second.dispose()
