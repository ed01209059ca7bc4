"""The public lookup's fast path on SQLite and PostgreSQL: one prepared read (inline on SQLite) that sees every
change at once, and the failure limiter consulted only where it can matter — never skipped when it could block."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.context import context_of
from gateway.problems import TooManyRequests
from gateway.stores import FailureLimiter, build_stores, redis_client
from gateway.stores.backends import AtomicMemoryStore, AtomicRedisStore
from gateway.tracking.deps import provide_tracking
from gateway.tracking.services import NoMatch, TrackingService
from tests.gateway.intake.fixtures import Gateway
from tests.gateway.tracking.test_tracking_api import evaluate, track
from tests.services import REDIS_URL, need


def _inline_counts(gateway: Gateway) -> tuple[int, int]:
    """(reads answered inline, handed to aiosqlite)."""
    inline = gateway.db.inline
    return (inline.served, inline.deferred) if inline is not None else (0, 0)


async def test_lookup_is_one_read_that_follows_the_case_at_once(gateway: Gateway) -> None:
    application_id, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    before = _inline_counts(gateway)
    for _ in range(5):
        assert (await track(gateway, number, code)).json()["status"] == "accepted"
    if gateway.db.dialect == "sqlite":
        # An inline read each time; nothing through aiosqlite.
        served, deferred = (now - then for now, then in zip(_inline_counts(gateway), before, strict=True))
        assert (served, deferred) == (5, 0)
    for to, extra in [("in_review", {}), ("approved", {"result": "准予"})]:
        assert (await gateway.move(application_id, to, **extra)).status_code == 200
        body = (await track(gateway, number, code)).json()  # the next lookup after the commit shows it
        assert body["status"] == to and body["timeline"][-1]["status"] == to
    assert body["can_evaluate"] is True
    assert (await evaluate(gateway, number, code, {"level": 5, "comment": ""})).status_code == 201
    body = (await track(gateway, number, code)).json()
    assert body["evaluated"] is True and body["can_evaluate"] is False


async def test_correct_lookups_leave_an_in_process_limiter_store_alone(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    calls: list[str] = []
    for name in ("count_events", "add_event"):
        original = getattr(AtomicMemoryStore, name)

        async def counted(self: AtomicMemoryStore, *args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return await _original(self, *args)

        monkeypatch.setattr(AtomicMemoryStore, name, counted)
    for _ in range(10):
        assert (await track(gateway, number, code)).status_code == 200
    assert calls == []  # no failure from this client: nothing to ask
    assert (await track(gateway, number, "ZZZZZZZZ")).status_code == 404
    assert calls == ["count_events", "add_event"]  # a failure: blocked already? then counted
    calls.clear()
    assert (await track(gateway, number, code)).status_code == 200
    assert calls == ["count_events"]  # a recent failure: the correct lookup asks whether the client is blocked
    await context_of(gateway.app).tracking_limiter.reset("127.0.0.1")


async def test_failed_evaluations_block_lookups_too(gateway: Gateway) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    assert (await track(gateway, number, code)).status_code == 200
    for _ in range(gateway.settings.tracking_failures_per_minute):
        assert (await evaluate(gateway, number, "ZZZZZZZZ", {"level": 5, "comment": ""})).status_code == 404
    # The failures came through the evaluation route, and still the correct lookup learns nothing.
    assert (await track(gateway, number, code)).status_code == 429
    # So do services built per request (the supervisor routes' way) on the same limiter.
    with pytest.raises(TooManyRequests):
        await provide_tracking(context_of(gateway.app)).track(number, code, client="127.0.0.1")
    await context_of(gateway.app).tracking_limiter.reset("127.0.0.1")
    assert (await track(gateway, number, code)).status_code == 200


async def test_with_a_shared_store_a_client_blocked_elsewhere_is_blocked_here_from_its_first_failure(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateway processes on one Redis: failures made through one block the client in the other from the first
    failure the other sees; correct lookups of clients without failures here do not ask Redis."""
    redis_url = need(REDIS_URL, "Redis")
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    scope = f"tracking-test-{uuid.uuid4().hex[:8]}"
    stores = [build_stores(redis_client(redis_url) if redis_url else None) for _ in range(2)]
    limiters = [FailureLimiter(s.rate_limit, limit=3, scope=scope) for s in stores]
    calendar = provide_tracking(context_of(gateway.app)).calendar
    one, other = (
        TrackingService(database=gateway.db, calendar=calendar, cipher=context_of(gateway.app).cipher, limiter=limiter)
        for limiter in limiters
    )
    asked: list[str] = []
    original = AtomicRedisStore.count_events

    async def counted(self: AtomicRedisStore, key: str, window_ms: int) -> tuple[int, int]:
        asked.append(key)
        return await original(self, key, window_ms)

    monkeypatch.setattr(AtomicRedisStore, "count_events", counted)
    client = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    try:
        for _ in range(5):
            assert (await other.track(number, code, client=client)).tracking_number == number
        assert asked == []  # no failure from this client anywhere: Redis is not asked
        for _ in range(3):
            with pytest.raises(NoMatch):
                await one.track(number, "ZZZZZZZZ", client=client)
        # Blocked through `one`: `other` answers its first failure 429 (it asks Redis first) …
        with pytest.raises(TooManyRequests):
            await other.track(number, "YYYYYYYY", client=client)
        # … and from then on a correct lookup too: the client learns nothing here either.
        with pytest.raises(TooManyRequests):
            await other.track(number, code, client=client)
        with pytest.raises(TooManyRequests):
            await one.track(number, code, client=client)
    finally:
        await limiters[0].reset(client)
        for s in stores:
            await s.close()
