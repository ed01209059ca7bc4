"""intake_0002 on a database that already holds cases: the materials get the level their state implies (a prefilled
certificate A, an upload C, nothing for a missing one), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text

from gateway.settings import Settings
from gateway.storage.migrate import alembic_config
from tests.dbutil import isolated_settings, migrated_database, open_database


@pytest.fixture
async def empty_settings(database_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    async with isolated_settings(database_url, tmp_path / "fresh", migrated=False) as settings:
        yield settings


def _upgrade_to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return run


async def test_existing_materials_get_their_level(empty_settings: Settings) -> None:
    at = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
    async with open_database(empty_settings) as db, db.engine.connect() as conn, conn.begin():
        if db.schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        await conn.run_sync(_upgrade_to("intake_0001"))
        await conn.execute(
            text(
                "INSERT INTO applications (id, item_code, item_name, item_version, department, filing_unit, "
                "handling_unit, status, version, applicant_id_number, applicant_id_index, "
                "applicant_id_number_masked, applicant_name, applicant_name_masked, applicant_phone, "
                "applicant_phone_masked, consent, purpose, created_by, created_at, updated_at, deadline_estimated) "
                "VALUES ('a1', '0205006100', 'x', 1, 'civil_affairs', 'u', 'u', 'draft', 1, 'v1.k.x', 'i', 'm', "
                "'v1.k.x', 'm', 'v1.k.x', 'm', true, 'p', 'system', :at, :at, false)"
            ),
            {"at": at},
        )
        for n, (key, state) in enumerate((("a", "prefilled"), ("b", "provided"), ("c", "missing"))):
            await conn.execute(
                text(
                    "INSERT INTO application_materials (id, application_id, key, position, name, required, "
                    "source, state, updated_at) VALUES (:id, 'a1', :key, :n, 'x', true, 'applicant', :state, :at)"
                ),
                {"id": f"m{n}", "key": key, "n": n, "state": state, "at": at},
            )
    async with migrated_database(empty_settings) as db, db.read() as conn:
        rows = (
            await conn.execute(text("SELECT key, level, level_set_by FROM application_materials ORDER BY key"))
        ).all()
    assert [tuple(r) for r in rows] == [("a", "A", "system"), ("b", "C", "system"), ("c", None, None)]
