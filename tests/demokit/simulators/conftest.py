"""Simulators started for real on 127.0.0.1 (ephemeral ports) with a small, fixed population."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from connectors.trust import TrustStore
from demokit.simulators import Simulators, run_simulators

SEED = 424242
#: The population's reference day; verification uses it too, so expiry does not drift with the calendar.
AS_OF = dt.date(2025, 6, 30)
CITIZENS = 160
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def sims(tmp_path: Path) -> AsyncIterator[Simulators]:
    async with run_simulators(seed=SEED, citizens=CITIZENS, data_dir=tmp_path, as_of=AS_OF, token_ttl=2) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture(scope="session")
def trust_store() -> TrustStore:
    return TrustStore.load(REPO / "config" / "trust")
