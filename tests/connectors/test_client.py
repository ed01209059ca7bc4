"""The runtime over real sockets: classification, retries, timeouts, the breaker, request ids, the custom escape
hatch, and a seventh department added by configuration alone."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from redis.asyncio import Redis

from connectors.breaker import Breaker, BreakerState, MemoryBreakerStore, RedisBreakerStore
from connectors.client import ConnectorPool, Page, parse_retry_after
from connectors.errors import (
    AuthenticationFailed,
    BadRequest,
    CircuitOpen,
    ConnectionFailed,
    ConnectorError,
    RateLimited,
    ServerError,
    Timeout,
)
from connectors.mapping import MappedRecord
from connectors.registry import load_department_dir
from connectors.spec import BreakerPolicy, DepartmentSpec, RetryPolicy, Timeouts
from connectors.sync import fetch_holder, probe, sync_department
from connectors.trust import TrustStore, demo_trust_file_text
from tests.connectors.helpers import (
    CONFIG_DIR,
    DepartmentServer,
    FakeClock,
    InMemorySink,
    make_certificate,
    public_security_spec,
)


async def test_503_and_429_are_retried(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    dept_server.faults = [503, "429", 500]
    dept_server.retry_after = "0.15"
    started = time.monotonic()
    report = await sync_department(pool, "public_security", InMemorySink())
    assert report.errors == [] and report.stored == 25
    assert len(dept_server.requests) == 4  # three failures then the page
    assert time.monotonic() - started >= 0.15  # Retry-After was waited


async def test_retries_give_up_with_the_classified_error(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    dept_server.faults = [503] * 10
    with pytest.raises(ServerError) as info:
        await pool.client("public_security").check_list()
    error = info.value
    assert error.status == 503 and error.department == "public_security"
    assert error.endpoint == "GET /api/v2/licenses"
    assert error.request_id == dept_server.request_ids[-1]  # the id the department saw
    assert len(dept_server.requests) == 4


@pytest.mark.parametrize(
    ("fault", "error"), [(401, AuthenticationFailed), (403, AuthenticationFailed), (404, BadRequest)]
)
async def test_client_errors_are_not_retried(
    pool: ConnectorPool, dept_server: DepartmentServer, fault: int, error: type[ConnectorError]
) -> None:
    dept_server.faults = [fault]
    with pytest.raises(error):
        await pool.client("public_security").check_list()
    assert len(dept_server.requests) == 1
    assert await pool.client("public_security").breaker_state() == "closed"


async def test_hang_times_out_within_the_budget(
    dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore
) -> None:
    spec = public_security_spec(
        dept_server.base_url,
        timeouts=Timeouts(connect=0.5, read=0.2, total=0.5),
        retry=RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.01, jitter=0, deadline=2.0),
    )
    dept_server.faults = ["hang", "hang", "hang"]
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        started = time.monotonic()
        report = await sync_department(pool, "public_security", InMemorySink())
        elapsed = time.monotonic() - started
    assert report.stored == 0 and len(report.errors) == 1 and "timeout" in report.errors[0]
    # Three attempts, each ended by its 0.2 s read timeout (not by the 2 s deadline, which ends the call at once).
    assert len(dept_server.requests) == 3 and "deadline" not in report.errors[0], report.errors
    assert elapsed >= 0.6


async def test_deadline_caps_retries(dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore) -> None:
    spec = public_security_spec(
        dept_server.base_url,
        timeouts=Timeouts(connect=0.5, read=5, total=5),
        retry=RetryPolicy(attempts=10, initial_backoff=0.01, max_backoff=0.01, jitter=0, deadline=0.5),
    )
    dept_server.faults = ["hang"] * 10
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        with pytest.raises(Timeout, match="deadline"):
            await pool.client("public_security").check_list()
    # The 0.5 s deadline ended the first attempt's 5 s wait: no second attempt.
    assert len(dept_server.requests) == 1


async def test_connection_refused(tmp_path: Path, trust: TrustStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = public_security_spec(f"http://127.0.0.1:{port}")
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        result = await probe(pool, "public_security")
    assert not result.ok and not result.health and result.error_kind == "connection_failed"


async def test_breaker_opens_fails_fast_and_recovers(
    dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore
) -> None:
    spec = public_security_spec(
        dept_server.base_url,
        breaker=BreakerPolicy(failure_threshold=3, cool_down=30),
        retry=RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.01, jitter=0, deadline=5),
    )
    clock = FakeClock()
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust, breaker_store=MemoryBreakerStore(clock)) as pool:
        client = pool.client("public_security")
        dept_server.faults = [503] * 3
        with pytest.raises(ServerError):
            await client.check_list()  # 2 attempts = 2 failures
        with pytest.raises(CircuitOpen):
            await client.check_list()  # 3rd failure opens it mid-call; the retry fails fast
        assert await client.breaker_state() == "open"
        served = len(dept_server.requests)
        with pytest.raises(CircuitOpen) as info:
            await client.check_list()
        assert len(dept_server.requests) == served  # the network was not touched
        assert info.value.department == "public_security" and info.value.retry_in > 0
        report = await sync_department(pool, "public_security", InMemorySink())
        assert "circuit_open" in report.errors[0]
        clock.now += 30
        await client.check_list()  # the probe succeeds
        assert await client.breaker_state() == "closed"


async def test_429_does_not_open_the_breaker(dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore) -> None:
    spec = public_security_spec(dept_server.base_url, breaker=BreakerPolicy(failure_threshold=2, cool_down=30))
    dept_server.faults = ["429"] * 10
    dept_server.retry_after = "0"
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        with pytest.raises(RateLimited) as info:
            await pool.client("public_security").check_list()
        assert info.value.retry_after == 0
        assert await pool.client("public_security").breaker_state() == "closed"


async def test_redirects_are_not_followed(tmp_path: Path, trust: TrustStore) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://example.invalid/steal")

    app = web.Application()
    app.router.add_get("/api/v2/licenses", redirect)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with ConnectorPool(
            [public_security_spec(f"http://127.0.0.1:{port}")], data_dir=tmp_path, trust=trust
        ) as pool:
            with pytest.raises(BadRequest, match="HTTP 302"):
                await pool.client("public_security").check_list()
    finally:
        await runner.cleanup()


async def test_cancellation_propagates_through_a_sync(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    dept_server.faults = ["hang"]
    task = asyncio.create_task(sync_department(pool, "public_security", InMemorySink()))
    await dept_server.requested.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.client("public_security").breaker_state() == "closed"


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


# --- a seventh department, configuration only ---------------------------------------------------------------


async def test_seventh_department_is_configuration_only(dept_server: DepartmentServer, tmp_path: Path) -> None:
    """A new department of a known style: one department file and one trust file; no code."""
    departments = tmp_path / "departments"
    departments.mkdir()
    text = (CONFIG_DIR / "departments" / "public_security.toml").read_text(encoding="utf-8")
    text = text.replace('code = "public_security"', 'code = "entry_exit"').replace(
        'base_url = "http://127.0.0.1:8101"', f'base_url = "{dept_server.base_url}"'
    )
    (departments / "entry_exit.toml").write_text(text, encoding="utf-8")
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    # The system signs with public_security's issuer key; the trust file vouches for it under the new code.
    (trust_dir / "entry_exit.toml").write_text(
        demo_trust_file_text("public_security").replace('department = "public_security"', 'department = "entry_exit"')
    )
    specs = load_department_dir(departments)
    assert [s.code for s in specs] == ["entry_exit"]
    async with ConnectorPool(specs, data_dir=tmp_path, trust=TrustStore.load(trust_dir)) as pool:
        assert (await probe(pool, "entry_exit")).ok
        sink = InMemorySink()
        report = await sync_department(pool, "entry_exit", sink)
    assert report.errors == [] and report.stored == 25
    assert {f.source_department for f in sink.valid.values()} == {"entry_exit"}


# --- the custom escape hatch --------------------------------------------------------------------------------


class StaticClient:
    """A hand-written connector (``[custom] class = …``): serves ``options.records`` demo certificates."""

    def __init__(
        self, spec: DepartmentSpec, *, data_dir: Path, breaker: Breaker, environ: Any = None, sleep: Any = None
    ) -> None:
        self.spec = spec
        self._breaker = breaker
        assert spec.custom is not None
        count = int(spec.custom.options.get("records", 2))
        self._records = [
            MappedRecord(certificate=make_certificate(n), updated_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
            for n in range(count)
        ]
        self.opened = False

    async def open(self) -> None:
        self.opened = True

    async def aclose(self) -> None:
        self.opened = False

    async def check_health(self) -> None:
        return None

    async def check_list(self) -> None:
        return None

    def pages(self, *, since: dt.datetime | None = None, page_size: int | None = None) -> _OnePage:
        return _OnePage(self._records)

    async def holder(self, holder_id: str, type_codes: Sequence[str] = ()) -> list[MappedRecord]:
        return [r for r in self._records if r.certificate.holder_code == holder_id]

    async def breaker_state(self) -> BreakerState:
        return await self._breaker.state()


class _OnePage:
    def __init__(self, records: list[MappedRecord]) -> None:
        self.records = records
        self.stop_reason = ""

    def __aiter__(self) -> AsyncIterator[Page]:
        return self._go()

    async def _go(self) -> AsyncIterator[Page]:
        yield Page(number=1, records=self.records)
        self.stop_reason = "end"


async def test_custom_class_escape_hatch(tmp_path: Path, trust: TrustStore) -> None:
    base = public_security_spec("http://127.0.0.1:1")
    spec = msgspec.convert(
        {
            "code": "public_security",
            "name": base.name,
            "base_url": "http://unused.invalid",
            "types": base.types,
            "custom": {"class": "tests.connectors.test_client:StaticClient", "options": {"records": 3}},
        },
        DepartmentSpec,
    )
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        assert isinstance(pool.client("public_security"), StaticClient)
        assert (await probe(pool, "public_security")).ok
        report = await sync_department(pool, "public_security", InMemorySink())
    assert report.stored == 3 and report.errors == []
    assert spec.custom is not None
    broken = msgspec.structs.replace(spec, custom=msgspec.structs.replace(spec.custom, class_="nowhere:Nothing"))
    async with ConnectorPool([broken], data_dir=tmp_path, trust=trust) as pool:
        result = await probe(pool, "public_security")
    assert result.error_kind == "configuration_error" and result.error is not None and "custom.class" in result.error


async def test_connection_failed_is_retriable(tmp_path: Path, trust: TrustStore) -> None:
    assert issubclass(ConnectionFailed, ConnectorError)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = public_security_spec(f"http://127.0.0.1:{port}", breaker=BreakerPolicy(failure_threshold=100))
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        with pytest.raises(ConnectionFailed):
            await pool.client("public_security").check_list()


async def test_errors_never_carry_the_holder_id(
    dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore
) -> None:
    spec = public_security_spec(
        dept_server.base_url,
        timeouts=Timeouts(connect=0.5, read=0.2, total=0.4),
        retry=RetryPolicy(attempts=1, deadline=2),
    )
    holder = make_certificate(3).holder_code
    dept_server.faults = ["hang", 400]
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        for _ in range(2):
            with pytest.raises(ConnectorError) as info:
                await fetch_holder(pool, "public_security", holder)
            assert holder not in str(info.value) and holder not in repr(info.value.__dict__)
            assert info.value.endpoint == "GET /api/v2/licenses"


async def test_breaker_shared_through_redis_across_pools(
    redis_url: str, dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore
) -> None:
    """Two pools (two gateway processes) over one Redis: failures seen by one open the breaker for both."""
    if not redis_url:
        pytest.skip("in-memory breakers are per process by design")
    spec = public_security_spec(
        dept_server.base_url,
        breaker=BreakerPolicy(failure_threshold=2, cool_down=30),
        retry=RetryPolicy(attempts=1, deadline=5),
    )
    clock = FakeClock()
    prefix = f"test:breaker:{uuid.uuid4().hex}:"
    stores = [
        RedisBreakerStore(Redis.from_url(redis_url), owns_client=True, prefix=prefix, clock=clock) for _ in range(2)
    ]
    try:
        async with (
            ConnectorPool([spec], data_dir=tmp_path, trust=trust, breaker_store=stores[0]) as one,
            ConnectorPool([spec], data_dir=tmp_path, trust=trust, breaker_store=stores[1]) as two,
        ):
            dept_server.faults = [503, 503]
            for pool in (one, two):
                with pytest.raises(ServerError):
                    await pool.client("public_security").check_list()
            served = len(dept_server.requests)
            for pool in (one, two):
                with pytest.raises(CircuitOpen):
                    await pool.client("public_security").check_list()
            assert len(dept_server.requests) == served
            clock.now += 30
            await two.client("public_security").check_list()  # one probe, from either process
            assert await one.client("public_security").breaker_state() == "closed"
    finally:
        keys = [k async for k in stores[0].redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await stores[0].redis.delete(*keys)
        for store in stores:
            await store.aclose()
