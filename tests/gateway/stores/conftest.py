"""Stores for these tests: memory, or Redis (tests/services.py) under a namespace of their own, emptied afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.stores import Stores, build_stores


@pytest.fixture
def namespace() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_stores(redis_url: str, namespace: str) -> AsyncIterator[Callable[[], Stores]]:
    """Builds `Stores` on the parametrised backend; every one built shares ``namespace`` (a second one stands for
    a second gateway process with its own Redis connection)."""
    built: list[Stores] = []

    def make() -> Stores:
        stores = build_stores(redis_url, namespace=namespace)
        built.append(stores)
        return stores

    yield make
    if built and built[0].redis is not None:
        cleaner = build_stores(redis_url, namespace=namespace)
        for purpose in ("idempotency", "rate_limit", "cache"):
            await getattr(cleaner, purpose).delete_all()
        await cleaner.close()
    for stores in built:
        await stores.close()


@pytest.fixture
def stores(make_stores: Callable[[], Stores]) -> Stores:
    return make_stores()
