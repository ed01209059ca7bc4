"""Public tracking and evaluation over HTTP on SQLite and PostgreSQL: masked lookups, one 404 for every failure,
rate limiting of failures only, one evaluation per completed case, rectification of bad reviews."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import pytest

from catalog.codes import mod37_36_check_char
from gateway.clients import TrustedProxies
from gateway.context import context_of
from gateway.privacy import mask_name
from gateway.tracking.deps import provide_tracking
from tests.gateway.intake.fixtures import Gateway, today_local


async def track(gateway: Gateway, number: str, code: str | None) -> httpx.Response:
    params = {"code": code} if code is not None else {}
    return await gateway.client.get(f"/api/v1/track/{number}", params=params)


async def evaluate(gateway: Gateway, number: str, code: str, body: dict[str, Any]) -> httpx.Response:
    return await gateway.client.post(f"/api/v1/track/{number}/evaluation", params={"code": code}, json=body)


async def completed_case(gateway: Gateway) -> tuple[str, str, str]:
    application_id, acceptance = await gateway.accepted_case()
    for to, extra in [("in_review", {}), ("approved", {"result": "准予"})]:
        response = await gateway.move(application_id, to, **extra)
        assert response.status_code == 200, response.text
    return application_id, acceptance["tracking_number"], acceptance["query_code"]


async def test_lookup_shows_status_and_masked_name_only(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    application_id, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    response = await track(gateway, number, code)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tracking_number"] == number
    assert body["item"] == {"code": "0205006100", "name": "重度残疾人护理补贴"}
    assert body["status"] == "accepted" and body["deadline"] == acceptance["deadline"]
    assert [t["status"] for t in body["timeline"]] == ["draft", "accepted"]
    assert set(body["timeline"][0]) <= {"status", "at", "status_name"}
    assert body["applicant_name"] == mask_name(citizen.name) and "*" in body["applicant_name"]
    for secret in (citizen.id_number, citizen.name, citizen.phone, application_id):
        assert secret not in response.text
    # Codes are read forgivingly (lower case, spaces); the number exactly.
    assert (await track(gateway, number, code.lower()[:4] + " " + code.lower()[4:])).status_code == 200
    # The timeline follows the case.
    assert (await gateway.move(application_id, "in_review")).status_code == 200
    body = (await track(gateway, number, code)).json()
    assert body["status"] == "in_review" and body["timeline"][-1]["status"] == "in_review"
    assert body["can_evaluate"] is False


async def test_unknown_number_and_wrong_code_answer_the_same(gateway: Gateway) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    wrong_code = "23456789" if code != "23456789" else "98765432"
    unknown = number[:14] + "999999"
    unknown = unknown + mod37_36_check_char(unknown)
    answers = [
        await track(gateway, number, wrong_code),
        await track(gateway, unknown, code),
        await track(gateway, number, None),
        await track(gateway, "not-a-number", code),
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1
    assert answers[0].headers["content-type"].startswith("application/problem+json")
    assert number not in answers[0].text


async def test_failed_lookups_are_limited_correct_ones_never(gateway: Gateway) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    limit = gateway.settings.tracking_failures_per_minute
    # Correct lookups are not counted, however many.
    for _ in range(limit * 3):
        assert (await track(gateway, number, code)).status_code == 200
    for _ in range(limit):
        assert (await track(gateway, number, "ZZZZZZZZ")).status_code == 404
    blocked = await track(gateway, number, "ZZZZZZZZ")
    assert blocked.status_code == 429, blocked.text
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.headers["content-type"].startswith("application/problem+json")
    # While blocked, this address learns nothing, not even from a right guess.
    assert (await track(gateway, number, code)).status_code == 429
    response = await evaluate(gateway, number, "ZZZZZZZZ", {"level": 5, "comment": ""})
    assert response.status_code == 429
    # Once the failures are forgotten (the window passes; here: reset), the address may look up again.
    await context_of(gateway.app).tracking_limiter.reset("127.0.0.1")
    assert (await track(gateway, number, code)).status_code == 200


async def test_forwarded_for_from_an_untrusted_peer_changes_nothing(gateway: Gateway) -> None:
    """No proxy is trusted by default: a caller writing a new X-Forwarded-For for every guess is still counted,
    and blocked, by the address it connects from."""
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    limit = gateway.settings.tracking_failures_per_minute
    assert not context_of(gateway.app).trusted_proxies
    for i in range(limit):
        spoofed = {"X-Forwarded-For": f"198.51.100.{i + 1}"}
        response = await gateway.client.get(f"/api/v1/track/{number}", params={"code": "ZZZZZZZZ"}, headers=spoofed)
        assert response.status_code == 404
    response = await gateway.client.get(
        f"/api/v1/track/{number}", params={"code": code}, headers={"X-Forwarded-For": "203.0.113.250"}
    )
    assert response.status_code == 429, response.text
    limiter = context_of(gateway.app).tracking_limiter
    assert await limiter.blocked("127.0.0.1")
    assert not await limiter.blocked("198.51.100.1")


async def test_served_as_onewindow_serve_serves_it_forwarded_for_is_still_ignored(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through the ASGI stack uvicorn builds with the options `onewindow serve` passes (uvicorn's own
    default would believe X-Forwarded-For from 127.0.0.1)."""
    import uvicorn

    import gateway.app as app_module
    from gateway.commands import serve

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(app_module, "create_app", lambda settings: gateway.app)
    args = argparse.Namespace(host=None, port=None, data_dir=gateway.settings.data_dir, config=None, workers=1)
    assert serve.run(args) == 0
    (options,) = calls
    config = uvicorn.Config(gateway.app, **options)
    config.load()
    _, acceptance = await gateway.accepted_case()
    number = acceptance["tracking_number"]
    transport = httpx.ASGITransport(app=config.loaded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answers = [
            await client.get(
                f"/api/v1/track/{number}",
                params={"code": "ZZZZZZZZ"},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            )
            for i in range(gateway.settings.tracking_failures_per_minute + 1)
        ]
    assert [r.status_code for r in answers][-2:] == [404, 429]


async def test_a_trusted_proxys_client_is_the_one_limited(gateway: Gateway) -> None:
    """Behind a trusted proxy (here the test client's 127.0.0.1) the client it appends is counted — not the
    proxy, and not what the client wrote into the header itself."""
    context_of(gateway.app).trusted_proxies = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    limit = gateway.settings.tracking_failures_per_minute

    async def lookup(forwarded_for: str, query_code: str) -> int:
        response = await gateway.client.get(
            f"/api/v1/track/{number}", params={"code": query_code}, headers={"X-Forwarded-For": forwarded_for}
        )
        return response.status_code

    for i in range(limit):
        # The client varies what it sends; the proxy (and a second one in front of us) append what they saw.
        assert await lookup(f"198.51.100.{i + 1}, 203.0.113.7, 10.0.0.2", "ZZZZZZZZ") == 404
    assert await lookup("203.0.113.7", code) == 429
    assert await lookup("192.0.2.1, 203.0.113.7", code) == 429
    # Another client behind the same proxy is not affected, nor the proxy itself.
    assert await lookup("203.0.113.8", code) == 200
    limiter = context_of(gateway.app).tracking_limiter
    assert await limiter.blocked("203.0.113.7")
    assert not await limiter.blocked("127.0.0.1") and not await limiter.blocked("10.0.0.2")
    response = await gateway.client.get(f"/api/v1/track/{number}", params={"code": code})
    assert response.status_code == 200  # the proxy's own request (no header) is its own client


async def test_evaluation_once_after_completion(gateway: Gateway) -> None:
    application_id, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    before = await gateway.counts()
    response = await evaluate(gateway, number, code, {"level": 5, "comment": "很好"})
    assert response.status_code == 409 and response.json()["status"] == 409
    assert response.json()["current_status"] == "accepted"
    assert response.json()["allowed"] == ["approved", "delivered", "denied"]
    assert (await gateway.move(application_id, "in_review")).status_code == 200
    assert (await gateway.move(application_id, "approved", result="准予")).status_code == 200
    bad: list[tuple[dict[str, Any], str]] = [
        ({"comment": "no level"}, "level"),
        ({"level": 6, "comment": ""}, "level"),
        ({"level": 0, "comment": ""}, "level"),
        ({"level": 4, "comment": "", "dimensions": {"efficiency": 9}}, "dimensions.efficiency"),
        ({"level": 1, "comment": ""}, "comment"),
    ]
    for body, field in bad:
        response = await evaluate(gateway, number, code, body)
        assert response.status_code == 422, response.text
        assert field in {e["field"] for e in response.json()["errors"]}
    response = await evaluate(gateway, number, "ZZZZZZZZ", {"level": 5, "comment": ""})
    assert response.status_code == 404
    counts = await gateway.counts()
    assert counts["evaluations"] == before["evaluations"] == 0
    body = {
        "level": 5,
        "comment": "办事快，态度好",
        "dimensions": {"overall": 5, "efficiency": 5, "service": 4, "attitude": 5},
    }
    response = await evaluate(gateway, number, code, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["level"] == 5 and created["level_name"] == "非常满意"
    assert created["dimensions"]["service"] == 4
    assert "rectification" not in created
    again = await evaluate(gateway, number, code, {"level": 4, "comment": "再评一次"})
    assert again.status_code == 409
    tracked = (await track(gateway, number, code)).json()
    assert tracked["evaluated"] is True and tracked["can_evaluate"] is False
    assert (await gateway.counts())["evaluations"] == 1
    # Delivery does not reopen evaluation.
    assert (await gateway.move(application_id, "delivered")).status_code == 200
    assert (await evaluate(gateway, number, code, {"level": 3, "comment": ""})).status_code == 409


async def test_bad_review_opens_a_rectification_for_the_supervisor(gateway: Gateway) -> None:
    application_id, number, code = await completed_case(gateway)
    response = await evaluate(
        gateway,
        number,
        code,
        {"level": 2, "comment": "等了很久，电话 13812345678 没人接", "dimensions": {"attitude": 1}},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["level_name"] == "不满意"
    assert "13812345678" not in created["comment"]  # phone numbers typed into comments are masked
    rectification = created["rectification"]
    calendar = provide_tracking(context_of(gateway.app)).calendar
    assert rectification["due_on"] == calendar.deadline(today_local(), 15).date.isoformat()

    listing = await gateway.client.get("/api/v1/supervision/rectifications", headers=gateway.auth("supervisor"))
    assert listing.status_code == 200, listing.text
    (item,) = listing.json()["items"]
    assert item["id"] == rectification["id"] and item["application_id"] == application_id
    assert item["tracking_number"] == number and item["status"] == "open" and item["level"] == 2
    assert item["due_on"] == rectification["due_on"] and item["working_days_left"] == 15
    assert item["overdue"] is False
    assert (
        await gateway.client.get("/api/v1/supervision/rectifications", headers=gateway.auth("officer"))
    ).status_code == 403
    assert (await gateway.client.get("/api/v1/supervision/rectifications")).status_code == 401

    close = f"/api/v1/supervision/rectifications/{item['id']}/close"
    response = await gateway.client.post(close, json={"outcome": ""}, headers=gateway.auth("supervisor"))
    assert response.status_code == 422
    response = await gateway.client.post(
        close, json={"outcome": "已约谈窗口人员；回访申请人，表示满意"}, headers=gateway.auth("supervisor")
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "closed"
    again = await gateway.client.post(close, json={"outcome": "again"}, headers=gateway.auth("supervisor"))
    assert again.status_code == 409
    assert again.json()["status"] == 409 and again.json()["current_status"] == "closed"
    open_now = await gateway.client.get("/api/v1/supervision/rectifications", headers=gateway.auth("admin"))
    assert open_now.json()["items"] == []
    closed = await gateway.client.get(
        "/api/v1/supervision/rectifications", params={"status": "all"}, headers=gateway.auth("admin")
    )
    assert [r["status"] for r in closed.json()["items"]] == ["closed"]
