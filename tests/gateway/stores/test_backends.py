from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.stores import AtomicRedisStore, Stores, build_stores, redis_client
from tests.gateway.stores.conftest import StoreClock
from tests.timing import Run, timely


async def test_backend_follows_settings(stores: Stores, redis_url: str) -> None:
    assert stores.backend == ("redis" if redis_url else "memory")
    assert stores.registry.get("idempotency") is stores.idempotency
    assert stores.registry.get("rate_limit") is stores.rate_limit
    # Any other name (Litestar's response cache, say) gets the same kind of backend.
    other = stores.registry.get("response_cache")
    assert type(other) is type(stores.idempotency)
    check = await stores.check()
    assert check.ok and not check.critical


async def test_store_api_round_trip_and_expiry(stores: Stores, clock: StoreClock) -> None:
    cache = stores.registry.get("response_cache")
    await cache.set("a", "值")
    assert await cache.get("a") == "值".encode()
    assert await cache.exists("a")
    await cache.set("short", b"x", expires_in=1)
    assert await cache.expires_in("short") in (0, 1)
    await cache.delete("a")
    assert await cache.get("a") is None
    await clock.advance(1.1)
    assert await cache.get("short") is None


async def test_claim_is_set_if_absent(stores: Stores) -> None:
    store = stores.idempotency
    assert await store.claim("k", b"first", 10_000) is None
    assert await store.claim("k", b"second", 10_000) == b"first"
    assert await store.get("k") == b"first"


async def test_claim_expires_with_its_lease(stores: Stores, clock: StoreClock) -> None:
    store = stores.idempotency
    assert await store.claim("lease", b"a", 100) is None
    await clock.advance(0.25)
    assert await store.claim("lease", b"b", 10_000) is None
    assert await store.get("lease") == b"b"


async def test_compare_and_swap_and_delete(stores: Stores) -> None:
    store = stores.idempotency
    await store.claim("k", b"mine", 10_000)
    assert not await store.replace_if("k", b"theirs", b"new", 10_000)
    assert await store.replace_if("k", b"mine", b"done", 10_000)
    assert await store.get("k") == b"done"
    assert not await store.delete_if("k", b"mine")
    assert await store.delete_if("k", b"done")
    assert await store.get("k") is None
    assert not await store.replace_if("absent", b"x", b"y", 10_000)


async def test_concurrent_claims_have_one_winner(make_stores: Callable[[], Stores]) -> None:
    # Two "processes" (separate clients on Redis; one store in memory, where a process is the limit).
    first, second = make_stores(), make_stores()
    stores = [first.idempotency, second.idempotency] if first.redis is not None else [first.idempotency] * 2
    results = await asyncio.gather(*(stores[i % 2].claim("race", f"c{i}".encode(), 10_000) for i in range(40)))
    assert results.count(None) == 1
    winner = await first.idempotency.get("race")
    assert all(r == winner for r in results if r is not None)


async def test_sliding_window_events(stores: Stores, clock: StoreClock) -> None:
    store = stores.rate_limit

    async def scenario(run: Run) -> tuple[str, list[tuple[int, int]]]:
        key = f"c{run.number}"
        assert await store.count_events(key, 300) == (0, 0)
        started = run.now()
        added = [await store.add_event(key, 300, keep=3) for _ in range(4)]
        run.check(started, 0.3)  # all four inside one 300 ms window
        return key, added

    key, added = await timely(scenario)
    assert added[0][0] == 1
    count, age = added[2]
    assert count == 3 and 0 <= age < 300
    assert added[3][0] == 3  # only the newest `keep` are kept
    await clock.advance(0.35)
    assert await store.count_events(key, 300) == (0, 0)


async def test_namespaces_keep_purposes_apart(stores: Stores) -> None:
    await stores.rate_limit.set("same", b"rate")
    assert await stores.idempotency.get("same") is None
    if isinstance(stores.rate_limit, AtomicRedisStore):
        assert stores.rate_limit.key("same").endswith("_rate_limit:same")


async def test_unreachable_redis_is_reported_not_critical() -> None:
    stores = build_stores(redis_client("redis://127.0.0.1:1/15"))
    try:
        check = await stores.check()
        assert not check.ok and not check.critical
        assert "unreachable" in check.detail
        with pytest.raises(Exception):  # whatever the client raises: the callers handle it
            await stores.idempotency.claim("k", b"v", 1000)
    finally:
        await stores.close()


async def test_memory_event_logs_of_idle_clients_are_swept() -> None:
    from gateway.stores import AtomicMemoryStore
    from gateway.stores.backends import _SWEEP_EVERY

    store = AtomicMemoryStore()
    for i in range(10):
        await store.add_event(f"idle{i}", 50, keep=3)
    await asyncio.sleep(0.1)
    for i in range(_SWEEP_EVERY):
        await store.set(f"k{i}", b"v")
    assert not any(key.startswith("idle") for key in store._events)
