"""Concurrent transitions of one case, on SQLite and PostgreSQL: exactly one move wins (one status change in the
history and in the audit log), the others answer 409 — over HTTP and over the service from separate `Database`
objects (separate processes)."""

from __future__ import annotations

import asyncio
from collections import Counter

from gateway.context import context_of
from gateway.identity.principal import Principal, Role
from gateway.lifecycle.schemas import TransitionIn
from gateway.lifecycle.services import LifecycleService
from gateway.problems import ProblemError
from gateway.storage import Database
from tests.gateway.intake.fixtures import Gateway

CONCURRENT = 20


def history_of(view: dict[str, object]) -> list[object]:
    history = view["history"]
    assert isinstance(history, list)
    return [entry["status"] for entry in history]


async def test_concurrent_identical_moves_apply_once(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    responses = await asyncio.gather(*(gateway.move(application_id, "in_review") for _ in range(CONCURRENT)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: CONCURRENT - 1}, [r.text for r in responses if r.status_code not in (200, 409)]
    view = (await gateway.get(application_id)).json()
    assert history_of(view) == ["draft", "accepted", "in_review"]
    assert await gateway.audited("status.changed") == 1


async def test_moves_from_several_processes_apply_once(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    context = context_of(gateway.app)
    databases = [Database.from_settings(gateway.settings) for _ in range(4)]
    officer = Principal(role=Role.OFFICER, token_id="officer-test", department="civil_affairs")

    async def move(i: int) -> int:
        service = LifecycleService(
            database=databases[i % len(databases)],
            catalog=context.catalog,
            calendar=context.calendar,
            cipher=context.cipher,
        )
        try:
            await service.transition(officer, application_id, TransitionIn(to="in_review"))
        except ProblemError as exc:
            return exc.status
        return 200

    try:
        results = Counter(await asyncio.gather(*(move(i) for i in range(CONCURRENT))))
    finally:
        for db in databases:
            await db.dispose()
    assert results == {200: 1, 409: CONCURRENT - 1}
    assert await gateway.audited("status.changed") == 1
