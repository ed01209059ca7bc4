"""Stores (memory or Redis), idempotency for POSTs (with its durable records) and the failure rate limiter.

from gateway.stores import FailureLimiter, IdempotencyMiddleware, IdempotentRequest, Stores, build_stores
"""

from gateway.stores.backends import AtomicMemoryStore, AtomicRedisStore, AtomicStore
from gateway.stores.idempotency import (
    IdempotencyMiddleware,
    IdempotentRequest,
    idempotency_middleware,
    provide_idempotency,
)
from gateway.stores.ratelimit import FailureLimiter
from gateway.stores.records import IdempotencyRecords, KeyTaken
from gateway.stores.registry import PURPOSES, Stores, build_stores, redis_client

__all__ = [
    "PURPOSES",
    "AtomicMemoryStore",
    "AtomicRedisStore",
    "AtomicStore",
    "FailureLimiter",
    "IdempotencyMiddleware",
    "IdempotencyRecords",
    "IdempotentRequest",
    "KeyTaken",
    "Stores",
    "build_stores",
    "idempotency_middleware",
    "provide_idempotency",
    "redis_client",
]
