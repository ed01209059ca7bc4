"""The gateway wires the certificate service and reports the departments in readiness (never critically)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from demokit.simulators import Simulators, run_simulators
from gateway.app import create_app
from gateway.certificates.lookup import CertificateService
from gateway.context import context_of
from gateway.settings import Settings


@pytest.fixture
def threaded_sims(db_settings: Settings) -> Iterator[Simulators]:
    """The simulators on their own thread and event loop: the test client drives the app through a blocking
    portal, which would stall simulators sharing the test's loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Simulators] = {}
    stop = asyncio.Event()

    async def serve() -> None:
        async with run_simulators(seed=7, citizens=60, data_dir=db_settings.data_dir) as running:
            holder["sims"] = running
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "simulators did not start"
    try:
        yield holder["sims"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


async def test_app_state_and_readiness(db_settings: Settings, threaded_sims: Simulators) -> None:
    sims = threaded_sims
    settings = msgspec.structs.replace(db_settings, simulator_base_host=sims.control_url)
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        service = context_of(app).certificates
        assert isinstance(service, CertificateService)
        pool = context_of(app).connectors
        assert pool is not None and sorted(pool.codes) == sorted(sims.urls)
        assert service.type_departments["business_license"] == "market_regulation"
        body = (await client.get("/health/ready")).json()
        assert body["checks"]["departments"] == {"ok": True, "critical": False, "detail": "7/7 reachable"}


async def test_unreachable_departments_do_not_make_the_gateway_unready(db_settings: Settings) -> None:
    settings = msgspec.structs.replace(db_settings, simulator_base_host="http://127.0.0.1:9")
    async with AsyncTestClient(create_app(settings)) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 200
        check = response.json()["checks"]["departments"]
        assert check["ok"] is False and check["critical"] is False
