"""The demo's other directions: the simulated provincial platform the gateway reports to, and the simulated
departments receiving the gateway's webhooks and pushing their results back (docs/departments.md,
docs/province.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TextIO

import aiohttp
import msgspec

from connectors.registry import load_departments
from connectors.spec import PushToken
from demokit.simulators.province import ProvincePlatformSimulator, run_province_platform
from demokit.simulators.pushback import PushbackAgent, run_pushback, subscribe_simulators
from gateway.identity import create_token
from gateway.settings import Settings
from gateway.storage import Database


@contextlib.asynccontextmanager
async def provincial_platform(settings: Settings) -> AsyncIterator[Settings]:
    """The simulated provincial platform on an ephemeral port; yields the settings pointing the reporter at it."""
    platform = ProvincePlatformSimulator(config_dir=settings.config_dir)
    async with run_province_platform(platform, host=settings.host) as url:
        yield msgspec.structs.replace(settings, province_url=url)


async def department_tokens(db: Database, settings: Settings) -> dict[str, str]:
    """A department token for each department whose ``[push]`` kind is token (the agent pushes with them)."""
    tokens: dict[str, str] = {}
    for spec in load_departments(settings.config_dir):
        if isinstance(spec.push, PushToken):
            token, _ = await create_token(db, role="department", department=spec.code, label=f"demo {spec.code} push")
            tokens[spec.code] = token
    return tokens


@contextlib.asynccontextmanager
async def department_pushback(
    gateway_url: str, admin_token: str, tokens: dict[str, str], settings: Settings, out: TextIO
) -> AsyncIterator[PushbackAgent]:
    """Serve the departments' webhook receiver and subscribe it (once the gateway is up): accepted cases are then
    taken through review, approval and delivery by their department. Without the subscriptions route the demo goes
    on and says so."""
    agent = PushbackAgent(gateway_url=gateway_url, tokens=tokens, config_dir=settings.config_dir, step_delay=2.0)
    async with run_pushback(agent, host=settings.host) as receiver:
        try:
            await subscribe_simulators(gateway_url, admin_token, agent, receiver)
            print(f"  webhooks       {receiver} (the departments hear of cases and push results back)", file=out)
        except (RuntimeError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            print(f"  warning: the departments are not subscribed to webhooks: {exc}", file=out)
        yield agent


__all__ = ["department_pushback", "department_tokens", "provincial_platform"]
