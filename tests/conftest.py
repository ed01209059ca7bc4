"""Shared fixtures: one parametrised database (SQLite, PostgreSQL) and one parametrised store (memory, Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import settings as hypothesis_settings

from gateway.settings import Settings, load_settings
from gateway.storage import Database
from tests.dbutil import isolated_settings, open_database
from tests.services import POSTGRES_URL, REDIS_URL, need

# Property tests check rules, not speed: no per-example deadline (on a loaded CI machine a first example that loads a
# calendar or collects garbage can take a few hundred milliseconds, and Hypothesis would call that a failure).
hypothesis_settings.register_profile("onewindow", deadline=None)
hypothesis_settings.load_profile("onewindow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first; the others keep their order (the sort is stable and the same in every
    pytest-xdist worker). Started last, one of them would keep a worker busy after the others have finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: an empty SQLite file under tmp_path, or the real PostgreSQL service."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'onewindow.sqlite3'}"
    return need(POSTGRES_URL, "PostgreSQL")


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """An empty string (in-memory stores) or the real Redis service's URL."""
    if request.param == "memory":
        return ""
    return need(REDIS_URL, "Redis")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a fresh data dir (no provincial platform runs here: the reporter stays off; its tests
    turn it on with a simulated platform)."""
    return msgspec.structs.replace(load_settings(environ={}, data_dir=tmp_path / "var"), province_reporting=False)


@pytest.fixture
async def db_settings(database_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings (data dir under tmp_path) on an isolated database at the newest schema with empty tables:
    a SQLite file, or a PostgreSQL schema of this test's own (tests/dbutil.py)."""
    async with isolated_settings(database_url, tmp_path / "var") as settings:
        yield msgspec.structs.replace(settings, province_reporting=False)  # no platform here (see `settings`)


@pytest.fixture
async def database(db_settings: Settings) -> AsyncIterator[Database]:
    """A migrated `Database` on ``db_settings`` (parametrised sqlite / postgres), disposed afterwards."""
    async with open_database(db_settings) as db:
        yield db
