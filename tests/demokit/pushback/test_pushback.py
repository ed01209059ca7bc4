"""The simulated departments' other half over real HTTP: a webhook signed as Standard Webhooks 1.0 (signed here with
the standardwebhooks package, as the gateway's delivery will) reaches the agent, which plays the department and
pushes the case through to delivery at the gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import aiohttp
import msgspec
from standardwebhooks.webhooks import Webhook

from demokit.simulators.pushback import PushbackAgent, run_pushback
from tests.gateway.intake.fixtures import CARE_ITEM, Gateway

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def deliver(url: str, payload: dict[str, Any], *, secret: str = SECRET, msg_id: str | None = None) -> int:
    body = msgspec.json.encode(payload)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status


def accepted_payload(application_id: str, tracking_number: str) -> dict[str, Any]:
    return {
        "type": "application.accepted",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "data": {
            "application_id": application_id,
            "tracking_number": tracking_number,
            "status": "accepted",
            "item_code": CARE_ITEM,
        },
    }


async def test_a_signed_webhook_makes_the_department_complete_the_case(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, acceptance = await gw.accepted_case()
    agent = PushbackAgent(gateway_url=str(gw.client.base_url), secret=SECRET, step_delay=0.01, environ={})
    assert "civil_affairs" in agent.departments
    async with run_pushback(agent) as url:
        msg_id = "msg_" + uuid.uuid4().hex
        payload = accepted_payload(application_id, acceptance["tracking_number"])
        assert await deliver(url, payload, msg_id=msg_id) == 204
        # The same webhook again (a retry after a timeout): deduplicated by webhook-id.
        assert await deliver(url, payload, msg_id=msg_id) == 204
        async with asyncio.timeout(20):
            await agent.wait_idle()
        assert [p["status"] for p in agent.log.pushed] == [200, 200, 200]
    view = (await gw.get(application_id, who="officer")).json()
    assert view["status"] == "delivered"
    assert [h["status"] for h in view["history"] if h["by"] == "department:civil_affairs"] == [
        "in_review",
        "approved",
        "delivered",
    ]
    assert view["result"] == "准予（模拟部门系统办结）"


async def test_an_unsigned_or_wrongly_signed_webhook_is_refused_and_does_nothing(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, acceptance = await gw.accepted_case()
    agent = PushbackAgent(gateway_url=str(gw.client.base_url), secret=SECRET, step_delay=0.01, environ={})
    async with run_pushback(agent) as url:
        payload = accepted_payload(application_id, acceptance["tracking_number"])
        assert await deliver(url, payload, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY") == 401
        async with aiohttp.ClientSession() as session, session.post(url, json=payload) as response:
            assert response.status == 401
        assert agent.log.rejected == 2 and agent.log.pushed == [] and agent.log.received == []
        # Another department's item is received but not played.
        other = payload | {"data": payload["data"] | {"item_code": "0720003100"}}
        assert await deliver(url, other) == 204
        await agent.wait_idle()
        assert agent.log.pushed == [] and len(agent.log.received) == 1
    assert (await gw.get(application_id, who="officer")).json()["status"] == "accepted"
