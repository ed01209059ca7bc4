"""The departments' other half: receive the gateway's webhooks and push results back.

`PushbackAgent` serves ``POST /webhooks``. Each delivery is verified as Standard Webhooks 1.0 with the
``standardwebhooks`` package (headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; the secret is
the ``whsec_…`` one the subscription answered); a delivery that does not verify answers 401, a ``webhook-id`` seen
before answers 204 again and does nothing. For an ``application.accepted`` event of an item whose department the
agent speaks for, it plays that department's system: after ``step_delay`` seconds each, it pushes ``in_review``,
``approved`` (with a result) and ``delivered`` to ``POST /api/v1/departments/{dept}/events``, authenticated as the
department's ``[push]`` section says (HMAC with its key, or a department token it was given). Event ids derive
from the webhook id, so a redelivered webhook or a retried push is idempotent at the gateway.

``GET /webhooks/log`` shows what was received and pushed (tests and the demo read it).

`subscribe_simulators` registers the agent with the gateway (``POST /api/v1/subscriptions``, admin token) and
hands it the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from catalog.loader import cached_catalog
from connectors.auth import HmacRequestAuth
from connectors.registry import DEFAULT_CONFIG_DIR, load_departments
from connectors.spec import HmacAuth, PushToken

log = logging.getLogger("demokit.pushback")

#: What a simulated department does with a case it accepted, in order: (event type, extra fields).
DEFAULT_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("in_review", {}),
    ("approved", {"result": "准予（模拟部门系统办结）"}),
    ("delivered", {}),
)
_ENCODER = msgspec.json.Encoder()


@dataclass
class PushLog:
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    pushed: list[dict[str, Any]] = field(default_factory=list)


class PushbackAgent:
    def __init__(
        self,
        *,
        gateway_url: str,
        secret: str | None = None,
        tokens: Mapping[str, str] | None = None,
        config_dir: Path = DEFAULT_CONFIG_DIR,
        departments: Iterable[str] | None = None,
        steps: tuple[tuple[str, dict[str, Any]], ...] = DEFAULT_STEPS,
        step_delay: float = 0.2,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``tokens``: department code -> a department token, for departments whose ``[push]`` kind is token.
        ``departments``: the codes to speak for (default: every department that can push with what was given)."""
        self.gateway_url = gateway_url.rstrip("/")
        self._webhook = Webhook(secret) if secret else None
        self._tokens = dict(tokens or {})
        self._catalog = cached_catalog(config_dir)
        self._hmac: dict[str, HmacAuth] = {}
        wanted = set(departments) if departments is not None else None
        for spec in load_departments(config_dir):
            if wanted is not None and spec.code not in wanted:
                continue
            if isinstance(spec.push, HmacAuth):
                self._hmac[spec.code] = spec.push
            elif isinstance(spec.push, PushToken) and spec.code not in self._tokens and wanted is not None:
                raise ValueError(f"department {spec.code} pushes with a token: pass one in tokens")
        self._environ = environ
        self.steps = steps
        self.step_delay = step_delay
        self.log = PushLog()
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def departments(self) -> list[str]:
        return sorted(set(self._hmac) | set(self._tokens))

    def set_secret(self, secret: str) -> None:
        """The subscription's ``whsec_…`` secret (known once the agent is subscribed)."""
        self._webhook = Webhook(secret)

    # -- receiving ------------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks", self._receive)
        app.router.add_get("/webhooks/log", self._show_log)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._webhook is None:
            return web.json_response({"error": "not subscribed yet"}, status=503)
        try:
            payload = self._webhook.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.log.rejected += 1
            return web.json_response({"error": f"signature: {exc}"}, status=401)
        webhook_id = request.headers["webhook-id"]
        if webhook_id in self._seen:
            return web.Response(status=204)
        self._seen.add(webhook_id)
        self.log.received.append({"webhook_id": webhook_id, "type": payload.get("type"), "data": payload.get("data")})
        department = self._department_of(payload)
        if department is not None:
            data = payload["data"]
            task = asyncio.create_task(self._play(webhook_id, department, str(data["application_id"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=204)

    def _department_of(self, payload: Any) -> str | None:
        """The department to play for an accepted case of one of its items, else None."""
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            return None
        data = payload["data"]
        status = data.get("status")
        if payload.get("type") != "application.accepted" and status != "accepted":
            return None
        if not isinstance(data.get("application_id"), str):
            return None
        department = data.get("department")
        if not isinstance(department, str):
            item = self._catalog.item(str(data.get("item_code", "")))
            department = item.department if item is not None else None
        return department if department in self.departments else None

    async def _show_log(self, _request: web.Request) -> web.Response:
        return web.Response(body=_ENCODER.encode(self.log), content_type="application/json")

    # -- pushing back ---------------------------------------------------------------------------------------
    async def _play(self, webhook_id: str, department: str, application_id: str) -> None:
        for kind, extra in self.steps:
            await asyncio.sleep(self.step_delay)
            body = {"event_id": f"{webhook_id}.{kind}", "type": kind, "application_id": application_id} | extra
            status = await self.push(department, body)
            if status != 200:
                return

    async def push(self, department: str, event: Mapping[str, Any], *, attempts: int = 5) -> int:
        """POST one event as ``department``; retried on connection errors and 5xx. Returns the last status."""
        session = self._session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._session = session
        path = f"/api/v1/departments/{department}/events"
        raw = _ENCODER.encode(event)
        status = 0
        for attempt in range(attempts):
            headers = {"Content-Type": "application/json"}
            if department in self._hmac:
                await HmacRequestAuth(self._hmac[department], self._environ).apply("POST", path, "", raw, headers)
            else:
                headers["Authorization"] = f"Bearer {self._tokens[department]}"
            try:
                async with session.post(self.gateway_url + path, data=raw, headers=headers) as response:
                    status = response.status
                    answer = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("push %s to %s failed: %r", event.get("type"), department, exc)
                status = 0
            else:
                self.log.pushed.append(
                    {"department": department, "event": dict(event), "status": status, "answer": answer.decode()}
                )
                if status < 500:
                    return status
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        return status

    async def wait_idle(self) -> None:
        """Until every case it is playing has been pushed through (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _cleanup(self, _app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()


@contextlib.asynccontextmanager
async def run_pushback(agent: PushbackAgent, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``agent`` (port 0: an ephemeral one); yields the URL webhooks go to (``…/webhooks``)."""
    runner = web.AppRunner(agent.build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or ()
    bound = sockets[0].getsockname()[1] if sockets else port
    try:
        yield f"http://{host}:{bound}/webhooks"
    finally:
        await runner.cleanup()


async def subscribe_simulators(
    gateway_url: str,
    admin_token: str,
    agent: PushbackAgent,
    receiver_url: str,
    *,
    events: Iterable[str] = ("application.accepted",),
) -> dict[str, Any]:
    """Register ``receiver_url`` as a webhook subscription (admin or system token) and give ``agent`` the secret.
    Returns the subscription (its ``secret`` shown only here)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            gateway_url.rstrip("/") + "/api/v1/subscriptions",
            json={"url": receiver_url, "events": list(events)},
            headers={"Authorization": f"Bearer {admin_token}"},
        ) as response,
    ):
        body = await response.read()
        if response.status != 201:
            raise RuntimeError(f"subscribing the simulators failed: HTTP {response.status}: {body[:300]!r}")
    subscription: dict[str, Any] = msgspec.json.decode(body)
    agent.set_secret(str(subscription["secret"]))
    return subscription


__all__ = ["DEFAULT_STEPS", "PushLog", "PushbackAgent", "run_pushback", "subscribe_simulators"]
