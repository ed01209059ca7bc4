"""The public evaluation route and bodies it must refuse (SQLite and PostgreSQL): no token, so anyone can send
anything. Not JSON → 400, not declared as JSON → 415, lax types → 422 naming the field; never a 500, nothing
stored, nothing of the request repeated — and each refusal is a failed attempt for the failure limiter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.context import context_of
from tests.gateway.intake.fixtures import Gateway
from tests.gateway.tracking.test_tracking_api import completed_case

JSON = {"content-type": "application/json"}
DEEP = b'{"level": 5, "comment": ' + b"[" * 1000 + b"]" * 1000 + b"}"

#: (body, headers, status, field named)
REFUSED: list[tuple[bytes, dict[str, str], int, str]] = [
    (b'{"level": 5, "comment": "\xff\xfe"}', JSON, 400, "body"),  # not UTF-8
    (b"[" * 1000 + b"]" * 1000, JSON, 400, "body"),  # nested far deeper than any body of ours
    (DEEP, JSON, 400, "body"),
    (b'{"level": 5,', JSON, 400, "body"),  # cut short
    (b"", JSON, 400, "body"),  # no body at all
    (b'{"level": 5, "comment": ""}', {"content-type": "text/plain"}, 415, "Content-Type"),
    (b'{"level": 5, "comment": ""}', {}, 415, "Content-Type"),  # no Content-Type: not taken for JSON
    (b'{"level": "5", "comment": ""}', JSON, 422, "level"),
    (b'{"level": 5.0, "comment": ""}', JSON, 422, "level"),
    (b'{"level": true, "comment": ""}', JSON, 422, "level"),
    (b'{"level": 9, "comment": ""}', JSON, 422, "level"),
    (b'{"level": 5, "comment": "", "dimensions": {"service": "4"}}', JSON, 422, "dimensions.service"),
    (b'{"level": 5, "comment": "", "stars": 5}', JSON, 422, "stars"),
]


async def post(gateway: Gateway, number: str, code: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await gateway.client.post(
        f"/api/v1/track/{number}/evaluation", params={"code": code}, content=body, headers=headers
    )


@pytest.mark.parametrize(("body", "headers", "status", "field"), REFUSED)
async def test_refused_bodies_name_what_is_wrong_and_change_nothing(
    gateway: Gateway, body: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    _, number, code = await completed_case(gateway)
    before = await gateway.counts()
    response = await post(gateway, number, code, body, headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and [e["field"] for e in problem["errors"]] == [field]
    # The query code travels in the URL: no answer repeats it, nor the number, nor what was sent.
    assert code not in response.text and number not in problem["detail"] and "?" not in response.text
    assert await gateway.counts() == before
    # The case can still be evaluated properly afterwards.
    good = await post(gateway, number, code, b'{"level": 5, "comment": ""}', JSON)
    assert good.status_code == 201, good.text


async def test_refused_bodies_count_as_failed_attempts(gateway: Gateway) -> None:
    _, number, code = await completed_case(gateway)
    limit = gateway.settings.tracking_failures_per_minute
    refusals = [(body, headers) for body, headers, _, _ in REFUSED]
    for i in range(limit):
        body, headers = refusals[i % len(refusals)]
        assert (await post(gateway, number, code, body, headers)).status_code in (400, 415, 422)
    # Blocked now: the next refusal, and even a correct evaluation or lookup, answers 429.
    blocked = await post(gateway, number, code, b"not json", JSON)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert (await post(gateway, number, code, b'{"level": 5, "comment": ""}', JSON)).status_code == 429
    assert (await gateway.client.get(f"/api/v1/track/{number}", params={"code": code})).status_code == 429
    await context_of(gateway.app).tracking_limiter.reset("127.0.0.1")
    assert (await post(gateway, number, code, b'{"level": 5, "comment": ""}', JSON)).status_code == 201
