"""Idempotency-Key on the intake routes, over the whole gateway on SQLite and PostgreSQL: the durable record commits
in the filing's, the upload's and the acceptance's transaction, a restarted gateway replays it, and keys belong to
the token, not to how the Authorization header is written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.app import create_app
from gateway.cases.tables import applications
from gateway.stores import IdempotencyRecords
from gateway.stores.tables import idempotency_records
from tests.dbutil import asgi_client
from tests.gateway.intake.fixtures import CARE_ITEM, ONE_CERT_ITEM, PDF, Gateway

KEY = "Idempotency-Key"
URL = "/api/v1/applications"


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records saved after the handler: none when the one written in the transaction is the answer sent."""
    calls: list[Any] = []
    original = IdempotencyRecords.save

    async def save(self: IdempotencyRecords, record: Any) -> bool:
        calls.append(record)
        return await original(self, record)

    monkeypatch.setattr(IdempotencyRecords, "save", save)
    return calls


async def count(gateway: Gateway, table: Any) -> int:
    async with gateway.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_create_and_accept_commits_its_record_and_a_restart_replays_it(
    gateway: Gateway, saves: list[Any]
) -> None:
    citizen = gateway.citizen("resident_id_card")
    body = gateway.body(citizen, ONE_CERT_ITEM, accept=True)
    headers = gateway.auth("clerk") | {KEY: "window-3-filing-1"}
    first = await gateway.client.post(URL, json=body, headers=headers)
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["status"] == "accepted" and receipt["tracking_number"] and receipt["query_code"]
    async with gateway.db.read() as conn:
        (row,) = (await conn.execute(select(idempotency_records))).all()
    assert row.principal.startswith("token:") and row.status == 201
    # The answer holds the query code, shown once: sealed at rest.
    assert receipt["query_code"].encode() not in row.response and citizen.name.encode() not in row.response
    assert saves == []  # the record written in the transaction is exactly the answer sent

    # The gateway restarts (its memory store is gone); the window retries.
    async with asgi_client(create_app(gateway.settings)) as restarted:
        again = await restarted.post(URL, json=body, headers=headers)
        other = await restarted.post(URL, json=body | {"purpose": "另一件事"}, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and again.headers["location"] == first.headers["location"]
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == KEY
    assert await count(gateway, applications) == 1


async def test_upload_and_accept_record_in_their_transactions(gateway: Gateway, saves: list[Any]) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    created = await gateway.create(gateway.body(citizen))
    application_id = created.json()["id"]
    upload = await gateway.upload(application_id, "application_form", PDF, headers={KEY: "scan-1"})
    accept = await gateway.accept(application_id, **{KEY: "accept-1"})
    assert upload.status_code == 200 and accept.status_code == 200, accept.text
    assert await count(gateway, idempotency_records) == 2 and saves == []
    async with asgi_client(create_app(gateway.settings)) as restarted:
        again = await restarted.post(
            f"{URL}/{application_id}/accept", headers=gateway.auth("clerk") | {KEY: "accept-1"}
        )
    assert again.status_code == 200 and again.content == accept.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_refused_filing_leaves_no_record(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    headers = gateway.auth("clerk") | {KEY: "incomplete-1"}
    refused = await gateway.client.post(URL, json=gateway.body(citizen, CARE_ITEM, accept=True), headers=headers)
    assert refused.status_code == 422, refused.text
    assert await count(gateway, idempotency_records) == 0 and await count(gateway, applications) == 0


async def test_one_token_written_two_ways_is_one_caller(gateway: Gateway) -> None:
    # Regression: keys were scoped by the Authorization header's bytes, so `bearer  T` filed a second case.
    citizen = gateway.citizen("resident_id_card")
    body = gateway.body(citizen, ONE_CERT_ITEM, accept=True)
    token = gateway.tokens["clerk"]
    first = await gateway.client.post(URL, json=body, headers={"Authorization": f"Bearer {token}", KEY: "k-1"})
    again = await gateway.client.post(URL, json=body, headers={"Authorization": f"bearer  {token}", KEY: "k-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert await count(gateway, applications) == 1
    # Another token of the same clerk's unit is another caller: its key is its own.
    other = await gateway.client.post(URL, json=body, headers=gateway.auth("community_clerk") | {KEY: "k-1"})
    assert other.status_code == 201 and "idempotent-replayed" not in other.headers
