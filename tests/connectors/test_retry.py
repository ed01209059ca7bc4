"""The retry policy: what it retries, how long it waits, when it gives up, and that cancellation goes through."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from connectors.errors import (
    AuthenticationFailed,
    BadRequest,
    CircuitOpen,
    ConnectionFailed,
    ConnectorError,
    MalformedResponse,
    RateLimited,
    ServerError,
    Timeout,
)
from connectors.retry import call_with_retry
from connectors.spec import RetryPolicy

FAST = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.02, jitter=0.0, retry_after_cap=0.05, deadline=5)


class Recorder:
    def __init__(self, errors: list[ConnectorError | None]) -> None:
        self.errors = errors
        self.calls = 0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def __call__(self) -> str:
        self.calls += 1
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        return "ok"


@pytest.mark.parametrize(
    "error",
    [
        Timeout("t"),
        ConnectionFailed("c"),
        ServerError("s", status=503),
        RateLimited("r", retry_after=None),
    ],
)
async def test_retriable_errors_are_retried(error: ConnectorError) -> None:
    attempt = Recorder([error, error])
    assert await call_with_retry(FAST, attempt, sleep=attempt.sleep) == "ok"
    assert attempt.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationFailed("a", status=401),
        BadRequest("b", status=404),
        MalformedResponse("m"),
        CircuitOpen("o"),
    ],
)
async def test_fatal_errors_are_not_retried(error: ConnectorError) -> None:
    attempt = Recorder([error])
    with pytest.raises(type(error)):
        await call_with_retry(FAST, attempt, sleep=attempt.sleep)
    assert attempt.calls == 1


async def test_gives_up_after_attempts_with_the_last_error() -> None:
    attempt = Recorder([ServerError(f"s{i}", status=500 + i) for i in range(10)])
    with pytest.raises(ServerError) as info:
        await call_with_retry(FAST, attempt, sleep=attempt.sleep)
    assert attempt.calls == 4 and info.value.status == 503
    # Exponential: 0.01, 0.02 (capped at max_backoff), 0.02.
    assert attempt.sleeps == pytest.approx([0.01, 0.02, 0.02])


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    attempt = Recorder([RateLimited("r", retry_after=0.03), RateLimited("r", retry_after=3600), None])
    assert await call_with_retry(FAST, attempt, sleep=attempt.sleep) == "ok"
    assert attempt.sleeps == pytest.approx([0.03, 0.05])


async def test_jitter_spreads_waits() -> None:
    policy = RetryPolicy(attempts=6, initial_backoff=0.01, max_backoff=1, jitter=0.5, deadline=5)
    attempt = Recorder([Timeout("t")] * 5)
    await call_with_retry(policy, attempt, sleep=attempt.sleep)
    bases = [0.01, 0.02, 0.04, 0.08, 0.16]
    assert all(b <= s <= b + 0.5 for b, s in zip(bases, attempt.sleeps, strict=True))
    assert len(set(attempt.sleeps)) > 1


async def test_overall_deadline_bounds_attempts_and_waits() -> None:
    policy = RetryPolicy(attempts=20, initial_backoff=0.05, max_backoff=0.05, jitter=0, deadline=0.3)
    calls = 0

    async def slow_failure() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.04)
        raise ServerError("s", status=503)

    with pytest.raises((Timeout, ServerError)):
        await call_with_retry(policy, slow_failure)
    # ~0.09 s per attempt and wait: the 0.3 s deadline, not the 20 attempts, ended it (fewer still on a busy machine).
    assert 1 <= calls <= 4

    async def hangs() -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(Timeout, match="deadline"):
        await call_with_retry(policy, hangs, department="d", endpoint="GET /x")
    # Not before the deadline; the upper bound only has to tell the deadline from the 10 s hang.
    assert 0.25 < time.monotonic() - started < 5


async def test_cancellation_propagates_and_is_never_retried() -> None:
    calls = 0
    started = asyncio.Event()

    async def forever() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(call_with_retry(FAST, forever))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1

    # Cancelled while waiting between attempts: also propagates.
    async def failing() -> None:
        raise Timeout("t")

    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()
        await asyncio.sleep(seconds)

    slow = RetryPolicy(attempts=5, initial_backoff=5, max_backoff=5, jitter=0, deadline=30)
    task = asyncio.create_task(call_with_retry(slow, failing, sleep=sleep))
    await asyncio.wait_for(waiting.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_deadline_stop_counts_from_the_first_attempt() -> None:
    """The first attempt runs before any tenacity controller exists; the controller built after it fails must still
    stop retrying when the next attempt would start past the deadline of the whole call (answering the last error),
    not run on until the overall timeout cuts it off (which would answer `Timeout`)."""
    policy = RetryPolicy(attempts=20, initial_backoff=0.3, max_backoff=0.3, jitter=0, deadline=1.0)
    calls = 0

    async def slow_then_quick_failures() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.6)
        raise ServerError("s", status=503)

    with pytest.raises(ServerError):
        await call_with_retry(policy, slow_then_quick_failures)
    # 0.6 s + a 0.3 s wait leaves room for one more attempt; the wait after it would end past 1.0 s.
    assert calls in (1, 2)


async def test_a_call_that_succeeds_at_once_leaves_no_garbage_cycles() -> None:
    attempt = Recorder([])
    await call_with_retry(FAST, attempt)  # warm-up: first-use caches
    gc.collect()
    gc.disable()
    try:
        for _ in range(200):
            assert await call_with_retry(FAST, attempt) == "ok"
        assert gc.collect() == 0  # nothing in a reference cycle: freed by reference counting alone
    finally:
        gc.enable()
