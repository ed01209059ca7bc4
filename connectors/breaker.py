"""Circuit breaker per department: closed -> open -> half-open -> closed.

- **closed**: calls pass; ``failure_threshold`` consecutive retriable failures (timeouts, connection failures,
  5xx) open it. Any answer that is not a 5xx (2xx, and also 4xx and 429: the system is up and talking) resets
  the count.
- **open**: calls fail fast with `CircuitOpen` without touching the network, until ``cool_down`` has passed.
- **half-open**: exactly one call (the probe) goes through; its success closes the breaker, its failure opens it
  for another cool-down. A probe that never reports (cancelled, crashed process) frees its slot after
  ``probe_timeout`` so the department is not shut out for good.

State lives in memory (one process) or in Redis (``redis.asyncio``; one hash per department, every transition one
Lua script, so several gateway processes agree). The clock is injectable; the Redis variant takes "now" from the
caller so that tests can drive it, and defaults to wall-clock time, which processes share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

from redis.asyncio import Redis

from connectors.errors import CircuitOpen
from connectors.spec import BreakerPolicy

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]


class Breaker(Protocol):
    department: str

    async def before_call(self) -> None:
        """Raise `CircuitOpen` when the call must not go out; otherwise let it through (maybe as the probe)."""

    async def record_success(self) -> None: ...

    async def record_failure(self) -> None: ...

    async def release(self) -> None:
        """The call ended without a verdict (cancelled): free the probe slot if it held it."""

    async def state(self) -> BreakerState: ...


class BreakerStore(Protocol):
    def breaker(self, department: str, policy: BreakerPolicy) -> Breaker: ...

    async def aclose(self) -> None: ...


def _open_error(department: str, retry_in: float) -> CircuitOpen:
    return CircuitOpen(
        f"circuit open after repeated failures; next probe in {max(retry_in, 0.0):.1f} s",
        retry_in=max(retry_in, 0.0),
        department=department,
    )


class MemoryBreaker:
    def __init__(self, department: str, policy: BreakerPolicy, clock: Clock = time.monotonic) -> None:
        self.department = department
        self.policy = policy
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_until = 0.0  # > now while a probe is in flight

    @property
    def probe_timeout(self) -> float:
        return self.policy.cool_down

    async def before_call(self) -> None:
        now = self._clock()
        if self._state == "closed":
            return
        if self._state == "open":
            ready = self._opened_at + self.policy.cool_down
            if now < ready:
                raise _open_error(self.department, ready - now)
            self._state = "half_open"
        if now < self._probe_until:
            raise _open_error(self.department, self._probe_until - now)
        self._probe_until = now + self.probe_timeout

    async def record_success(self) -> None:
        self._state = "closed"
        self._failures = 0
        self._probe_until = 0.0

    async def record_failure(self) -> None:
        now = self._clock()
        if self._state == "half_open":
            self._state, self._opened_at, self._probe_until = "open", now, 0.0
            return
        if self._state == "open":
            return
        self._failures += 1
        if self._failures >= self.policy.failure_threshold:
            self._state, self._opened_at, self._failures = "open", now, 0

    async def release(self) -> None:
        if self._state == "half_open":
            self._probe_until = 0.0

    async def state(self) -> BreakerState:
        return self._state


class MemoryBreakerStore:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[str, MemoryBreaker] = {}

    def breaker(self, department: str, policy: BreakerPolicy) -> MemoryBreaker:
        breaker = self._breakers.get(department)
        if breaker is None or breaker.policy != policy:
            breaker = self._breakers[department] = MemoryBreaker(department, policy, self._clock)
        return breaker

    async def aclose(self) -> None:
        return None


# Returns {verdict, seconds}: verdict 1 = pass, 2 = pass as the probe, 0 = refused (seconds until it may pass).
_BEFORE = """
local s = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probe_until')
local state = s[1] or 'closed'
if state == 'closed' then return {1, '0'} end
local now = tonumber(ARGV[1])
if state == 'open' then
  local ready = (tonumber(s[2]) or 0) + tonumber(ARGV[2])
  if now < ready then return {0, tostring(ready - now)} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', '0')
end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0') or 0
if now < probe_until then return {0, tostring(probe_until - now)} end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[3])))
return {2, '0'}
"""
_FAILURE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'probe_until', '0', 'failures', '0')
  return 'open'
end
if state == 'open' then return 'open' end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'failures', '0')
  return 'open'
end
return 'closed'
"""
_SUCCESS = """
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'probe_until', '0')
return 'closed'
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open' then redis.call('HSET', KEYS[1], 'probe_until', '0') end
return 1
"""


class RedisBreaker:
    def __init__(self, store: RedisBreakerStore, department: str, policy: BreakerPolicy) -> None:
        self.department = department
        self.policy = policy
        self._store = store
        self._key = f"{store.prefix}{department}"

    async def before_call(self) -> None:
        verdict, seconds = await self._store.before(
            keys=[self._key],
            args=[repr(self._store.clock()), repr(self.policy.cool_down), repr(self.policy.cool_down)],
        )
        if int(verdict) == 0:
            raise _open_error(self.department, float(seconds))

    async def record_success(self) -> None:
        await self._store.success(keys=[self._key], args=[])

    async def record_failure(self) -> None:
        await self._store.failure(
            keys=[self._key], args=[repr(self._store.clock()), str(self.policy.failure_threshold)]
        )

    async def release(self) -> None:
        await self._store.release(keys=[self._key], args=[])

    async def state(self) -> BreakerState:
        value = await self._store.redis.hget(self._key, "state")
        if value in (b"open", "open"):
            return "open"
        if value in (b"half_open", "half_open"):
            return "half_open"
        return "closed"


class RedisBreakerStore:
    """Breaker state shared through Redis under ``<prefix><department>`` hashes.

    The client is the caller's — the gateway shares one per process, with its connect and call timeouts, between
    its stores, its limiter and these breakers — and `aclose` closes it only when ``owns_client`` says so.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "onewindow:breaker:",
        clock: Clock = time.time,
        owns_client: bool = False,
    ) -> None:
        self.redis = redis
        self.owns_client = owns_client
        self.prefix = prefix
        self.clock = clock
        self.before = self.redis.register_script(_BEFORE)
        self.failure = self.redis.register_script(_FAILURE)
        self.success = self.redis.register_script(_SUCCESS)
        self.release = self.redis.register_script(_RELEASE)

    def breaker(self, department: str, policy: BreakerPolicy) -> RedisBreaker:
        return RedisBreaker(self, department, policy)

    async def aclose(self) -> None:
        if self.owns_client:
            await self.redis.aclose()


def breaker_store_for(
    redis: Redis | None, *, clock: Clock | None = None, owns_client: bool = False
) -> MemoryBreakerStore | RedisBreakerStore:
    """In-memory breakers without a Redis client, else breakers shared through Redis."""
    if redis is None:
        return MemoryBreakerStore(clock or time.monotonic)
    return RedisBreakerStore(redis, clock=clock or time.time, owns_client=owns_client)
