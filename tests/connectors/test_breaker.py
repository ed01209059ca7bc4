"""The breaker's state machine with a fake clock, in memory and shared through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from connectors.breaker import Breaker, BreakerStore, MemoryBreakerStore, RedisBreakerStore, breaker_store_for
from connectors.errors import CircuitOpen
from connectors.spec import BreakerPolicy
from tests.connectors.helpers import FakeClock

POLICY = BreakerPolicy(failure_threshold=3, cool_down=10.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(redis_url: str, clock: FakeClock) -> AsyncIterator[BreakerStore]:
    if redis_url:
        redis_store = RedisBreakerStore(
            Redis.from_url(redis_url), owns_client=True, prefix=f"test:breaker:{uuid.uuid4().hex}:", clock=clock
        )
        try:
            yield redis_store
        finally:
            keys = [k async for k in redis_store.redis.scan_iter(match=f"{redis_store.prefix}*")]
            if keys:
                await redis_store.redis.delete(*keys)
            await redis_store.aclose()
    else:
        yield MemoryBreakerStore(clock)


async def fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        await breaker.before_call()
        await breaker.record_failure()


async def test_opens_after_consecutive_failures_and_fails_fast(store: BreakerStore, clock: FakeClock) -> None:
    breaker = store.breaker("public_security", POLICY)
    await fail(breaker, 2)
    assert await breaker.state() == "closed"
    await fail(breaker, 1)
    assert await breaker.state() == "open"
    clock.now += 4
    with pytest.raises(CircuitOpen) as info:
        await breaker.before_call()
    assert info.value.department == "public_security"
    assert info.value.retry_in == pytest.approx(6.0)


async def test_success_resets_the_count(store: BreakerStore) -> None:
    breaker = store.breaker("civil_affairs", POLICY)
    await fail(breaker, 2)
    await breaker.before_call()
    await breaker.record_success()
    await fail(breaker, 2)
    assert await breaker.state() == "closed"


async def test_half_open_lets_exactly_one_probe_through(store: BreakerStore, clock: FakeClock) -> None:
    breaker = store.breaker("health", POLICY)
    await fail(breaker, 3)
    clock.now += 10
    await breaker.before_call()  # the probe
    assert await breaker.state() == "half_open"
    with pytest.raises(CircuitOpen):
        await breaker.before_call()  # a second caller while the probe is out
    await breaker.record_success()
    assert await breaker.state() == "closed"
    await breaker.before_call()
    await breaker.before_call()


async def test_failed_probe_reopens_for_another_cool_down(store: BreakerStore, clock: FakeClock) -> None:
    breaker = store.breaker("veterans", POLICY)
    await fail(breaker, 3)
    clock.now += 10
    await breaker.before_call()
    await breaker.record_failure()
    assert await breaker.state() == "open"
    clock.now += 9
    with pytest.raises(CircuitOpen):
        await breaker.before_call()
    clock.now += 1
    await breaker.before_call()
    assert await breaker.state() == "half_open"


async def test_cancelled_or_lost_probe_frees_the_slot(store: BreakerStore, clock: FakeClock) -> None:
    breaker = store.breaker("disabled_persons", POLICY)
    await fail(breaker, 3)
    clock.now += 10
    await breaker.before_call()
    await breaker.release()  # the probe was cancelled: another caller may probe
    await breaker.before_call()
    with pytest.raises(CircuitOpen):
        await breaker.before_call()
    clock.now += POLICY.cool_down  # the probe never reported (crashed process): its slot expires
    await breaker.before_call()


async def test_departments_are_independent(store: BreakerStore) -> None:
    a = store.breaker("public_security", POLICY)
    b = store.breaker("human_resources", POLICY)
    await fail(a, 3)
    assert await a.state() == "open"
    assert await b.state() == "closed"
    await b.before_call()


async def test_processes_sharing_redis_agree(redis_url: str, clock: FakeClock) -> None:
    if not redis_url:
        pytest.skip("in-memory breakers are per process by design")
    prefix = f"test:breaker:{uuid.uuid4().hex}:"
    one = RedisBreakerStore(Redis.from_url(redis_url), owns_client=True, prefix=prefix, clock=clock)
    two = RedisBreakerStore(Redis.from_url(redis_url), owns_client=True, prefix=prefix, clock=clock)
    try:
        first, second = one.breaker("health", POLICY), two.breaker("health", POLICY)
        await fail(first, 2)
        await fail(second, 1)  # the third consecutive failure, seen from another "process"
        with pytest.raises(CircuitOpen):
            await first.before_call()
        clock.now += 10
        # Concurrent probes from both: exactly one gets through.
        results = await asyncio.gather(
            *(b.before_call() for b in (first, second, first, second)), return_exceptions=True
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, CircuitOpen) for r in results if r is not None)
    finally:
        keys = [k async for k in one.redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await one.redis.delete(*keys)
        await one.aclose()
        await two.aclose()


async def test_store_factory(redis_url: str) -> None:
    assert isinstance(breaker_store_for(None), MemoryBreakerStore)
    if not redis_url:
        return
    client = Redis.from_url(redis_url)
    shared = breaker_store_for(client)
    assert isinstance(shared, RedisBreakerStore) and shared.redis is client
    await shared.aclose()
    assert await client.ping()  # the caller's client stays open for its other users
    await client.aclose()
