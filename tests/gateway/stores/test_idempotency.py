"""Idempotency-Key over a tiny Litestar app whose POST handlers count their calls, on memory and on Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Response, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, JSONBody
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.context import context_of
from gateway.identity.principal import Principal, Role
from gateway.privacy import FieldCipher, KeyRing
from gateway.problems import EXCEPTION_HANDLERS, Conflict, Unprocessable
from gateway.stores import IdempotencyMiddleware, Stores, build_stores, idempotency_middleware, redis_client
from tests.gateway.stores.conftest import StoreClock
from tests.gateway.stores.http import asgi_client

KEY = "Idempotency-Key"


@dataclass
class Counting:
    """What the handlers saw."""

    calls: dict[str, int] = field(default_factory=dict)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]


def bearer_user(app: ASGIApp) -> ASGIApp:
    """Stands for the gateway's bearer authentication: ``Authorization: Bearer <t>`` is the principal with token id
    ``t`` (``request.user``), the scheme in any case, as `BearerAuthMiddleware` reads it."""

    async def authenticate(scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode().strip().partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    scope["user"] = Principal(token_id=token.strip(), role=Role.CLERK)
        await app(scope, receive, send)

    return authenticate


def make_app(
    stores: Stores, *, cipher: FieldCipher | None = None, ttl_seconds: int = 60, upload_max_bytes: int = 64 * 1024
) -> tuple[Litestar, Counting]:
    seen = Counting()

    @post("/things", status_code=201, sync_to_thread=False)
    def create_thing(data: JSONBody[dict[str, Any]]) -> Response[dict[str, Any]]:
        n = seen.count("things")
        return Response({"n": n, "got": data}, status_code=201, headers={"Location": f"/things/{n}"})

    @post("/other", status_code=201, sync_to_thread=False)
    def create_other(data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        return {"n": seen.count("other")}

    @post("/slow", status_code=201)
    async def slow(data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        n = seen.count("slow")
        seen.entered.set()
        await seen.release.wait()
        return {"n": n}

    @post("/flaky", status_code=201, sync_to_thread=False)
    def flaky(data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        n = seen.count("flaky")
        if n == 1:
            raise RuntimeError("database went away")
        return {"n": n}

    @post("/busy", sync_to_thread=False)
    def busy(data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        seen.count("busy")
        raise Conflict("not now")

    @post("/invalid", sync_to_thread=False)
    def invalid(data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        seen.count("invalid")
        raise Unprocessable("bad item code")

    @post("/upload", status_code=200)
    async def upload(data: Annotated[UploadFile, Body(media_type=RequestEncodingType.MULTI_PART)]) -> dict[str, Any]:
        content = await data.read()
        return {"n": seen.count("upload"), "size": len(content)}

    app = Litestar(
        route_handlers=[create_thing, create_other, slow, flaky, busy, invalid, upload],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            bearer_user,
            idempotency_middleware(
                stores.idempotency, ttl_seconds=ttl_seconds, upload_max_bytes=upload_max_bytes, cipher=cipher
            ),
        ],
        debug=False,
    )
    return app, seen


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.generate())


@pytest.fixture
async def client_and_seen(stores: Stores, cipher: FieldCipher) -> AsyncIterator[tuple[httpx.AsyncClient, Counting]]:
    app, seen = make_app(stores, cipher=cipher)
    async with asgi_client(app) as client:
        yield client, seen


Client = tuple[httpx.AsyncClient, Counting]


def _key() -> dict[str, str]:
    return {KEY: str(uuid.uuid4())}


async def test_same_key_and_body_replays_the_first_response(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    headers = _key()
    first = await client.post("/things", json={"item_code": "A1"}, headers=headers)
    second = await client.post("/things", json={"item_code": "A1"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content and first.json()["n"] == 1
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["location"] == "/things/1"
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert seen.calls == {"things": 1}


async def test_same_key_other_body_is_422(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    headers = _key()
    assert (await client.post("/things", json={"item_code": "A1"}, headers=headers)).status_code == 201
    response = await client.post("/things", json={"item_code": "B2"}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422 and body["errors"][0]["field"] == KEY
    # Another query string is another request too.
    assert (await client.post("/things?x=1", json={"item_code": "A1"}, headers=headers)).status_code == 422
    assert seen.calls == {"things": 1}


async def test_same_key_in_flight_is_409(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    headers = _key()
    first = asyncio.create_task(client.post("/slow", json={"a": 1}, headers=headers))
    await asyncio.wait_for(seen.entered.wait(), 30)
    during = await client.post("/slow", json={"a": 1}, headers=headers)
    assert during.status_code == 409
    assert during.headers["retry-after"] == "1"
    assert during.json()["title"] == "Conflict"
    seen.release.set()
    done = await asyncio.wait_for(first, 30)
    assert done.status_code == 201
    after = await client.post("/slow", json={"a": 1}, headers=headers)
    assert after.status_code == 201 and after.headers["idempotent-replayed"] == "true"
    assert seen.calls == {"slow": 1}


async def test_without_a_key_every_post_runs(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    for _ in range(3):
        assert (await client.post("/things", json={"a": 1})).status_code == 201
    assert seen.calls == {"things": 3}


@pytest.mark.parametrize("bad", ["", "x" * 256, "has space", "   "])
async def test_malformed_keys_are_400_and_nothing_runs(client_and_seen: Client, bad: str) -> None:
    client, seen = client_and_seen
    response = await client.post("/things", json={"a": 1}, headers={KEY: bad})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == KEY
    assert seen.calls == {}


async def test_longest_allowed_key_works(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    headers = {KEY: "k" * 255}
    await client.post("/things", json={"a": 1}, headers=headers)
    assert (await client.post("/things", json={"a": 1}, headers=headers)).headers["idempotent-replayed"] == "true"
    assert seen.calls == {"things": 1}


async def test_keys_are_scoped_by_caller_and_path(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    key = str(uuid.uuid4())
    alice = {KEY: key, "Authorization": "Bearer alice"}
    bob = {KEY: key, "Authorization": "Bearer bob"}
    assert (await client.post("/things", json={"a": 1}, headers=alice)).json()["n"] == 1
    assert (await client.post("/things", json={"a": 1}, headers=bob)).json()["n"] == 2
    assert (await client.post("/things", json={"a": 1}, headers=alice)).json()["n"] == 1
    assert (await client.post("/other", json={"a": 1}, headers=alice)).status_code == 201
    assert seen.calls == {"things": 2, "other": 1}


async def test_keys_belong_to_the_principal_not_to_the_header_text(client_and_seen: Client) -> None:
    # The same token written two ways is one caller: the second request is the first one's replay.
    client, seen = client_and_seen
    key = str(uuid.uuid4())
    first = await client.post("/things", json={"a": 1}, headers={KEY: key, "Authorization": "Bearer T"})
    again = await client.post("/things", json={"a": 1}, headers={KEY: key, "Authorization": "bearer  T"})
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert seen.calls == {"things": 1}


async def test_server_error_releases_the_key(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    headers = _key()
    failed = await client.post("/flaky", json={"a": 1}, headers=headers)
    assert failed.status_code == 500
    assert "database went away" not in failed.text
    retried = await client.post("/flaky", json={"a": 1}, headers=headers)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    again = await client.post("/flaky", json={"a": 1}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert seen.calls == {"flaky": 2}


async def test_409_is_not_kept_but_422_is(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    busy, invalid = _key(), _key()
    for _ in range(2):
        assert (await client.post("/busy", json={"a": 1}, headers=busy)).status_code == 409
    first = await client.post("/invalid", json={"a": 1}, headers=invalid)
    second = await client.post("/invalid", json={"a": 1}, headers=invalid)
    assert first.status_code == second.status_code == 422
    assert second.headers["idempotent-replayed"] == "true" and second.content == first.content
    assert seen.calls == {"busy": 2, "invalid": 1}


async def test_multipart_retry_with_a_new_boundary_replays(client_and_seen: Client) -> None:
    client, seen = client_and_seen
    headers = _key()
    scan = b"%PDF-1.7\n" + b"0" * 2048
    files = {"file": ("scan.pdf", scan, "application/pdf")}
    first = await client.post("/upload", files=files, headers=headers)
    # httpx draws a fresh random boundary per request: the body bytes differ, the request does not.
    second = await client.post("/upload", files=files, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    other = await client.post("/upload", files={"file": ("scan.pdf", scan + b"1", "application/pdf")}, headers=headers)
    assert other.status_code == 422
    assert seen.calls == {"upload": 1}


async def test_oversized_body_is_413_and_nothing_runs(stores: Stores) -> None:
    app, seen = make_app(stores, upload_max_bytes=1024)
    async with asgi_client(app) as client:
        big = {"blob": "x" * (100 * 1024)}
        response = await client.post("/things", json=big, headers=_key())
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
    assert seen.calls == {}


async def test_kept_responses_are_sealed(stores: Stores, cipher: FieldCipher, namespace: str) -> None:
    app, _ = make_app(stores, cipher=cipher)
    async with asgi_client(app) as client:
        await client.post("/things", json={"name": "张三", "id_number": "11010519491231002X"}, headers=_key())
    values = await _stored_values(stores, namespace)
    assert len(values) == 1
    assert not any("张三".encode() in v or b"11010519491231002X" in v for v in values)


async def _stored_values(stores: Stores, namespace: str) -> list[bytes]:
    if stores.redis is None:
        return [value for value, _ in stores.idempotency._data.values()]  # type: ignore[attr-defined]
    keys = [k async for k in stores.redis.scan_iter(match=f"{namespace}_idempotency:*")]
    values = [await stores.redis.get(k) for k in keys]
    return [v for v in values if isinstance(v, bytes)]


async def test_records_expire_after_the_ttl(stores: Stores, clock: StoreClock) -> None:
    app, seen = make_app(stores, ttl_seconds=1)
    async with asgi_client(app) as client:
        headers = _key()
        await client.post("/things", json={"a": 1}, headers=headers)
        await clock.advance(1.2)
        again = await client.post("/things", json={"a": 1}, headers=headers)
        assert "idempotent-replayed" not in again.headers
    assert seen.calls == {"things": 2}


async def test_unreachable_store_answers_503_only_for_keyed_posts() -> None:
    broken = build_stores(redis_client("redis://127.0.0.1:1/15"))
    try:
        app, seen = make_app(broken)
        async with asgi_client(app) as client:
            keyed = await client.post("/things", json={"a": 1}, headers=_key())
            assert keyed.status_code == 503 and keyed.headers["retry-after"] == "1"
            assert keyed.headers["content-type"].startswith("application/problem+json")
            assert (await client.post("/things", json={"a": 1})).status_code == 201
        assert seen.calls == {"things": 1}
    finally:
        await broken.close()


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)
async def test_two_gateway_processes_share_keys_through_redis(
    make_stores: Callable[[], Stores], cipher: FieldCipher
) -> None:
    # Two app instances with their own Redis connections stand for two processes behind a load balancer; both
    # hold the same keys (the environment provides them in production).
    app_a, seen_a = make_app(make_stores(), cipher=cipher)
    app_b, seen_b = make_app(make_stores(), cipher=cipher)
    async with asgi_client(app_a) as a, asgi_client(app_b) as b:
        headers = _key()
        first = await a.post("/things", json={"x": 1}, headers=headers)
        replay = await b.post("/things", json={"x": 1}, headers=headers)
        assert replay.status_code == 201 and replay.content == first.content
        assert replay.headers["idempotent-replayed"] == "true"
        assert (await b.post("/things", json={"x": 2}, headers=headers)).status_code == 422

        # In flight on A is in flight for B too.
        slow = _key()
        task = asyncio.create_task(a.post("/slow", json={}, headers=slow))
        await asyncio.wait_for(seen_a.entered.wait(), 30)
        assert (await b.post("/slow", json={}, headers=slow)).status_code == 409
        seen_a.release.set()
        assert (await asyncio.wait_for(task, 30)).status_code == 201

        # A burst of double clicks spread over both processes files once.
        burst = _key()
        answers = await asyncio.gather(
            *((a if i % 2 else b).post("/things", json={"burst": 1}, headers=burst) for i in range(10))
        )
        assert sorted({r.status_code for r in answers}) in ([201], [201, 409])
    assert seen_a.calls.get("things", 0) + seen_b.calls.get("things", 0) == 2
    assert seen_b.calls.get("slow", 0) == 0


def test_create_app_installs_idempotency_stores_and_limiter(
    settings: Any, redis_url: str, tmp_path: Any, namespace: str
) -> None:
    from litestar.testing import TestClient

    from gateway.app import create_app
    from gateway.stores import FailureLimiter

    app = create_app(msgspec.structs.replace(settings, redis_url=redis_url))
    assert getattr(logging.getLogRecordFactory(), "_onewindow_masking", False)  # log masking is on
    assert any(isinstance(m, IdempotencyMiddleware) for m in app.middleware)
    assert isinstance(context_of(app).tracking_limiter, FailureLimiter)
    assert isinstance(context_of(app).cipher, FieldCipher)
    assert app.stores.get("idempotency") is context_of(app).stores.idempotency
    assert context_of(app).idempotency_records is None  # until the lifespan opens the database
    with TestClient(app) as client:
        assert context_of(app).idempotency_records is not None
        ready = client.get("/health/ready").json()
        # A real POST route (the public evaluation): a retry replays the first answer, another request is 422.
        headers = {KEY: str(uuid.uuid4())}
        url = "/api/v1/track/4303022026010100001X/evaluation?code=ABCD2345"
        first = client.post(url, json={"level": 5}, headers=headers)
        again = client.post(url, json={"level": 5}, headers=headers)
        assert first.status_code == again.status_code == 404
        assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
        assert client.post(url, json={"level": 4}, headers=headers).status_code == 422
        # Every POST operation documents the header; no GET does.
        spec = client.get("/schema/openapi.json").json()
    posts = [ops["post"] for ops in spec["paths"].values() if "post" in ops]
    assert posts and all(any(p["name"] == KEY and p["in"] == "header" for p in op["parameters"]) for op in posts)
    gets = [ops["get"] for ops in spec["paths"].values() if "get" in ops]
    assert not any(p["name"] == KEY for op in gets for p in op.get("parameters", []))
    if redis_url:
        assert ready["checks"]["redis"] == {"ok": True, "critical": False, "detail": "redis"}
    else:
        assert "redis" not in ready["checks"]
