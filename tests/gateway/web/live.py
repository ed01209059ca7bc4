"""A gateway served over real HTTP on loopback for the browser tests: uvicorn in a thread of its own, on the
department simulators, with one token per role; and the browser itself (Debian's Chromium, never a download).

The browser tests are synchronous (Playwright's sync API runs its own loop), so the gateway's loop lives in the
server's thread and tokens are created there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from demokit.simulators import Simulators
from demokit.simulators.runner import PKI_SUBDIR
from gateway.app import create_app
from gateway.context import context_of
from gateway.identity import create_token
from gateway.settings import load_settings
from tests.gateway.intake.fixtures import TOKENS
from tests.services import REQUIRE

CHROMIUM = Path(os.environ.get("ONEWINDOW_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[3]
#: Screenshots and printed notices of the browser tests (git ignores the folder).
ARTIFACTS = Path(os.environ.get("ONEWINDOW_TEST_ARTIFACTS", REPO / ".artifacts" / "browser"))
AXE = Path(__file__).resolve().parent / "fixtures" / "axe.min.js"


def need_chromium() -> Path:
    """Debian's Chromium; a missing one skips (fails where the services are required: CI installs it)."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@dataclass
class LiveGateway:
    base_url: str
    loop: asyncio.AbstractEventLoop
    app: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the server's loop (its database lives there) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)


@contextlib.contextmanager
def live_gateway(data_dir: Path, sims: Simulators) -> Iterator[LiveGateway]:
    shutil.copytree(sims.pki_dir, data_dir / PKI_SUBDIR)
    settings = load_settings(
        environ={}, data_dir=data_dir, simulator_base_host=sims.control_url, lookup_budget_seconds=8.0
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False, http="httptools")
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    for _ in range(600):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    if not server.started:
        raise RuntimeError("the gateway did not start")
    live = LiveGateway(base_url=f"http://127.0.0.1:{port}", loop=loop, app=app)
    try:
        for name, spec in TOKENS.items():
            token, _ = live.run(create_token(context_of(app).database, **spec))
            live.tokens[name] = token
        yield live
    finally:
        server.should_exit = True
        thread.join(30)
        loop.close()
        sock.close()


__all__ = ["ARTIFACTS", "AXE", "CHROMIUM", "LiveGateway", "live_gateway", "need_chromium"]
