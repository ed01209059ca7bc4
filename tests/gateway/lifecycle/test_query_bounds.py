"""Integer query parameters at and past the API's bound (SQLite and PostgreSQL): the largest integer every JSON
implementation holds exactly is answered; anything larger — up to and past what the databases bind (2^63) — is a
400 problem naming the parameter, never a 500 from the driver."""

from __future__ import annotations

import pytest

from gateway.storage.metadata import MAX_API_INTEGER
from tests.gateway.intake.fixtures import Gateway

TOO_BIG = [str(MAX_API_INTEGER + 1), str(2**63), str(2**64), "9" * 40]


@pytest.mark.parametrize(
    ("path", "name"),
    [("/api/v1/status-events", "after"), ("/api/v1/applications", "offset"), ("/api/v1/applications", "limit")],
)
async def test_integers_past_a_bigint_are_a_400_naming_the_parameter(gateway: Gateway, path: str, name: str) -> None:
    await gateway.accepted_case()
    before = await gateway.counts()
    for value in TOO_BIG:
        response = await gateway.client.get(path, params={name: value}, headers=gateway.auth("officer"))
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == 400 and [e["field"] for e in body["errors"]] == [name]
        # The answer does not echo the request's URL (a query may carry a query code or a purpose).
        assert value not in response.text and "?" not in body["detail"]
    assert await gateway.counts() == before


async def test_the_largest_api_integer_is_an_ordinary_cursor_and_offset(gateway: Gateway) -> None:
    await gateway.accepted_case()
    events = await gateway.client.get(
        "/api/v1/status-events", params={"after": MAX_API_INTEGER}, headers=gateway.auth("officer")
    )
    assert events.status_code == 200, events.text
    assert events.json() == {"events": [], "next_after": MAX_API_INTEGER, "has_more": False}
    listing = await gateway.client.get(
        "/api/v1/applications", params={"offset": MAX_API_INTEGER}, headers=gateway.auth("officer")
    )
    assert listing.status_code == 200, listing.text
    page = listing.json()
    assert page["items"] == [] and page["total"] == 1 and page["offset"] == MAX_API_INTEGER
