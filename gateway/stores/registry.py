"""The gateway's stores, one per purpose: in memory by default, in Redis when ``Settings.redis_url`` is set.

    stores = build_stores(redis_client(settings.redis_url) if settings.redis_url else None)
    Litestar(..., stores=stores.registry, on_shutdown=[stores.close])
    stores.idempotency / stores.rate_limit      # AtomicStore each

Redis keys are ``<namespace>_<purpose>:<key>`` (default namespace ``onewindow``). One Redis client (`redis_client`:
bounded connect and call times) serves all stores of a process — and the connectors' circuit breakers, which borrow
it — and `Stores.close` closes it when the application stops. Any other store name Litestar asks for gets the same
backend under its own namespace.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from litestar.stores.base import Store
from litestar.stores.registry import StoreRegistry
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.health.checks import Check
from gateway.stores.backends import AtomicMemoryStore, AtomicRedisStore, AtomicStore

PURPOSES = ("idempotency", "rate_limit")
#: Seconds a Redis call may take before it fails (a slow Redis must not hang intake).
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class Stores:
    """The stores by purpose, the Litestar registry holding them and the Redis client if there is one."""

    backend: Literal["memory", "redis"]
    idempotency: AtomicStore
    rate_limit: AtomicStore
    redis: Redis | None = None
    namespace: str = "onewindow"
    registry: StoreRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = StoreRegistry(
            {"idempotency": self.idempotency, "rate_limit": self.rate_limit},
            default_factory=self._new_store,
        )

    def _new_store(self, name: str) -> Store:
        if self.redis is not None:
            return AtomicRedisStore(self.redis, namespace=f"{self.namespace}_{name}")
        return AtomicMemoryStore()

    async def check(self) -> Check:
        """Readiness of the shared backend (not critical: the database is the system of record)."""
        if self.redis is None:
            return Check(ok=True, detail="memory")
        try:
            await asyncio.wait_for(self.redis.ping(), REDIS_TIMEOUT_SECONDS)
        except Exception as exc:
            return Check(ok=False, critical=False, detail=f"unreachable: {type(exc).__name__}")
        return Check(ok=True, detail="redis")

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def redis_client(url: str) -> Redis:
    """A Redis client (bytes in, bytes out) with bounded connect and call times.

    A call that fails on a broken connection is tried once more at once, on a fresh one: after Redis restarts,
    every pooled connection is dead, and without the retry each would fail one request before the pool notices
    (the Redis drill, tests/drills/test_redis_drill.py). Timeouts are not retried: they keep their bound.
    """
    client: Redis = Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    return client


def build_stores(redis: Redis | None = None, *, namespace: str = "onewindow") -> Stores:
    """Memory stores without a Redis client, else Redis stores under ``<namespace>_<purpose>`` (closing the stores
    closes the client)."""
    if redis is None:
        return Stores(
            backend="memory", idempotency=AtomicMemoryStore(), rate_limit=AtomicMemoryStore(), namespace=namespace
        )
    return Stores(
        backend="redis",
        idempotency=AtomicRedisStore(redis, namespace=f"{namespace}_idempotency"),
        rate_limit=AtomicRedisStore(redis, namespace=f"{namespace}_rate_limit"),
        redis=redis,
        namespace=namespace,
    )


__all__ = ["PURPOSES", "Stores", "build_stores", "redis_client"]
