"""The retry policy of a department, built from its ``[retry]`` data as a tenacity `AsyncRetrying`.

Only `RetriableError`s are retried (timeouts, connection failures, 5xx, 429); everything else, and
`asyncio.CancelledError` above all, passes straight through. Waits grow exponentially with random jitter; a 429's
``Retry-After`` replaces the computed wait, capped at ``retry_after_cap``. Attempts stop at ``attempts`` or when
the next one would start after ``deadline`` seconds; `call_with_retry` also bounds the whole call, attempts and
waits together, by the deadline.

Most calls succeed at once, so the first attempt runs without a tenacity controller: building one per call cost
~35 µs and left ~20 objects in reference cycles for the garbage collector (a young collection every few seconds
on a busy gateway). Only when the first attempt fails retriably is the controller built; it sees that failure as
its own first attempt (replayed, not run again) and counts its delay from the first attempt's start, so attempts,
waits and the ``deadline`` stop are exactly what they were with one controller for the whole call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from connectors.errors import RateLimited, RetriableError, Timeout
from connectors.spec import RetryPolicy

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class _Wait:
    """Exponential backoff with jitter, or the department's ``Retry-After`` (capped) after a 429."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._cap = policy.retry_after_cap
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_backoff, max=policy.max_backoff, jitter=policy.jitter
        )

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return max(0.0, min(error.retry_after, self._cap))
        return float(self._backoff(state))


def build_retrying(policy: RetryPolicy, *, sleep: Sleep | None = None, elapsed: float = 0.0) -> AsyncRetrying:
    """A fresh tenacity controller for one call (they keep per-call statistics, so never share one);
    ``elapsed``: seconds of the call already spent before the controller started (its delay stop is shortened)."""
    kwargs: dict[str, object] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return AsyncRetrying(
        retry=retry_if_exception_type(RetriableError),
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(max(0.0, policy.deadline - elapsed)),
        wait=_Wait(policy),
        reraise=True,
        **kwargs,  # type: ignore[arg-type]
    )


async def call_with_retry(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[T]],
    *,
    sleep: Sleep | None = None,
    department: str = "",
    endpoint: str = "",
) -> T:
    """Run ``attempt`` under the policy; the last error is raised as is; the deadline raises `Timeout`."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(policy.deadline) as scope:
            try:
                return await attempt()
            except RetriableError as error:
                first: list[BaseException] = [error]
            if policy.attempts == 1:
                raise first[0]

            async def replay_then_attempt() -> T:
                if first:  # the controller's first attempt is the one that already failed
                    raise first.pop()
                return await attempt()

            retrying = build_retrying(policy, sleep=sleep, elapsed=time.monotonic() - started)
            return await retrying(replay_then_attempt)
    except TimeoutError:
        # Attempts turn their own timeouts into `Timeout`, so a bare TimeoutError here is the deadline.
        if scope.expired():
            raise Timeout(
                f"no answer within the {policy.deadline:g} s deadline (attempts and waits together)",
                department=department,
                endpoint=endpoint,
            ) from None
        raise
