"""The durable half of Idempotency-Key, on SQLite and PostgreSQL and with memory and Redis fast stores: a tiny app
whose POST handlers write an audit record (the "change") and — on the recording routes — the idempotency record in
the same transaction. A "restart" is a second app on the same database with a fast store that knows nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from sqlalchemy import func, select

from gateway import audit
from gateway.audit.tables import audit_records
from gateway.privacy import FieldCipher, KeyRing
from gateway.problems import EXCEPTION_HANDLERS, Unprocessable
from gateway.storage import Database, new_id
from gateway.stores import (
    IdempotencyMiddleware,
    IdempotencyRecords,
    IdempotentRequest,
    Stores,
    idempotency_middleware,
    provide_idempotency,
)
from gateway.stores.tables import idempotency_records
from tests.gateway.stores.http import asgi_client
from tests.gateway.stores.test_idempotency import bearer_user

KEY = "Idempotency-Key"
CLERK = {"Authorization": "Bearer clerk-1"}
PERSONAL = {"name": "张三", "id_number": "11010519491231002X"}

Idempotency = NamedDependency[IdempotentRequest | None]


@dataclass
class Things:
    """One app instance ("process"): its middleware and what its handlers saw."""

    app: Litestar
    middleware: IdempotencyMiddleware
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0


def durable_app(
    stores: Stores,
    database: Database,
    cipher: FieldCipher,
    *,
    ttl_seconds: int = 60,
    gate: asyncio.Event | None = None,
    records: IdempotencyRecords | None = None,
) -> Things:
    records = records or IdempotencyRecords(database)
    middleware = idempotency_middleware(
        stores.idempotency, ttl_seconds=ttl_seconds, upload_max_bytes=64 * 1024, cipher=cipher, records=lambda: records
    )
    things: Things

    async def file(data: dict[str, Any], idempotency: IdempotentRequest | None) -> dict[str, Any]:
        things.calls += 1
        things.entered.set()
        if gate is not None:
            await gate.wait()
        n = new_id()  # a new number per filing
        async with database.transaction() as conn:
            await audit.append(conn, actor="test", action="thing.created", object_type="thing", object_id=str(n))
            answer = {"n": n, "got": data}
            if idempotency is not None:
                await idempotency.record(conn, answer, headers={"Location": f"/things/{n}"})
        return answer

    @post("/things", status_code=201)
    async def create(data: JSONBody[dict[str, Any]], idempotency: Idempotency) -> Response[dict[str, Any]]:
        answer = await file(data, idempotency)
        return Response(answer, status_code=201, headers={"Location": f"/things/{answer['n']}"})

    @post("/died", status_code=201)
    async def died(data: JSONBody[dict[str, Any]], idempotency: Idempotency) -> dict[str, Any]:
        await file(data, idempotency)
        raise RuntimeError("the process is killed right after the commit")

    @post("/plain", status_code=201)
    async def plain(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return await file(data, None)  # a route whose service does not record: saved after the handler

    @post("/invalid", sync_to_thread=False)
    def invalid(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        things.calls += 1
        raise Unprocessable("bad item code")

    app = Litestar(
        route_handlers=[create, died, plain, invalid],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[bearer_user, middleware],
        dependencies={"idempotency": Provide(provide_idempotency, sync_to_thread=False)},
        debug=False,
    )
    things = Things(app=app, middleware=middleware)
    return things


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.generate())


async def restarted(make_stores: Callable[[], Stores]) -> Stores:
    """The fast store after a crash: a new process's empty memory, or a Redis that lost its keys."""
    stores = make_stores()
    await stores.idempotency.delete_all()
    return stores


def keyed(**headers: str) -> dict[str, str]:
    return {KEY: str(uuid.uuid4()), **CLERK, **headers}


async def changes(database: Database) -> int:
    async with database.read() as conn:
        query = select(func.count()).select_from(audit_records).where(audit_records.c.action == "thing.created")
        return int((await conn.execute(query)).scalar_one())


async def stored(database: Database) -> list[bytes]:
    async with database.read() as conn:
        return [bytes(r) for r in (await conn.execute(select(idempotency_records.c.response))).scalars()]


async def call(things: Things, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    async with asgi_client(things.app) as client:
        return await client.post(path, json=body, headers=headers)


async def test_the_record_commits_with_the_change_and_a_restart_replays_it(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    headers = keyed()
    first = await call(durable_app(make_stores(), database, cipher), "/things", PERSONAL, headers)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    kept = await stored(database)
    assert len(kept) == 1
    assert not any("张三".encode() in v or b"11010519491231002X" in v for v in kept)  # sealed

    after = durable_app(await restarted(make_stores), database, cipher)
    again = await call(after, "/things", PERSONAL, headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == first.headers["content-type"]
    other = await call(after, "/things", {"name": "李四"}, headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == KEY
    assert after.calls == 0 and await changes(database) == 1
    # The same key of another caller is another request.
    assert (await call(after, "/things", PERSONAL, {**headers, "Authorization": "Bearer clerk-2"})).status_code == 201
    assert await changes(database) == 2


async def test_a_request_that_died_after_its_commit_is_replayed(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    # The first process commits, then dies: it never marks the key done nor releases its lease (with Redis the
    # lease outlives it). The retry, on another process, gets the committed answer — not a second change, and not
    # 409 until the lease runs out.
    dead = durable_app(make_stores(), database, cipher)

    async def nothing(*_: Any, **__: Any) -> None:
        return None

    dead.middleware._release = nothing  # type: ignore[method-assign]
    dead.middleware._keep = nothing  # type: ignore[method-assign]
    headers = keyed()
    assert (await call(dead, "/died", {"a": 1}, headers)).status_code == 500
    assert await changes(database) == 1

    after = durable_app(make_stores(), database, cipher)
    again = await call(after, "/died", {"a": 1}, headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == {"n": again.json()["n"], "got": {"a": 1}}
    assert again.headers["location"] == f"/things/{again.json()['n']}"
    assert after.calls == 0 and await changes(database) == 1


@pytest.mark.parametrize("redis_url", ["memory"], indirect=True)
async def test_a_server_error_after_the_commit_replays_the_change(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    things = durable_app(make_stores(), database, cipher)
    headers = keyed()
    assert (await call(things, "/died", {"a": 1}, headers)).status_code == 500
    again = await call(things, "/died", {"a": 1}, headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert things.calls == 1 and await changes(database) == 1


@pytest.mark.parametrize("redis_url", ["memory"], indirect=True)
async def test_the_database_admits_one_record_per_key(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    # Two processes that share no fast store (memory each): both get past their own, both run; the later one's
    # insert finds the key taken, its change rolls back, and it answers with the first one's record.
    gate = asyncio.Event()
    late = durable_app(make_stores(), database, cipher, gate=gate)
    early = durable_app(make_stores(), database, cipher)
    headers = keyed()
    pending = asyncio.create_task(call(late, "/things", {"a": 1}, headers))
    await asyncio.wait_for(late.entered.wait(), 5)
    first = await call(early, "/things", {"a": 1}, headers)
    assert first.status_code == 201
    gate.set()
    second = await asyncio.wait_for(pending, 10)
    assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert (late.calls, early.calls) == (1, 1) and await changes(database) == 1
    assert len(await stored(database)) == 1


async def test_in_flight_is_still_409(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    gate = asyncio.Event()
    things = durable_app(make_stores(), database, cipher, gate=gate)
    headers = keyed()
    async with asgi_client(things.app) as client:
        first = asyncio.create_task(client.post("/things", json={"a": 1}, headers=headers))
        await asyncio.wait_for(things.entered.wait(), 5)
        during = await client.post("/things", json={"a": 1}, headers=headers)
        assert during.status_code == 409 and during.headers["retry-after"] == "1"
        gate.set()
        assert (await asyncio.wait_for(first, 10)).status_code == 201
    assert things.calls == 1 and await changes(database) == 1


@pytest.mark.parametrize("redis_url", ["memory"], indirect=True)
async def test_routes_that_do_not_record_are_saved_after_the_handler(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    headers = keyed()
    first = await call(durable_app(make_stores(), database, cipher), "/plain", {"a": 1}, headers)
    assert first.status_code == 201 and len(await stored(database)) == 1
    after = durable_app(await restarted(make_stores), database, cipher)
    again = await call(after, "/plain", {"a": 1}, headers)
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert after.calls == 0 and await changes(database) == 1


@pytest.mark.parametrize("redis_url", ["memory"], indirect=True)
async def test_4xx_answers_change_nothing_and_stay_in_the_fast_store(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    things = durable_app(make_stores(), database, cipher)
    headers = keyed()
    first = await call(things, "/invalid", {"a": 1}, headers)
    again = await call(things, "/invalid", {"a": 1}, headers)
    assert first.status_code == again.status_code == 422 and again.headers["idempotent-replayed"] == "true"
    assert things.calls == 1 and await stored(database) == []


@pytest.mark.parametrize("redis_url", ["memory"], indirect=True)
async def test_expired_records_are_not_replayed(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    headers = keyed()
    first = await call(durable_app(make_stores(), database, cipher, ttl_seconds=1), "/things", {"a": 1}, headers)
    await asyncio.sleep(1.2)
    again = await call(durable_app(make_stores(), database, cipher, ttl_seconds=1), "/things", {"a": 1}, headers)
    assert "idempotent-replayed" not in again.headers and again.json()["n"] != first.json()["n"]
    assert await changes(database) == 2 and len(await stored(database)) == 1  # the expired row was replaced
    assert await IdempotencyRecords(database).purge() == 0


@pytest.mark.parametrize("redis_url", ["memory"], indirect=True)
async def test_an_unreachable_database_answers_503_for_keyed_posts(
    make_stores: Callable[[], Stores], database: Database, cipher: FieldCipher
) -> None:
    gone = Database.from_url("postgresql://postgres@127.0.0.1:1/none")
    try:
        things = durable_app(make_stores(), database, cipher, records=IdempotencyRecords(gone))
        response = await call(things, "/things", {"a": 1}, keyed())
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert things.calls == 0
        assert (await call(things, "/things", {"a": 1}, CLERK)).status_code == 201
    finally:
        await gone.dispose()
