"""Litestar stores with the few atomic operations idempotency and rate limiting need.

`Store.set` cannot claim a key only if it is absent, so both backends add:

* `AtomicStore.claim` — set if absent, else return what is there (Redis: one Lua script);
* `AtomicStore.replace_if` / `AtomicStore.delete_if` — compare-and-swap / compare-and-delete, so a request
  whose lease ran out never overwrites or frees a key another request has claimed since;
* `AtomicStore.add_event` / `AtomicStore.count_events` — a sliding-window event log (Redis: a sorted set
  scored by the Redis server's clock, so every gateway process counts on one clock).

`AtomicMemoryStore` serves one process (critical sections are synchronous, so asyncio cannot interleave them);
`AtomicRedisStore` is shared by every process using the same Redis. Redis is a cache and coordination point
here, never the system of record.
"""

from __future__ import annotations

import abc
import secrets
import threading
import time
from collections import deque
from datetime import timedelta

from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from litestar.types import Empty, EmptyType
from redis.asyncio import Redis


def _seconds(expires_in: int | timedelta | None) -> float | None:
    if expires_in is None:
        return None
    return expires_in.total_seconds() if isinstance(expires_in, timedelta) else float(expires_in)


class AtomicStore(Store, abc.ABC):
    """A Litestar `Store` plus atomic claim / compare-and-swap / sliding-window counting."""

    @abc.abstractmethod
    async def claim(self, key: str, value: bytes, expires_in_ms: int) -> bytes | None:
        """Store ``value`` under ``key`` if the key is absent and answer ``None``; else answer the current value
        and change nothing."""

    @abc.abstractmethod
    async def replace_if(self, key: str, expected: bytes, value: bytes, expires_in_ms: int) -> bool:
        """Replace the value only if it still equals ``expected``."""

    @abc.abstractmethod
    async def delete_if(self, key: str, expected: bytes) -> bool:
        """Delete the key only if its value still equals ``expected``."""

    @abc.abstractmethod
    async def add_event(self, key: str, window_ms: int, keep: int) -> tuple[int, int]:
        """Record one event now; keep at most ``keep`` events younger than ``window_ms``. Answers
        ``(events in the window, age in ms of the oldest of them)``."""

    @abc.abstractmethod
    async def count_events(self, key: str, window_ms: int) -> tuple[int, int]:
        """``(events in the window, age in ms of the oldest of them)``, ``(0, 0)`` when there are none."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""


# --- memory ---------------------------------------------------------------------------------------------

_SWEEP_EVERY = 512


class AtomicMemoryStore(AtomicStore):
    """In-process store. A threading lock guards the dicts; no ``await`` happens while it is held."""

    __slots__ = ("_data", "_event_expiry", "_events", "_lock", "_writes")

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._events: dict[str, deque[float]] = {}
        #: When each event log holds nothing younger than its window any more (swept then).
        self._event_expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._writes = 0

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= now:
            del self._data[key]
            return None
        return value

    def _put(self, key: str, value: bytes, expires_in_s: float | None, now: float) -> None:
        self._data[key] = (value, None if expires_in_s is None else now + expires_in_s)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        expired = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in expired:
            del self._data[k]
        stale = [k for k, until in self._event_expiry.items() if until <= now]
        for k in stale:
            self._events.pop(k, None)
            del self._event_expiry[k]

    # Store API
    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else value
        with self._lock:
            self._put(key, data, _seconds(expires_in), self._now())

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        with self._lock:
            now = self._now()
            value = self._live(key, now)
            if value is not None and renew_for and self._data[key][1] is not None:
                self._data[key] = (value, now + (_seconds(renew_for) or 0.0))
            return value

    async def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
            self._events.pop(key, None)
            self._event_expiry.pop(key, None)

    async def delete_all(self) -> None:
        with self._lock:
            self._data.clear()
            self._events.clear()
            self._event_expiry.clear()

    async def exists(self, key: str) -> bool:
        with self._lock:
            return self._live(key, self._now()) is not None

    async def expires_in(self, key: str) -> int | None:
        with self._lock:
            now = self._now()
            if self._live(key, now) is None:
                return None
            expires_at = self._data[key][1]
            return None if expires_at is None else max(0, int(expires_at - now))

    # atomic additions
    async def claim(self, key: str, value: bytes, expires_in_ms: int) -> bytes | None:
        with self._lock:
            now = self._now()
            current = self._live(key, now)
            if current is not None:
                return current
            self._put(key, value, expires_in_ms / 1000, now)
            return None

    async def replace_if(self, key: str, expected: bytes, value: bytes, expires_in_ms: int) -> bool:
        with self._lock:
            now = self._now()
            if self._live(key, now) != expected:
                return False
            self._put(key, value, expires_in_ms / 1000, now)
            return True

    async def delete_if(self, key: str, expected: bytes) -> bool:
        with self._lock:
            if self._live(key, self._now()) != expected:
                return False
            del self._data[key]
            return True

    def _trim(self, key: str, window_ms: int, now: float) -> deque[float] | None:
        log = self._events.get(key)
        if log is None:
            return None
        horizon = now - window_ms / 1000
        while log and log[0] <= horizon:
            log.popleft()
        return log

    async def add_event(self, key: str, window_ms: int, keep: int) -> tuple[int, int]:
        with self._lock:
            now = self._now()
            log = self._trim(key, window_ms, now)
            if log is None:
                log = self._events[key] = deque()
                self._writes += 1
                if self._writes % _SWEEP_EVERY == 0:
                    self._sweep(now)
            log.append(now)
            self._event_expiry[key] = now + window_ms / 1000
            while len(log) > max(keep, 1):
                log.popleft()
            return len(log), int((now - log[0]) * 1000)

    async def count_events(self, key: str, window_ms: int) -> tuple[int, int]:
        with self._lock:
            now = self._now()
            log = self._trim(key, window_ms, now)
            if not log:
                return 0, 0
            return len(log), int((now - log[0]) * 1000)

    async def ping(self) -> None:
        return None


# --- Redis ----------------------------------------------------------------------------------------------

_CLAIM = b"""
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_REPLACE_IF = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

_DELETE_IF = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Scores are milliseconds on the Redis server's clock; ARGV[3] is a unique member for this event.
_ADD_EVENT = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(keep + 1))
redis.call('PEXPIRE', KEYS[1], window)
local n = redis.call('ZCARD', KEYS[1])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {n, now - tonumber(first[2])}
"""

_COUNT_EVENTS = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local low = '(' .. (now - tonumber(ARGV[1]))
local first = redis.call('ZRANGEBYSCORE', KEYS[1], low, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 then return {0, 0} end
local n = redis.call('ZCOUNT', KEYS[1], low, '+inf')
return {n, now - tonumber(first[2])}
"""


class AtomicRedisStore(RedisStore, AtomicStore):
    """`RedisStore` sharing one client per process; atomic operations are Lua scripts (one round trip each)."""

    __slots__ = ("_add_event", "_claim", "_client", "_count_events", "_delete_if", "_replace_if")

    def __init__(self, redis: Redis, namespace: str | EmptyType | None = Empty) -> None:
        # The client belongs to `Stores`, which closes it once; each namespaced store only borrows it.
        super().__init__(redis, namespace=namespace, handle_client_shutdown=False)
        self._client = redis
        self._claim = redis.register_script(_CLAIM)
        self._replace_if = redis.register_script(_REPLACE_IF)
        self._delete_if = redis.register_script(_DELETE_IF)
        self._add_event = redis.register_script(_ADD_EVENT)
        self._count_events = redis.register_script(_COUNT_EVENTS)

    def with_namespace(self, namespace: str) -> AtomicRedisStore:
        return type(self)(self._client, namespace=f"{self.namespace}_{namespace}" if self.namespace else namespace)

    def key(self, key: str) -> str:
        """The Redis key (namespace prefix included) a store key lives under."""
        return self._make_key(key)

    async def claim(self, key: str, value: bytes, expires_in_ms: int) -> bytes | None:
        current = await self._claim(keys=[self._make_key(key)], args=[value, max(1, expires_in_ms)])
        return None if current is None else bytes(current)

    async def replace_if(self, key: str, expected: bytes, value: bytes, expires_in_ms: int) -> bool:
        done = await self._replace_if(keys=[self._make_key(key)], args=[expected, value, max(1, expires_in_ms)])
        return bool(done)

    async def delete_if(self, key: str, expected: bytes) -> bool:
        return bool(await self._delete_if(keys=[self._make_key(key)], args=[expected]))

    async def add_event(self, key: str, window_ms: int, keep: int) -> tuple[int, int]:
        member = secrets.token_hex(8)
        count, age = await self._add_event(keys=[self._make_key(key)], args=[window_ms, max(keep, 1), member])
        return int(count), int(age)

    async def count_events(self, key: str, window_ms: int) -> tuple[int, int]:
        count, age = await self._count_events(keys=[self._make_key(key)], args=[window_ms])
        return int(count), int(age)

    async def ping(self) -> None:
        await self._client.ping()


__all__ = ["AtomicMemoryStore", "AtomicRedisStore", "AtomicStore"]
