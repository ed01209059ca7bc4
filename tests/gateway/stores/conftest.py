"""Stores for these tests: memory, or Redis (tests/services.py) under a namespace of their own, emptied afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.stores import PURPOSES, AtomicMemoryStore, Stores, build_stores, redis_client


class StoreClock:
    """Time for the stores under test. The memory store reads a clock the test moves, so nothing waits; Redis
    keeps time on its server, so there the test really waits (only ever for something to expire or leave a
    window, which waiting longer cannot spoil)."""

    def __init__(self, *, real: bool) -> None:
        self.real = real
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        if self.real:
            await asyncio.sleep(seconds)
        else:
            self.now += seconds


@pytest.fixture
def clock(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> StoreClock:
    """The clock of the parametrised backend (memory: moved by hand; Redis: real)."""
    clock = StoreClock(real=bool(redis_url))
    if not redis_url:
        monkeypatch.setattr(AtomicMemoryStore, "_now", staticmethod(clock))
    return clock


@pytest.fixture
def namespace() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_stores(redis_url: str, namespace: str) -> AsyncIterator[Callable[[], Stores]]:
    """Builds `Stores` on the parametrised backend; every one built shares ``namespace`` (a second one stands for
    a second gateway process with its own Redis connection)."""
    built: list[Stores] = []

    def make() -> Stores:
        stores = build_stores(redis_client(redis_url) if redis_url else None, namespace=namespace)
        built.append(stores)
        return stores

    yield make
    if built and built[0].redis is not None:
        cleaner = build_stores(redis_client(redis_url) if redis_url else None, namespace=namespace)
        for purpose in PURPOSES:
            await getattr(cleaner, purpose).delete_all()
        await cleaner.close()
    for stores in built:
        await stores.close()


@pytest.fixture
def stores(make_stores: Callable[[], Stores]) -> Stores:
    return make_stores()
