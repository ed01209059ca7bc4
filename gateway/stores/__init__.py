"""Stores (memory or Redis), idempotency for POSTs and the failure rate limiter.

from gateway.stores import FailureLimiter, IdempotencyMiddleware, Stores, build_stores
"""

from gateway.stores.backends import AtomicMemoryStore, AtomicRedisStore, AtomicStore
from gateway.stores.idempotency import IdempotencyMiddleware, idempotency_middleware
from gateway.stores.ratelimit import FailureLimiter
from gateway.stores.registry import PURPOSES, Stores, build_stores, redis_client

__all__ = [
    "PURPOSES",
    "AtomicMemoryStore",
    "AtomicRedisStore",
    "AtomicStore",
    "FailureLimiter",
    "IdempotencyMiddleware",
    "Stores",
    "build_stores",
    "idempotency_middleware",
    "redis_client",
]
