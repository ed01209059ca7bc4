"""The failure limiter for public lookups, on memory and on Redis, alone and behind a tiny tracking endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.params import FromPath, FromQuery

from gateway.problems import EXCEPTION_HANDLERS, NotFound, TooManyRequests
from gateway.stores import FailureLimiter, Stores, build_stores, redis_client
from tests.gateway.stores.conftest import StoreClock
from tests.gateway.stores.http import asgi_client
from tests.timing import Run, timely


async def test_blocks_after_limit_failures_and_says_when_to_retry(stores: Stores) -> None:
    limiter = FailureLimiter(stores.rate_limit, limit=3, window_seconds=60)
    assert await limiter.record_failure("10.0.0.1") is None
    assert await limiter.record_failure("10.0.0.1") is None
    assert not await limiter.blocked("10.0.0.1")
    wait = await limiter.record_failure("10.0.0.1")
    assert wait is not None and 55 <= wait <= 60
    assert await limiter.blocked("10.0.0.1")
    with pytest.raises(TooManyRequests) as info:
        await limiter.check("10.0.0.1")
    assert 55 <= int(info.value.headers["Retry-After"]) <= 60
    # Another client is not affected.
    assert not await limiter.blocked("10.0.0.2")
    await limiter.check("10.0.0.2")
    await limiter.reset("10.0.0.1")
    assert not await limiter.blocked("10.0.0.1")


async def test_checks_alone_never_count(stores: Stores) -> None:
    limiter = FailureLimiter(stores.rate_limit, limit=1, window_seconds=60)
    for _ in range(200):
        await limiter.check("10.0.0.3")
    assert not await limiter.blocked("10.0.0.3")


async def test_window_slides(stores: Stores, clock: StoreClock) -> None:
    limiter = FailureLimiter(stores.rate_limit, limit=2, window_seconds=0.4)

    async def scenario(run: Run) -> tuple[bool, bool, bool]:
        client = f"c{run.number}"
        first = run.now()
        await limiter.record_failure(client)
        await clock.advance(0.25)
        second = run.now()
        await limiter.record_failure(client)
        both = await limiter.blocked(client)
        run.check(first, 0.4)  # both failures were inside the window when it was asked
        await clock.advance(0.2)  # the first failure has left the window (0.45 s), the second has not
        after_first_left = await limiter.blocked(client)
        await limiter.record_failure(client)
        second_and_third = await limiter.blocked(client)
        run.check(second, 0.4)
        return both, after_first_left, second_and_third

    both, after_first_left, second_and_third = await timely(scenario)
    assert both
    assert not after_first_left
    assert second_and_third


async def test_client_keys_are_stored_as_digests(stores: Stores, namespace: str) -> None:
    limiter = FailureLimiter(stores.rate_limit, limit=5, hasher=lambda k: f"h{len(k)}")
    await limiter.record_failure("192.168.1.77")
    if stores.redis is not None:
        keys = [k async for k in stores.redis.scan_iter(match=f"{namespace}_rate_limit:*")]
        assert keys == [f"{namespace}_rate_limit:tracking:h12".encode()]
    default = FailureLimiter(stores.rate_limit, limit=5)
    await default.record_failure("192.168.1.77")
    if stores.redis is not None:
        names = [k async for k in stores.redis.scan_iter(match=f"{namespace}_rate_limit:*")]
        assert not any(b"192.168.1.77" in k for k in names)


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)
async def test_processes_share_one_count_through_redis(make_stores: Callable[[], Stores]) -> None:
    one = FailureLimiter(make_stores().rate_limit, limit=4)
    two = FailureLimiter(make_stores().rate_limit, limit=4)
    await asyncio.gather(one.record_failure("1.2.3.4"), two.record_failure("1.2.3.4"), one.record_failure("1.2.3.4"))
    assert not await two.blocked("1.2.3.4")
    await two.record_failure("1.2.3.4")
    assert await one.blocked("1.2.3.4") and await two.blocked("1.2.3.4")


async def test_unreachable_store_does_not_close_the_lookup(caplog: pytest.LogCaptureFixture) -> None:
    broken = build_stores(redis_client("redis://127.0.0.1:1/15"))
    try:
        limiter = FailureLimiter(broken.rate_limit, limit=1)
        assert await limiter.record_failure("x") is None
        assert not await limiter.blocked("x")
        assert "rate-limit store unavailable" in caplog.text
    finally:
        await broken.close()


def test_limit_must_be_positive(stores: Stores) -> None:
    with pytest.raises(ValueError):
        FailureLimiter(stores.rate_limit, limit=0)


# --- behind an endpoint, as the tracking domain uses it ---------------------------------------------------

_CASES = {"4303022026010100001": "right-code"}


def tracking_app(limiter: FailureLimiter) -> Litestar:
    @get("/track/{number:str}")
    async def track(request: Request[Any, Any, Any], number: FromPath[str], code: FromQuery[str]) -> dict[str, str]:
        client = request.client.host if request.client else "unknown"
        await limiter.check(client)
        if _CASES.get(number) != code:
            await limiter.record_failure(client)
            raise NotFound("no such tracking number, or wrong query code")
        return {"tracking_number": number}

    return Litestar(route_handlers=[track], exception_handlers=EXCEPTION_HANDLERS)


async def test_failed_lookups_are_throttled_correct_ones_are_not(stores: Stores) -> None:
    limiter = FailureLimiter(stores.rate_limit, limit=3)
    app = tracking_app(limiter)
    guesser = asgi_client(app, client=("203.0.113.9", 1))
    citizen = asgi_client(app, client=("198.51.100.7", 1))
    async with guesser, citizen:
        # Many correct lookups: never counted.
        for _ in range(20):
            assert (await citizen.get("/track/4303022026010100001", params={"code": "right-code"})).status_code == 200
        statuses = [
            (await guesser.get("/track/4303022026010100001", params={"code": f"guess{i}"})).status_code
            for i in range(5)
        ]
        assert statuses == [404, 404, 404, 429, 429]
        blocked = await guesser.get("/track/4303022026010100001", params={"code": "right-code"})
        # While blocked even a right guess answers 429, or the limit would reveal which guess was right.
        assert blocked.status_code == 429
        assert blocked.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # The citizen at another address is unaffected, and unknown numbers still answer 404 for them.
        assert (await citizen.get("/track/4303022026010100001", params={"code": "right-code"})).status_code == 200
        assert (await citizen.get("/track/999", params={"code": "x"})).status_code == 404
