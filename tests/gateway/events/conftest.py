"""The whole gateway (``gateway`` fixture) with webhooks allowed to loopback receivers and time compressed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from gateway.settings import Settings
from tests.gateway.intake.fixtures import Gateway, gateway

__all__ = ["Gateway", "gateway"]

#: Retry intervals, breaker periods and the retry window a thousand times shorter: 5 s becomes 5 ms.
TIME_SCALE = 0.001


@pytest.fixture
async def db_settings(db_settings: Settings) -> AsyncIterator[Settings]:
    yield msgspec.structs.replace(
        db_settings,
        webhook_allowed_networks="127.0.0.0/8",
        webhook_time_scale=TIME_SCALE,
        webhook_timeout_seconds=3.0,
        events_poll_seconds=0.02,
    )
