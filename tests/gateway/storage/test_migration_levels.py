"""Migrations on databases that already hold data, on SQLite and PostgreSQL: intake_0002 gives the materials of
existing cases the level their state implies (a prefilled certificate A, an upload C, nothing for a missing one);
certificates_0003 keeps the stored certificates while their identifier's unique constraint becomes a plain index."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text

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


def _identifier_indexes(connection: Connection) -> tuple[list[str], list[str]]:
    """(unique constraints, indexes) on ``certificates.identifier``, by name."""
    inspector = inspect(connection)
    constraints = inspector.get_unique_constraints("certificates")
    unique = [u["name"] or "" for u in constraints if u["column_names"] == ["identifier"]]
    plain = [
        i["name"] or ""
        for i in inspector.get_indexes("certificates")
        if i["column_names"] == ["identifier"] and not i["unique"]  # PostgreSQL lists a constraint's index too
    ]
    return unique, plain


async def test_certificates_keep_their_rows_when_the_identifier_index_stops_being_unique(
    empty_settings: Settings,
) -> None:
    at = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
    async with open_database(empty_settings) as db, db.engine.connect() as conn, conn.begin():
        if db.schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        await conn.run_sync(_upgrade_to("certificates_0002"))
        assert await conn.run_sync(_identifier_indexes) == (["uq_certificates_identifier"], [])
        for n in range(3):
            await conn.execute(
                text(
                    "INSERT INTO certificates (id, identifier, type_key, type_code, department, name, number, "
                    "issuer_name, issuer_code, issue_date, valid_from, status, holder_code_type, holder_index, "
                    "holder_code_enc, holder_name_enc, payload_enc, verification_status, verification_reason, "
                    "fetched_at, updated_at) VALUES (:id, :identifier, 'birth', '1', 'health', 'x', :n, 'x', 'x', "
                    ":day, :day, '01', '111', 'i', 'v1.k.x', 'v1.k.x', 'v1.k.x', 'valid', '', :at, :at)"
                ),
                {"id": f"c{n}", "identifier": f"ident-{n}", "n": str(n), "day": at.date(), "at": at},
            )
        await conn.run_sync(_upgrade_to("certificates_0003"))
        assert await conn.run_sync(_identifier_indexes) == ([], ["ix_certificates_identifier"])
        rows = (await conn.execute(text("SELECT id, identifier, number FROM certificates ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(f"c{n}", f"ident-{n}", str(n)) for n in range(3)]
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "certificates_0002"))
        assert await conn.run_sync(_identifier_indexes) == (["uq_certificates_identifier"], [])
        assert (await conn.execute(text("SELECT count(*) FROM certificates"))).scalar_one() == 3
