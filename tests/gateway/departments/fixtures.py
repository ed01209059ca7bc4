"""The gateway served by uvicorn on a loopback port (department systems and the provincial platform call it over
real HTTP), with the intake fixture's helpers and tokens, on the parametrised database."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar

from demokit.simulators import Simulators
from demokit.simulators.runner import PKI_SUBDIR
from gateway.app import create_app
from gateway.context import context_of
from gateway.identity import create_token
from gateway.settings import Settings
from tests.gateway.intake.fixtures import TOKENS, Gateway

#: Department tokens for the push route (role department, bound to one department each).
DEPARTMENT_TOKENS: dict[str, dict[str, Any]] = {
    "dept_disabled_persons": {"role": "department", "department": "disabled_persons"},
    "dept_veterans": {"role": "department", "department": "veterans"},
    "dept_civil_affairs": {"role": "department", "department": "civil_affairs"},
}


@contextlib.asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 at an ephemeral port (its lifespan run by uvicorn); yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def served_gateway(settings: Settings, sims: Simulators) -> AsyncIterator[Gateway]:
    sims.clear_faults()
    if not (settings.data_dir / PKI_SUBDIR).exists():
        shutil.copytree(sims.pki_dir, settings.data_dir / PKI_SUBDIR)
    settings = msgspec.structs.replace(settings, simulator_base_host=sims.control_url, lookup_budget_seconds=3.0)
    app = create_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        gw = Gateway(app=app, client=client, settings=settings, sims=sims)
        for name, spec in (TOKENS | DEPARTMENT_TOKENS).items():
            token, _ = await create_token(context_of(app).database, **spec)
            gw.tokens[name] = token
        yield gw
    sims.clear_faults()


@pytest.fixture
async def live_gateway(db_settings: Settings, shared_simulators: Simulators) -> AsyncIterator[Gateway]:
    async with served_gateway(db_settings, shared_simulators) as gw:
        yield gw


__all__ = ["DEPARTMENT_TOKENS", "live_gateway", "serve", "served_gateway"]
