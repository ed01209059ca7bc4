"""The public lookup's front door (`gateway.tracking.lookup`): a correct lookup is answered before Litestar's routing
with exactly the bytes the route would send, and everything else reaches the route as before, read only once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from litestar import Controller, Litestar, get
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.context import context_of
from gateway.observability.requests import ObservedRequests
from gateway.storage import Database
from gateway.storage.database import DatabaseBusy
from gateway.tracking.lookup import PublicLookup, install_public_lookup, public_lookup_of
from gateway.tracking.services import TIMELINE, TrackingService
from tests.gateway.intake.fixtures import Gateway
from tests.gateway.tracking.test_tracking_api import completed_case, evaluate, track


def front_door(gateway: Gateway) -> PublicLookup:
    found = public_lookup_of(gateway.app)
    assert found is not None, "create_app installs the front door"
    return found


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")
    return response.status_code, headers, response.content


async def _both_ways(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, number: str, code: str) -> None:
    """The same lookup answered by the front door and, with the front door taken out, by the route."""
    door = front_door(gateway)
    answered = door.answered
    fast = await track(gateway, number, code)
    assert door.answered == answered + 1, "the front door answered it"
    assert fast.headers["x-request-id"]
    with monkeypatch.context() as patch:
        patch.setattr(door, "_answer", _never)
        slow = await track(gateway, number, code)
    assert door.answered == answered + 1, "the route answered it"
    assert fast.status_code == 200
    assert _comparable(fast) == _comparable(slow)


async def _never(*_args: Any) -> bool:
    return False


async def test_front_door_answers_exactly_what_the_route_answers(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    await _both_ways(gateway, monkeypatch, number, code)
    await _both_ways(gateway, monkeypatch, number, code.lower())
    _, number, code = await completed_case(gateway)  # clock stopped, may be evaluated
    await _both_ways(gateway, monkeypatch, number, code)
    assert (await evaluate(gateway, number, code, {"level": 5, "comment": ""})).status_code == 201
    await _both_ways(gateway, monkeypatch, number, code)


async def test_concurrent_lookups_answer_each_as_it_is_answered_alone(gateway: Gateway) -> None:
    """Many lookups at once — of several cases, the same case many times, unknown numbers, wrong codes — each get
    the bytes the same lookup gets alone; on PostgreSQL they shared a few queries (`Database.fetch_keyed`)."""
    cases = [(a["tracking_number"], a["query_code"]) for _, a in [await gateway.accepted_case() for _ in range(3)]]
    _, number, code = await completed_case(gateway)
    cases.append((number, code))
    alone = {lookup: _comparable(await track(gateway, *lookup)) for lookup in cases}
    door = front_door(gateway)
    assert door.answered == len(cases)
    reader = gateway.db.pg_reader
    queries = reader.served if reader is not None else 0
    together = await asyncio.gather(*(track(gateway, *lookup) for lookup in cases * 8))
    assert [_comparable(r) for r in together] == [alone[lookup] for lookup in cases * 8]
    assert door.answered == len(cases) * 9, "the front door answered them all"
    if reader is not None:
        assert reader.served - queries < len(together) // 2, "the lookups that queued up went out together"
    # With unknown numbers and wrong codes among them (the route answers those, and once a failure is seen, the
    # client's correct lookups too).
    unknown = number[:-2] + ("1" if number[-2] == "0" else "0") + number[-1]  # well-shaped, no such case
    failing = [(unknown, code), (cases[0][0], "ZZZZZZZZ"), (unknown, "ZZZZZZZZ"), (number, "YYYYYYYY")]
    limiter = context_of(gateway.app).tracking_limiter
    for lookup in failing:
        alone[lookup] = _comparable(await track(gateway, *lookup))
        assert alone[lookup][0] == 404
    await limiter.reset("127.0.0.1")
    mixed = [*failing[:2], *cases * 4, *failing[2:], *cases * 4]
    together = await asyncio.gather(*(track(gateway, *lookup) for lookup in mixed))
    await limiter.reset("127.0.0.1")
    assert [_comparable(r) for r in together] == [alone[lookup] for lookup in mixed]


async def test_the_metric_and_access_line_name_the_route(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    observed = gateway.app.asgi_handler
    assert isinstance(observed, ObservedRequests) and observed.app is front_door(gateway), "the wrapper is outside"
    answered = front_door(gateway).answered
    observed.access.flush()  # the lines of the requests that made the case
    capsys.readouterr()
    response = await track(gateway, number, code)
    assert response.status_code == 200 and front_door(gateway).answered == answered + 1
    observed.access.flush()
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if '"onewindow.access"' in x]
    assert [(x["request_id"], x["method"], x["route"], x["status"]) for x in lines] == [
        (response.headers["x-request-id"], "GET", "/api/v1/track/{tracking_number}", 200)
    ]
    assert number not in str(lines) and code not in str(lines)
    metrics = await gateway.client.get("/metrics")
    assert 'route="/api/v1/track/{tracking_number}",status="200"' in metrics.text


async def test_everything_else_reaches_the_route_read_once(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    door = front_door(gateway)
    reads: list[str] = []
    original = Database.fetch_keyed

    async def counted(self: Database, read: Any, key: Any, /) -> Any:
        if read is TIMELINE:
            reads.append(key)
        return await original(self, read, key)

    monkeypatch.setattr(Database, "fetch_keyed", counted)
    answered, handed_on = door.answered, door.handed_on
    # A wrong code: read once by the front door, answered (and counted) by the route.
    wrong = await track(gateway, number, "ZZZZZZZZ")
    assert wrong.status_code == 404 and wrong.headers["content-type"].startswith("application/problem+json")
    assert reads == [number] and door.handed_on == handed_on + 1
    # Not the front door's shape (a space in the code, an extra parameter, a lower-case number): the route reads.
    reads.clear()
    for params in ({"code": f"{code[:4]} {code[4:]}"}, {"code": code, "x": "1"}):
        assert (await gateway.client.get(f"/api/v1/track/{number}", params=params)).status_code == 200
    assert reads == [number, number] and door.answered == answered
    # The client has failed once in this process: its correct lookups go to the route, which asks the limiter.
    reads.clear()
    assert (await track(gateway, number, code)).status_code == 200
    assert reads == [number] and door.answered == answered and door.handed_on == handed_on + 2
    await context_of(gateway.app).tracking_limiter.reset("127.0.0.1")


async def test_a_failed_read_is_answered_by_the_route(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    _, acceptance = await gateway.accepted_case()
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    calls = 0

    async def busy(self: Database, read: Any, key: Any, /) -> Any:
        nonlocal calls
        calls += 1
        raise DatabaseBusy("The database is busy; try again shortly.")

    monkeypatch.setattr(Database, "fetch_keyed", busy)
    response = await track(gateway, number, code)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert calls == 1  # the route raised what the front door's read raised, without reading again


async def test_a_failing_view_is_answered_by_the_route(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error after the read is the route's to answer: Litestar's problem 500, not a bare one."""
    _, acceptance = await gateway.accepted_case()

    def broken(*_args: Any) -> Any:
        raise RuntimeError("view")

    monkeypatch.setattr(TrackingService, "_view", broken)
    response = await track(gateway, acceptance["tracking_number"], acceptance["query_code"])
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "view" not in response.text and response.headers["x-request-id"]


class _Passing:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _Track(Controller):
    path = "/api/v1/track"

    @get("/{tracking_number:str}", operation_id="trackApplication", sync_to_thread=False)
    def track(self, tracking_number: FromPath[str]) -> dict[str, str]:
        return {}


def _guard(*_args: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"middleware": [DefineMiddleware(_Passing)]}, "middleware"),
        ({"guards": [_guard]}, "guards"),
        ({"after_request": lambda response: response}, "hooks"),
        ({"response_headers": {"X-Extra": "1"}}, "response headers"),
    ],
)
def test_the_front_door_is_refused_where_it_would_skip_something(options: dict[str, Any], named: str) -> None:
    app = Litestar(route_handlers=[_Track], **options)
    with pytest.raises(RuntimeError, match=named):
        install_public_lookup(app, context=None, passing=[])  # type: ignore[arg-type]


def test_the_front_door_goes_in_front_of_a_plain_route() -> None:
    app = Litestar(route_handlers=[_Track])
    install_public_lookup(app, context=None, passing=[])  # type: ignore[arg-type]
    door = public_lookup_of(app)
    assert door is not None and door.path_template == "/api/v1/track/{tracking_number}"
