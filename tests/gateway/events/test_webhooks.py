"""Webhook subscriptions and deliveries over HTTP, on SQLite and PostgreSQL, to a real receiver on loopback.

Signatures are checked with the ``standardwebhooks`` package (the reference implementation), not our own code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from gateway.audit.tables import audit_records
from gateway.context import context_of
from gateway.events.subscriptions import failing_endpoint_count
from gateway.events.tables import outbox_events, webhook_deliveries, webhook_subscriptions
from gateway.storage import utcnow
from tests.gateway.events.receiver import receiver
from tests.gateway.intake.fixtures import Gateway

CASE_EVENTS = ["application.accepted", "application.status_changed", "application.completed"]


async def subscribe(
    gateway: Gateway, url: str, events: list[str] | None = None, who: str = "admin", **extra: Any
) -> httpx.Response:
    body = {"url": url, "events": events or CASE_EVENTS} | extra
    return await gateway.client.post("/api/v1/subscriptions", json=body, headers=gateway.auth(who))


async def completed_case(gateway: Gateway) -> tuple[str, dict[str, Any]]:
    application_id, acceptance = await gateway.accepted_case()
    for to, extra in [("in_review", {}), ("approved", {"result": "准予"})]:
        response = await gateway.move(application_id, to, **extra)
        assert response.status_code == 200, response.text
    return application_id, acceptance


async def test_a_case_is_delivered_in_order_signed_and_without_personal_data(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    async with receiver() as hook:
        created = await subscribe(gateway, hook.url)
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        application_id, acceptance = await completed_case(gateway)
        received = await hook.wait_for(4)
    verifier = Webhook(secret)
    bodies = [verifier.verify(r.body, r.headers) for r in received]
    assert [b["type"] for b in bodies] == [
        "application.accepted",
        "application.status_changed",
        "application.status_changed",
        "application.completed",
    ]
    assert [b["data"]["status"] for b in bodies] == ["accepted", "in_review", "approved", "approved"]
    first = bodies[0]["data"]
    assert first["application_id"] == application_id
    assert first["tracking_number"] == acceptance["tracking_number"]
    assert first["item_code"] and first["deadline"] == acceptance["deadline"]
    assert bodies[2]["data"]["from_status"] == "in_review"
    for r in received:
        text = r.body.decode()
        assert citizen.id_number not in text and citizen.name not in text and citizen.phone not in text
        assert "准予" not in text  # the decision's free text stays in the gateway
    # Each event has its own webhook-id; a different secret does not verify.
    assert len({r.message_id for r in received}) == 4
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(received[0].body, received[0].headers)
    # The secret is shown once: the listing never has it.
    listing = await gateway.client.get("/api/v1/subscriptions", headers=gateway.auth("admin"))
    assert listing.status_code == 200 and "secret" not in listing.json()["items"][0]
    assert secret not in listing.text


async def test_events_are_written_with_their_change_and_only_then(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    refused = await gateway.move(application_id, "approved", result="准予")  # not allowed from accepted
    assert refused.status_code == 409
    async with gateway.db.read() as conn:
        types = list(
            (
                await conn.execute(
                    select(outbox_events.c.type)
                    .where(outbox_events.c.application_id == application_id)
                    .order_by(outbox_events.c.seq)
                )
            ).scalars()
        )
    assert types == ["application.accepted"]


async def test_rotation_sends_both_signatures_during_the_overlap(gateway: Gateway) -> None:
    async with receiver() as hook:
        created = (await subscribe(gateway, hook.url)).json()
        rotated = await gateway.client.post(
            f"/api/v1/subscriptions/{created['id']}/rotate",
            json={"overlap_seconds": 3600},
            headers=gateway.auth("admin"),
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_") and new_secret != created["secret"]
        await gateway.accepted_case()
        (message,) = await hook.wait_for(1)
        assert len(message.headers["webhook-signature"].split(" ")) == 2
        Webhook(new_secret).verify(message.body, message.headers)
        Webhook(created["secret"]).verify(message.body, message.headers)
        # Without an overlap the old secret stops signing at once.
        again = await gateway.client.post(
            f"/api/v1/subscriptions/{created['id']}/rotate", json={"overlap_seconds": 0}, headers=gateway.auth("admin")
        )
        newest = again.json()["secret"]
        await gateway.accepted_case()
        received = await hook.wait_for(2)
    last = received[1]
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    Webhook(newest).verify(last.body, last.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(last.body, last.headers)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.1.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("ftp://example.org/hook", "scheme"),
    ],
)
async def test_refused_targets_answer_422_naming_the_rule(gateway: Gateway, url: str, rule: str) -> None:
    response = await subscribe(gateway, url)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["rule"] == rule
    assert problem["errors"][0]["field"] == "url"
    async with gateway.db.read() as conn:
        assert (
            await conn.execute(
                select(func.count())
                .select_from(audit_records)
                .where(audit_records.c.action == "webhook.subscription_created")
            )
        ).scalar_one() == 0


async def test_unknown_event_type_answers_422(gateway: Gateway) -> None:
    async with receiver() as hook:
        response = await subscribe(gateway, hook.url, ["application.accepted", "application.exploded"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "events[1]"


async def test_who_may_subscribe_and_whose_subscriptions_they_see(gateway: Gateway) -> None:
    async with receiver() as hook:
        assert (await subscribe(gateway, hook.url, who="clerk")).status_code == 403
        assert (await subscribe(gateway, hook.url, who="supervisor")).status_code == 403
        mine = await subscribe(gateway, hook.url, who="system")
        assert mine.status_code == 201
        theirs = await subscribe(gateway, hook.url, who="admin")
    system_list = (await gateway.client.get("/api/v1/subscriptions", headers=gateway.auth("system"))).json()
    assert [s["id"] for s in system_list["items"]] == [mine.json()["id"]]
    admin_list = (await gateway.client.get("/api/v1/subscriptions", headers=gateway.auth("admin"))).json()
    assert admin_list["total"] == 2
    other = theirs.json()["id"]
    assert (
        await gateway.client.get(f"/api/v1/subscriptions/{other}", headers=gateway.auth("system"))
    ).status_code == 404
    assert (
        await gateway.client.delete(f"/api/v1/subscriptions/{other}", headers=gateway.auth("system"))
    ).status_code == 404
    assert (
        await gateway.client.delete(f"/api/v1/subscriptions/{other}", headers=gateway.auth("admin"))
    ).status_code == 204


async def test_filters_keep_only_matching_cases(gateway: Gateway) -> None:
    async with receiver() as wanted, receiver() as unwanted:
        assert (await subscribe(gateway, wanted.url, filters={"departments": ["civil_affairs"]})).status_code == 201
        assert (await subscribe(gateway, unwanted.url, filters={"units": ["430302007000"]})).status_code == 201
        await gateway.accepted_case()  # a civil-affairs item filed at 430302001000
        await wanted.wait_for(1)
        await asyncio.sleep(0.3)
    assert unwanted.received == []


async def test_failures_are_retried_with_back_off_until_delivered(gateway: Gateway) -> None:
    async with receiver(script=[500, 503]) as hook:
        created = (await subscribe(gateway, hook.url)).json()
        await gateway.accepted_case()
        received = await hook.wait_for(3)
    assert hook.answers[:3] == [500, 503, 204]
    assert len({r.message_id for r in received}) == 1  # one event, retried under one id
    items: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while not items:  # the answer arrived; its outcome commits a moment later
            await asyncio.sleep(0.02)
            page = await gateway.client.get(
                f"/api/v1/subscriptions/{created['id']}/deliveries",
                params={"state": "succeeded"},
                headers=gateway.auth("admin"),
            )
            items = page.json()["items"]
    (delivery,) = items
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 204


async def test_410_gone_disables_the_subscription(gateway: Gateway) -> None:
    async with receiver(default=410) as hook:
        created = (await subscribe(gateway, hook.url)).json()
        await gateway.accepted_case()
        await hook.wait_for(1)
        for _ in range(100):
            view = (
                await gateway.client.get(f"/api/v1/subscriptions/{created['id']}", headers=gateway.auth("admin"))
            ).json()
            if view["status"] == "disabled":
                break
            await asyncio.sleep(0.05)
        assert view["status"] == "disabled" and "410" in view["disabled_reason"]
        await gateway.accepted_case()
        await asyncio.sleep(0.3)
    assert len(hook.received) == 1  # nothing more goes to a disabled subscription
    assert await gateway.audited("webhook.subscription_disabled") == 1


async def test_redirects_are_not_followed(gateway: Gateway) -> None:
    async with receiver() as target, receiver(script=[307], headers={"Location": "http://127.0.0.1:1/x"}) as hook:
        hook.headers["Location"] = target.url
        await subscribe(gateway, hook.url)
        await gateway.accepted_case()
        await hook.wait_for(2)  # the 307 was a failure: retried at the same URL
    assert target.received == []


async def test_dead_letters_are_listed_and_replayed(gateway: Gateway) -> None:
    async with receiver(default=500) as hook:
        created = (await subscribe(gateway, hook.url)).json()
        subscription = created["id"]
        await gateway.accepted_case()
        await hook.wait_for(1)
        # Skip most of the three days: the delivery has used 12 of its 13 attempts; the next failure is its last.
        # (Between two attempts: not while the dispatcher holds the delivery.)
        skipped = 0
        while not skipped:
            async with gateway.db.transaction() as conn:
                skipped = (
                    await conn.execute(
                        update(webhook_deliveries)
                        .where(webhook_deliveries.c.lease_owner.is_(None))
                        .values(attempts=12, next_attempt_at=utcnow())
                    )
                ).rowcount
                await conn.execute(
                    update(webhook_subscriptions).values(breaker_open_until=None, consecutive_failures=0)
                )
        dead: list[dict[str, Any]] = []
        async with asyncio.timeout(60):
            while not dead:
                await asyncio.sleep(0.05)
                page = await gateway.client.get(
                    f"/api/v1/subscriptions/{subscription}/deliveries",
                    params={"state": "dead"},
                    headers=gateway.auth("admin"),
                )
                dead = page.json()["items"]
        assert dead[0]["attempts"] == 13 and dead[0]["last_status_code"] == 500
        tried = len(hook.received)
        hook.default = 200
        replay = await gateway.client.post(
            f"/api/v1/subscriptions/{subscription}/deliveries/{dead[0]['id']}/retry", headers=gateway.auth("admin")
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["state"] == "pending"
        await hook.wait_for(tried + 1)
        again = await gateway.client.post(
            f"/api/v1/subscriptions/{subscription}/deliveries/{dead[0]['id']}/retry", headers=gateway.auth("admin")
        )
    assert again.status_code in (200, 409)
    assert await gateway.audited("webhook.delivery_retried") >= 1
    async with gateway.db.read() as conn:
        states = list((await conn.execute(select(webhook_deliveries.c.state))).scalars())
    assert "dead" not in states


async def test_an_endpoint_failing_too_long_raises_an_alert(gateway: Gateway) -> None:
    settings = context_of(gateway.app).settings
    async with receiver(default=503) as hook:
        created = (await subscribe(gateway, hook.url)).json()
        await gateway.accepted_case()
        await hook.wait_for(1)
    alerts = (await gateway.client.get("/api/v1/webhook-alerts", headers=gateway.auth("admin"))).json()
    assert alerts["total"] == 0  # failing, but not yet for an hour
    async with gateway.db.transaction() as conn:
        old = utcnow() - dt.timedelta(hours=2)
        await conn.execute(update(webhook_subscriptions).values(failing_since=old))
    alerts = (await gateway.client.get("/api/v1/webhook-alerts", headers=gateway.auth("admin"))).json()
    assert [a["subscription_id"] for a in alerts["items"]] == [created["id"]]
    assert alerts["items"][0]["failing_for_seconds"] >= 7200
    assert await failing_endpoint_count(gateway.db, settings) == 1
    # The sweeper writes the audit record once.
    async with asyncio.timeout(60):
        while await gateway.audited("webhook.endpoint_failing") == 0:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.1)
    assert (await gateway.client.get("/api/v1/webhook-alerts", headers=gateway.auth("clerk"))).status_code == 403
