"""Concurrent changes of one rectification or one evaluation, on SQLite and PostgreSQL: exactly one succeeds and
is audited, the others answer 409 — over HTTP (one process) and over the service from separate `Database`
objects (separate processes)."""

from __future__ import annotations

import asyncio
from collections import Counter

from gateway.context import context_of
from gateway.identity.principal import Principal, Role
from gateway.storage import Database
from gateway.tracking.rectifications import RectificationService
from gateway.tracking.schemas import CloseRectification
from tests.gateway.intake.fixtures import Gateway
from tests.gateway.tracking.test_tracking_api import completed_case, evaluate

CONCURRENT = 20


async def bad_review(gateway: Gateway) -> str:
    """A completed case reviewed badly: the id of the rectification it opened."""
    _, number, code = await completed_case(gateway)
    response = await evaluate(gateway, number, code, {"level": 1, "comment": "没人接电话"})
    assert response.status_code == 201, response.text
    rectification_id: str = response.json()["rectification"]["id"]
    return rectification_id


async def test_concurrent_closes_of_a_rectification_close_it_once(gateway: Gateway) -> None:
    rectification_id = await bad_review(gateway)
    close = f"/api/v1/supervision/rectifications/{rectification_id}/close"
    responses = await asyncio.gather(
        *(
            gateway.client.post(close, json={"outcome": f"回访第{i}次：满意"}, headers=gateway.auth("supervisor"))
            for i in range(CONCURRENT)
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: CONCURRENT - 1}, [r.text for r in responses if r.status_code not in (200, 409)]
    (winner,) = [r for r in responses if r.status_code == 200]
    assert all(r.json()["current_status"] == "closed" for r in responses if r.status_code == 409)
    assert await gateway.audited("rectification.closed") == 1
    listing = await gateway.client.get(
        "/api/v1/supervision/rectifications", params={"status": "all"}, headers=gateway.auth("supervisor")
    )
    (item,) = listing.json()["items"]
    assert item["status"] == "closed" and item["outcome"] == winner.json()["outcome"]


async def test_closes_from_several_processes_close_it_once(gateway: Gateway) -> None:
    rectification_id = await bad_review(gateway)
    context = context_of(gateway.app)
    databases = [Database.from_settings(gateway.settings) for _ in range(4)]
    supervisor = Principal(role=Role.SUPERVISOR, token_id="supervisor-test")

    async def close(i: int) -> str:
        service = RectificationService(database=databases[i % len(databases)], calendar=context.calendar)
        try:
            await service.close(supervisor, rectification_id, CloseRectification(outcome=f"整改{i}"))
        except Exception as exc:
            return type(exc).__name__
        return "closed"

    try:
        results = Counter(await asyncio.gather(*(close(i) for i in range(CONCURRENT))))
    finally:
        for db in databases:
            await db.dispose()
    assert results == {"closed": 1, "Conflict": CONCURRENT - 1}
    assert await gateway.audited("rectification.closed") == 1


async def test_concurrent_evaluations_record_one(gateway: Gateway) -> None:
    _, number, code = await completed_case(gateway)
    responses = await asyncio.gather(
        *(evaluate(gateway, number, code, {"level": 2, "comment": f"第{i}条意见"}) for i in range(CONCURRENT))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: CONCURRENT - 1}, [r.text for r in responses if r.status_code not in (201, 409)]
    counts = await gateway.counts()
    assert counts["evaluations"] == 1 and counts["rectifications"] == 1
    assert await gateway.audited("evaluation.submitted") == 1
    assert await gateway.audited("rectification.opened") == 1
