"""The citizen's status page over HTTP (SQLite and PostgreSQL): the form, the status, the one answer for every
failure (counted by the API's limiter), the evaluation once after completion, and the headers."""

from __future__ import annotations

import httpx
import msgspec

from gateway.app import create_app
from gateway.privacy import mask_name
from gateway.settings import Settings
from tests.dbutil import asgi_client
from tests.gateway.intake.fixtures import Gateway


async def completed(gateway: Gateway) -> tuple[str, str, str]:
    application_id, acceptance = await gateway.accepted_case()
    for to, extra in [("in_review", {}), ("approved", {"result": "准予补贴"})]:
        assert (await gateway.move(application_id, to, **extra)).status_code == 200
    return application_id, acceptance["tracking_number"], acceptance["query_code"]


async def lookup(gateway: Gateway, number: str, code: str) -> httpx.Response:
    return await gateway.client.post("/track", data={"tracking_number": number, "code": code})


async def test_form_works_without_javascript_and_names_the_fields(gateway: Gateway) -> None:
    response = await gateway.client.get("/track")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'name="tracking_number"' in html and 'name="code"' in html
    assert '<form method="post" action="/track"' in html
    assert '<script src="/static/track.js" defer></script>' in html
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


async def test_status_timeline_days_left_and_masked_name(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    application_id, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    response = await lookup(gateway, number, code.lower())
    assert response.status_code == 200, response.text
    html = response.text
    assert "重度残疾人护理补贴" in html and "已受理" in html and number in html
    assert mask_name(citizen.name) in html
    for secret in (citizen.name, citizen.id_number, citizen.phone, application_id):
        assert secret not in html
    assert "还剩 15 个工作日" in html
    assert response.headers["referrer-policy"] == "no-referrer"
    # Paused in correction: said in words, with the days kept.
    assert (await gateway.move(application_id, "in_review")).status_code == 200
    assert (await gateway.move(application_id, "correction_required", note="户口簿复印件不清晰")).status_code == 200
    html = (await lookup(gateway, number, code)).text
    assert "补齐补正" in html and "暂停计算" in html and "暂停时剩余" in html
    assert "好差评" not in html


async def test_unknown_number_and_wrong_code_answer_the_same_page_and_are_limited(gateway: Gateway) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    wrong_code = await lookup(gateway, number, "ZZZZZZZZ" if code != "ZZZZZZZZ" else "YYYYYYYY")
    unknown = await lookup(gateway, "430302200001010000017", code)
    garbage = await lookup(gateway, "<script>", "'")
    assert wrong_code.status_code == unknown.status_code == garbage.status_code == 404

    def body(r: httpx.Response) -> str:
        # The form echoes the number typed in: the rest of the page is identical.
        return r.text.replace(number, "N").replace("430302200001010000017", "N").replace("&lt;script&gt;", "N")

    assert body(wrong_code) == body(unknown) == body(garbage)
    assert "未查到办件" in wrong_code.text
    limit = gateway.settings.tracking_failures_per_minute
    answers = [(await lookup(gateway, number, "ZZZZZZZZ")).status_code for _ in range(limit)]
    assert answers[-1] == 429
    # Once blocked, the right code is refused too, as by the API (which shares the limiter).
    assert (await lookup(gateway, number, code)).status_code == 429
    api = await gateway.client.get(f"/api/v1/track/{number}", params={"code": code})
    assert api.status_code == 429


async def test_evaluation_once_after_completion_and_bad_review_promises_follow_up(gateway: Gateway) -> None:
    _, number, code = await completed(gateway)
    html = (await lookup(gateway, number, code)).text
    assert 'id="evaluation-form"' in html
    for key in ("level", "overall", "efficiency", "service", "attitude"):
        assert f'name="{key}"' in html
    # A bad review needs a comment: the form says so and nothing is stored.
    missing = await gateway.client.post(
        "/track/evaluation", data={"tracking_number": number, "code": code, "level": "1"}
    )
    assert missing.status_code == 422 and "请写明遇到的问题" in missing.text
    assert (await gateway.counts())["evaluations"] == 0
    done = await gateway.client.post(
        "/track/evaluation",
        data={"tracking_number": number, "code": code, "level": "2", "service": "1", "comment": "等了很久"},
    )
    assert done.status_code == 200, done.text
    assert "感谢您的评价" in done.text and "15 个工作日内" in done.text
    counts = await gateway.counts()
    assert counts["evaluations"] == 1 and counts["rectifications"] == 1
    again = await lookup(gateway, number, code)
    assert 'id="evaluation-form"' not in again.text and "本件已评价" in again.text
    twice = await gateway.client.post("/track/evaluation", data={"tracking_number": number, "code": code, "level": "5"})
    assert twice.status_code == 409 and (await gateway.counts())["evaluations"] == 1


async def test_evaluation_with_a_wrong_code_is_the_same_no_match(gateway: Gateway) -> None:
    _, number, code = await completed(gateway)
    wrong = "ZZZZZZZZ" if code != "ZZZZZZZZ" else "YYYYYYYY"
    response = await gateway.client.post(
        "/track/evaluation", data={"tracking_number": number, "code": wrong, "level": "5"}
    )
    assert response.status_code == 404 and "未查到办件" in response.text
    assert (await gateway.counts())["evaluations"] == 0


async def test_failure_limit_shared_with_the_api_on_memory_and_redis(settings: Settings, redis_url: str) -> None:
    """The page counts failures in the API's limiter, in the configured store (one process's memory, or Redis for
    every process)."""
    app = create_app(msgspec.structs.replace(settings, redis_url=redis_url))
    async with asgi_client(app) as client:
        limit = settings.tracking_failures_per_minute
        answers = []
        for i in range(limit):
            page = await client.post(
                "/track", data={"tracking_number": f"4303022000010100000{i % 10}7", "code": "ZZZZ"}
            )
            answers.append(page.status_code)
        assert answers == [404] * limit  # each failure the same page, counted
        blocked = await client.post("/track", data={"tracking_number": "430302200001010000017", "code": "ZZZZZZZZ"})
        assert blocked.status_code == 429 and "查询过于频繁" in blocked.text and "retry-after" in blocked.headers
        api = await client.get("/api/v1/track/430302200001010000017", params={"code": "ZZZZZZZZ"})
        assert api.status_code == 429
