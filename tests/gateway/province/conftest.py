"""The gateway on a loopback port reporting to the simulated provincial platform on another."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from demokit.simulators import Simulators
from demokit.simulators.province import ProvincePlatformSimulator, run_province_platform
from gateway.settings import Settings
from tests.gateway.departments.fixtures import served_gateway
from tests.gateway.intake.fixtures import Gateway


class Platform:
    def __init__(self, sim: ProvincePlatformSimulator, url: str) -> None:
        self.sim = sim
        self.url = url


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    sim = ProvincePlatformSimulator(environ={})
    async with run_province_platform(sim) as url:
        yield Platform(sim, url)


@pytest.fixture
async def reporting_gateway(
    db_settings: Settings, shared_simulators: Simulators, platform: Platform
) -> AsyncIterator[Gateway]:
    """Reporting driven by the test (the background task is off), to the simulated platform."""
    settings = msgspec.structs.replace(db_settings, province_url=platform.url, province_reporting=False)
    async with served_gateway(settings, shared_simulators) as gw:
        yield gw
