"""``GET /metrics`` (who may read it, what it counts), request ids, JSON log lines, readiness per dependency."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import msgspec
import pytest
from litestar import Litestar, get
from litestar.response import Stream
from litestar.testing import AsyncTestClient

from connectors.client import call_outcome
from connectors.errors import BadRequest, CircuitOpen, ConfigurationError, RateLimited, Timeout
from gateway.app import create_app
from gateway.clients import TrustedProxies, parse_networks
from gateway.observability.access import MetricsAccess
from gateway.observability.logs import REQUEST_ID, JsonFormatter
from gateway.observability.metrics import gauge
from gateway.observability.requests import AccessLog, ObservedRequests, RequestIds
from gateway.settings import Settings
from gateway.storage.metadata import utcnow

TRACK = "/api/v1/track/430302202601050000014"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    async with AsyncTestClient(application):  # runs the lifespans
        yield application


def client_from(app: Litestar, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=cast("Any", app), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return msgspec.structs.replace(settings, **changes)


async def test_metrics_count_requests_by_route_template_and_status(app: Litestar) -> None:
    async with client_from(app, "127.0.0.1") as client:
        for _ in range(3):
            assert (await client.get(TRACK, params={"code": "ABCDEFGH"})).status_code == 404
        assert (await client.get("/no/such/route")).status_code == 404
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    line = re.search(
        r'^onewindow_http_request_duration_seconds_count\{method="GET",route="/api/v1/track/\{tracking_number\}",'
        r'status="404"\} (\S+)$',
        text,
        re.M,
    )
    assert line is not None and float(line.group(1)) >= 3
    assert 'route="<unmatched>",status="404"' in text
    assert "430302202601050000014" not in text and "ABCDEFGH" not in text  # templates, never paths or queries
    assert "onewindow_http_request_duration_seconds_bucket" in text
    # the scrape-time collectors answered (no departments open in this app: no breaker series)
    assert "# TYPE onewindow_cases gauge" in text
    assert "# TYPE onewindow_sync_certificates gauge" in text
    assert "onewindow_scrape_collector_errors_total" not in text or 'collector="cases"' not in text


async def test_metrics_refused_outside_the_allowed_networks(app: Litestar) -> None:
    async with client_from(app, "192.0.2.10") as client:
        response = await client.get("/metrics")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_metrics_token_opens_it_from_anywhere(settings: Settings) -> None:
    application = create_app(with_settings(settings, metrics_token="s3cret-token-for-prometheus", metrics_networks=""))
    async with AsyncTestClient(application), client_from(application, "127.0.0.1") as client:
        assert (await client.get("/metrics")).status_code == 403  # no network is open now
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        right = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token-for-prometheus"})
        assert right.status_code == 200 and "onewindow_http_request_duration_seconds" in right.text


def test_behind_a_trusted_proxy_the_proxys_client_decides() -> None:
    access = MetricsAccess(networks="127.0.0.0/8", token="", proxies=TrustedProxies(parse_networks("127.0.0.1")))
    assert access.allows("127.0.0.1", [], None)  # the proxy host itself (a local agent)
    assert not access.allows("127.0.0.1", ["203.0.113.9"], None)  # a public client relayed by the proxy
    assert access.allows("127.0.0.1", ["127.0.0.5"], None)
    assert not access.allows("198.51.100.1", ["127.0.0.1"], None)  # an untrusted peer cannot claim loopback


async def test_request_id_is_generated_and_returned(app: Litestar) -> None:
    async with client_from(app, "198.51.100.7") as client:
        first = await client.get("/health/live", headers={"X-Request-ID": "chosen-by-the-caller"})
        second = await client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{16}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]  # an untrusted peer's id is ignored


async def test_request_id_from_a_trusted_proxy_is_kept(settings: Settings) -> None:
    application = create_app(with_settings(settings, trusted_proxies="10.0.0.0/8"))
    async with AsyncTestClient(application):
        async with client_from(application, "10.1.2.3") as client:
            kept = await client.get("/health/live", headers={"X-Request-ID": "nginx-4f2a.9_b"})
            bad = await client.get("/health/live", headers={b"X-Request-ID": b"zhang san 13800138000"})
        async with client_from(application, "192.0.2.1") as client:
            outsider = await client.get("/health/live", headers={"X-Request-ID": "nginx-4f2a.9_b"})
    assert kept.headers["x-request-id"] == "nginx-4f2a.9_b"
    assert re.fullmatch(r"[0-9a-f]{16}", bad.headers["x-request-id"])
    assert outsider.headers["x-request-id"] != "nginx-4f2a.9_b"


async def test_access_lines_name_the_route_and_request_id(app: Litestar, capsys: pytest.CaptureFixture[str]) -> None:
    observed = app.asgi_handler
    assert isinstance(observed, ObservedRequests)
    async with client_from(app, "127.0.0.1") as client:
        response = await client.get(TRACK, params={"code": "ABCDEFGH"})
        await client.get("/health/live")
    observed.access.flush()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"onewindow.access"' in line]
    assert len(lines) == 2, lines
    line = next(x for x in lines if x["request_id"] == response.headers["x-request-id"])
    assert line["route"] == "/api/v1/track/{tracking_number}" and line["status"] == 404
    assert line["method"] == "GET" and line["level"] == "INFO" and line["duration_ms"] >= 0
    assert "430302202601050000014" not in str(lines) and "ABCDEFGH" not in str(lines)


async def test_access_lines_are_written_in_whole_lines_soon(capsys: pytest.CaptureFixture[str]) -> None:
    log = AccessLog()
    for n in range(200):
        log.write("GET", "/api/v1/track/{tracking_number}", 200, 0.001, f"id{n}")
    assert capsys.readouterr().err == ""  # queued, not written per request
    await asyncio.sleep(log.FLUSH_SECONDS * 3)
    written = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["request_id"] for line in written] == [f"id{n}" for n in range(200)]


def test_request_ids_differ_within_and_across_processes() -> None:
    first, second = RequestIds(), RequestIds()
    ids = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]
    assert len(set(ids)) == 2000 and all(re.fullmatch(rb"[0-9a-f]{16}", i) for i in ids)


def test_json_formatter_one_line_with_extras_and_exception() -> None:
    token = REQUEST_ID.set("abc123")
    try:
        logger = logging.getLogger("onewindow.test")
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            record = logger.makeRecord(
                "onewindow.test", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info(), extra={"job": "j"}
            )
    finally:
        REQUEST_ID.reset(token)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed x" and parsed["level"] == "ERROR" and parsed["job"] == "j"
    assert parsed["request_id"] == "abc123"
    assert "ValueError: boom" in parsed["exception"]


def test_department_call_outcomes() -> None:
    assert call_outcome(CircuitOpen("open", retry_in=1.0, department="x")) == "circuit_open"
    assert call_outcome(RateLimited("slow down")) == "rate_limited"
    assert call_outcome(Timeout("late")) == "unavailable"
    assert call_outcome(ConfigurationError("no key")) == "misconfigured"
    assert call_outcome(BadRequest("400", status=400)) == "rejected"


async def test_a_failing_collector_is_left_out_and_counted(app: Litestar) -> None:
    from gateway.context import context_of

    async def broken() -> list[Any]:
        raise RuntimeError("database gone")

    async def extra() -> list[Any]:
        family = gauge("onewindow_test_outbox_lag_seconds", "test gauge", ["queue"])
        family.add_metric(["events"], 2.5)
        return [family]

    metrics = context_of(app).metrics
    metrics.add_collector("broken", broken, ttl=0)
    metrics.add_collector("outbox", extra, ttl=0)
    text = (await metrics.render()).decode()
    assert 'onewindow_test_outbox_lag_seconds{queue="events"} 2.5' in text
    assert 'onewindow_scrape_collector_errors_total{collector="broken"}' in text


async def test_readiness_reports_each_dependency(app: Litestar) -> None:
    async with client_from(app, "127.0.0.1") as client:
        checks = (await client.get("/health/ready")).json()["checks"]
    assert {"database", "stores", "departments"} <= checks.keys()
    assert checks["stores"]["ok"] and "memory" in checks["stores"]["detail"]


async def _events() -> AsyncIterator[bytes]:
    yield b"data: 1\n\n"


@get("/stream", sync_to_thread=False)
def _stream() -> Stream:
    return Stream(_events(), media_type="text/event-stream")


@get("/plain", sync_to_thread=False)
def _plain() -> str:
    return "x"


async def test_event_streams_are_not_buffered_by_a_proxy() -> None:
    app = Litestar([_stream, _plain])
    app.asgi_handler = ObservedRequests(app.asgi_handler, trusted_proxies=TrustedProxies())
    async with client_from(app, "127.0.0.1") as client:
        streamed = await client.get("/stream")
        other = await client.get("/plain")
    assert streamed.headers["x-accel-buffering"] == "no" and streamed.headers["x-request-id"]
    assert "x-accel-buffering" not in other.headers


def test_batched_observations_expose_as_direct_ones() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from gateway.observability.metrics import LATENCY_BUCKETS, BatchedHistogram

    direct_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("t_seconds", "t", ["route"], buckets=LATENCY_BUCKETS, registry=direct_registry)
    batched = BatchedHistogram(
        Histogram("t_seconds", "t", ["route"], buckets=LATENCY_BUCKETS, registry=batched_registry)
    )
    values = [0.0005, 0.001, 0.0011, 0.025, 0.026, 0.3, 7.0, 11.0, 0.0]
    for value in values:
        direct.labels("/a").observe(value)
        batched.observe(("/a",), value)

    def exposed(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    assert exposed(batched_registry) != exposed(direct_registry)  # not yet added
    batched.flush()
    assert exposed(batched_registry) == exposed(direct_registry)


async def test_outbox_lag_and_webhook_backlog_are_exposed(settings: Settings) -> None:
    """An event committed but not yet dispatched (no dispatcher runs here) shows as outbox lag."""
    from gateway.context import context_of
    from gateway.events import outbox, types
    from gateway.events.outbox import CaseRef

    application = create_app(with_settings(settings, jobs_in_process=False))
    async with AsyncTestClient(application):
        context = context_of(application)
        case = CaseRef(
            id="0" * 32,
            item_code="0205006100",
            department="civil_affairs",
            filing_unit="430302001",
            handling_unit="430302001",
        )
        async with context.database.transaction() as conn:
            await outbox.emit(conn, types.APPLICATION_ACCEPTED, case, at=utcnow() - dt.timedelta(seconds=90))
        async with client_from(application, "127.0.0.1") as client:
            text = (await client.get("/metrics")).text
    undispatched = re.search(r"^onewindow_outbox_undispatched (\S+)$", text, re.M)
    lag = re.search(r"^onewindow_outbox_lag_seconds (\S+)$", text, re.M)
    assert undispatched is not None and float(undispatched.group(1)) == 1
    assert lag is not None and float(lag.group(1)) >= 90
    assert re.search(r'^onewindow_webhook_deliveries\{state="dead"\} 0\.0$', text, re.M)
    assert re.search(r"^onewindow_webhook_endpoints_failing 0\.0$", text, re.M)
