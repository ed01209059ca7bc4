"""The test databases themselves: every test starts on an empty, migrated database of its own."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, text

from gateway.audit import append
from gateway.audit.tables import audit_records
from gateway.storage import Database
from tests.dbutil import isolated_settings, open_database
from tests.services import POSTGRES_URL, need


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(audit_records))).scalar_one())


async def test_a_reused_postgres_schema_starts_empty_and_intact(tmp_path: Path) -> None:
    url = need(POSTGRES_URL, "PostgreSQL")
    async with isolated_settings(url, tmp_path) as settings, open_database(settings) as db:
        first = settings.database_schema
        async with db.transaction() as conn:
            await append(conn, actor="system", action="a.b", object_type="t", object_id="1")
    async with isolated_settings(url, tmp_path) as settings, open_database(settings) as db:
        assert settings.database_schema == first  # pooled
        assert await _count(db) == 0
        async with db.transaction() as conn:  # the append-only trigger survived the cleaning
            await append(conn, actor="system", action="a.b", object_type="t", object_id="1")
        try:
            async with db.transaction() as conn:
                await conn.execute(audit_records.delete())
            raise AssertionError("DELETE on audit_records was allowed")
        except Exception as exc:
            assert "append-only" in str(exc)
        async with db.transaction() as conn:  # a test that changes the structure …
            await conn.execute(text("DROP TRIGGER audit_records_append_only ON audit_records"))
    async with isolated_settings(url, tmp_path) as settings:
        assert settings.database_schema != first  # … never hands its schema to the next test


async def test_sqlite_databases_are_separate_files(tmp_path: Path) -> None:
    one, two = f"sqlite:///{tmp_path / 'a.sqlite3'}", f"sqlite:///{tmp_path / 'b.sqlite3'}"
    async with isolated_settings(one, tmp_path / "a") as a, open_database(a) as db:
        async with db.transaction() as conn:
            await append(conn, actor="system", action="a.b", object_type="t", object_id="1")
        assert await _count(db) == 1
        assert (tmp_path / "a.sqlite3").stat().st_mode & 0o077 == 0
    async with isolated_settings(two, tmp_path / "b") as b, open_database(b) as db:
        assert await _count(db) == 0
