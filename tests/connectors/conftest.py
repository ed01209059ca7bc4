"""Fixtures for connector tests: a scripted department server and a pool over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.client import ConnectorPool
from connectors.trust import TrustStore
from tests.connectors.helpers import DepartmentServer, make_certificate, public_security_spec


@pytest.fixture
async def dept_server() -> AsyncIterator[DepartmentServer]:
    server = DepartmentServer([make_certificate(n) for n in range(25)])
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def trust() -> TrustStore:
    return TrustStore.load(Path(__file__).resolve().parents[2] / "config" / "trust")


@pytest.fixture
async def pool(dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore) -> AsyncIterator[ConnectorPool]:
    spec = public_security_spec(dept_server.base_url)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        yield pool
