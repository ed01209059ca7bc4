"""The generated suite: every department file in config/departments/ against the real simulators, over real
sockets (ephemeral ports). A new department file is picked up automatically; one whose system is not among the
simulators is skipped with the reason."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from connectors.breaker import MemoryBreakerStore
from connectors.client import ConnectorPool
from connectors.errors import CircuitOpen, DepartmentBusy, ServerError
from connectors.registry import load_department_dir
from connectors.spec import BreakerPolicy, DepartmentSpec, RetryPolicy, Timeouts
from connectors.sync import fetch_holder, probe, sync_department
from connectors.trust import TrustStore, demo_trust_file_text
from demokit.simulators import Simulators, run_simulators
from tests.connectors.helpers import CONFIG_DIR, FakeClock, InMemorySink

SEED = 424242
AS_OF = dt.date(2025, 6, 30)
CITIZENS = 300  # enough for several pages even at the smallest department (veterans: 4)
DEPARTMENT_FILES = sorted((CONFIG_DIR / "departments").glob("*.toml"))

pytestmark = pytest.mark.parametrize("department_file", DEPARTMENT_FILES, ids=[p.stem for p in DEPARTMENT_FILES])


@pytest.fixture
async def sims(tmp_path: Path) -> AsyncIterator[Simulators]:
    async with run_simulators(seed=SEED, citizens=CITIZENS, data_dir=tmp_path, as_of=AS_OF) as running:
        yield running


@pytest.fixture(scope="module")
def trust_store() -> TrustStore:
    return TrustStore.load(CONFIG_DIR / "trust")


def tuned(spec: DepartmentSpec, **overrides: Any) -> DepartmentSpec:
    """Test-speed policies: short backoff, ``Retry-After`` capped at 50 ms."""
    retry = RetryPolicy(
        attempts=4, initial_backoff=0.01, max_backoff=0.05, jitter=0.01, retry_after_cap=0.05, deadline=10
    )
    return msgspec.structs.replace(spec, retry=retry, **overrides)


def spec_for(department_file: Path, sims: Simulators, **overrides: Any) -> DepartmentSpec:
    (spec,) = [s for s in load_department_dir(department_file.parent) if s.code == department_file.stem]
    if spec.code not in sims.urls:
        pytest.skip(f"no simulator for department {spec.code}")
    return tuned(spec.rebased(sims.url(spec.code)), **overrides)


class Control:
    """The simulator's test control (``/__sim__/…``) of one department, over HTTP like any client."""

    def __init__(self, sims: Simulators, code: str) -> None:
        self.base = sims.url(code)
        self.ssl = sims.client_ssl_context() if self.base.startswith("https") else None

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.request(method, self.base + path, ssl=self.ssl or True, **kwargs) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def faults(self, **faults: float) -> None:
        await self.call("POST", "/__sim__/faults", json=faults)

    async def fault_hits(self) -> dict[str, int]:
        """Faults injected so far, by name (whatever status the department answers them with: an HTTP 503, or a
        business code inside a 200)."""
        stats = await self.call("GET", "/__sim__/stats")
        return dict(stats["faults"])

    async def statuses(self) -> dict[str, int]:
        """Responses served so far, by status, over every path."""
        stats = await self.call("GET", "/__sim__/stats")
        totals: dict[str, int] = {}
        for by_status in stats["by_path"].values():
            for status, count in by_status.items():
                totals[status] = totals.get(status, 0) + count
        return totals


def identifiers(sims: Simulators, code: str) -> set[str]:
    return {e.certificate.identifier for e in sims.store(code).entries}


async def test_loads_and_probe_passes(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        result = await probe(pool, spec.code)
    assert result.ok and result.health and result.list, result.error


async def test_paging_terminates_and_yields_every_certificate(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims)
    expected = identifiers(sims, spec.code)
    page_size = max(1, len(expected) // 3)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        sink = InMemorySink()
        report = await asyncio.wait_for(sync_department(pool, spec.code, sink, page_size=page_size, today=AS_OF), 30)
    assert report.errors == []
    seen = [f.certificate.identifier for batch in sink.batches for f in batch]
    assert sorted(seen) == sorted(expected)  # every certificate, exactly once
    assert report.pages >= 3
    assert report.fetched == len(expected) == report.stored + report.rejected
    # An honest system's rejections are only certificates that lapsed or were revoked in its data.
    assert set(report.rejections) <= {"expired", "revoked"}
    assert all(f.certificate.type_key in spec.types for f in sink.valid.values())


async def test_429_and_503_are_retried(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims, breaker=BreakerPolicy(failure_threshold=100))
    spec = msgspec.structs.replace(spec, retry=msgspec.structs.replace(spec.retry, attempts=12))
    control = Control(sims, spec.code)
    await control.faults(rate_limit=0.3, error_rate=0.3)
    expected = identifiers(sims, spec.code)

    async def no_wait(seconds: float) -> None:  # how long the waits are is test_retry.py's business
        await asyncio.sleep(0)

    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store, sleep=no_wait) as pool:
        report = await sync_department(
            pool, spec.code, InMemorySink(), page_size=max(1, len(expected) // 10), today=AS_OF
        )
        assert report.errors == []
        assert report.fetched == len(expected)
        # Small departments need few requests: keep calling (each call must still succeed) until both faults hit.
        for _ in range(30):
            hits = await control.fault_hits()
            if hits.get("rate_limit") and hits.get("error_rate"):
                break
            await pool.client(spec.code).check_list()
    assert hits.get("rate_limit", 0) > 0 and hits.get("error_rate", 0) > 0, hits


async def test_breaker_opens_and_recovers(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims, breaker=BreakerPolicy(failure_threshold=2, cool_down=30))
    spec = msgspec.structs.replace(spec, retry=msgspec.structs.replace(spec.retry, attempts=1))
    control = Control(sims, spec.code)
    clock = FakeClock()
    breakers = MemoryBreakerStore(clock)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store, breaker_store=breakers) as pool:
        client = pool.client(spec.code)
        await client.check_list()  # warm (OAuth2 token fetched while the system is up)
        await control.faults(error_rate=1)
        for _ in range(2):
            with pytest.raises((ServerError, DepartmentBusy)):  # an HTTP 503, or a declared-retriable result code
                await client.check_list()
        served = sum((await control.statuses()).values())
        with pytest.raises(CircuitOpen):
            await client.check_list()
        assert sum((await control.statuses()).values()) == served  # failed fast, never reached the system
        assert (await probe(pool, spec.code)).error_kind == "circuit_open"
        await control.faults()
        clock.now += 29
        assert (await probe(pool, spec.code)).error_kind == "circuit_open"  # still cooling down
        clock.now += 1
        assert (await probe(pool, spec.code)).ok  # the probe went through and closed it
        assert await client.breaker_state() == "closed"


@pytest.mark.parametrize(("fault", "status"), [("tampered", "bad_signature"), ("revoked", "revoked")])
async def test_bad_certificates_are_rejected(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore, fault: str, status: str
) -> None:
    spec = spec_for(department_file, sims)
    await Control(sims, spec.code).faults(**{fault: 1})
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        sink = InMemorySink()
        report = await sync_department(pool, spec.code, sink, today=AS_OF)
    assert report.errors == [] and report.stored == 0 and sink.valid == {}
    assert report.rejected == report.fetched == len(identifiers(sims, spec.code))
    assert report.rejections.get(status, 0) > 0
    assert all(not f.verification.ok for f in sink.rejected.values())


async def test_malformed_body_is_classified_and_nothing_stored(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims)
    await Control(sims, spec.code).faults(malformed=1)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        sink = InMemorySink()
        report = await sync_department(pool, spec.code, sink, today=AS_OF)
        assert (await probe(pool, spec.code)).error_kind == "malformed_response"
    assert len(report.errors) == 1 and "malformed_response" in report.errors[0]
    assert report.stored == 0 and sink.batches == [] and sink.cursors == {}


async def test_incremental_sync_picks_up_only_changes(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        sink = InMemorySink()
        first = await sync_department(pool, spec.code, sink, today=AS_OF)
        assert first.errors == [] and sink.cursors[spec.code] == first.cursor
        touched = await Control(sims, spec.code).call("POST", "/__sim__/touch", params={"count": "1"})
        sink.batches.clear()
        second = await sync_department(pool, spec.code, sink, today=AS_OF)
        assert second.errors == [] and second.since == first.cursor
        assert [f.certificate.identifier for b in sink.batches for f in b] == [
            t["identifier"] for t in touched["touched"]
        ]
        third = await sync_department(pool, spec.code, sink, today=AS_OF)
        assert third.fetched == 0 and third.errors == []


async def test_hang_times_out_within_the_budget(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims, timeouts=Timeouts(connect=0.5, read=0.2, total=0.4))
    spec = msgspec.structs.replace(spec, retry=msgspec.structs.replace(spec.retry, attempts=2, deadline=1.0))
    await Control(sims, spec.code).faults(hang=1)
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        report = await sync_department(pool, spec.code, InMemorySink(), today=AS_OF)
    assert len(report.errors) == 1 and "timeout" in report.errors[0], report.errors
    # Each attempt ended by its own read timeout, not by the 1 s deadline of the whole call.
    assert "deadline" not in report.errors[0], report.errors
    assert report.stored == 0


async def test_holder_lookup_returns_that_holders_certificates(
    department_file: Path, sims: Simulators, tmp_path: Path, trust_store: TrustStore
) -> None:
    spec = spec_for(department_file, sims)
    holders: dict[str, set[str]] = {}
    for entry in sims.store(spec.code).entries:
        holders.setdefault(entry.certificate.holder_code, set()).add(entry.certificate.identifier)
    holder, expected = max(holders.items(), key=lambda kv: len(kv[1]))
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust_store) as pool:
        found = await fetch_holder(pool, spec.code, holder, today=AS_OF)
        assert {f.certificate.identifier for f in found} == expected
        assert all(f.verification.status in {"valid", "expired", "revoked"} for f in found)
        one_type = next(iter(spec.types))
        only = await fetch_holder(pool, spec.code, holder, [one_type], today=AS_OF)
        assert all(f.certificate.type_key == one_type for f in only)


def write_annex(department_file: Path, config: Path, new_code: str) -> Path:
    """``config/departments/<new_code>.toml`` (a copy under the new code) and its trust file."""
    code = department_file.stem
    (config / "departments").mkdir(parents=True)
    (config / "trust").mkdir()
    text = department_file.read_text(encoding="utf-8").replace(f'code = "{code}"', f'code = "{new_code}"')
    (config / "departments" / f"{new_code}.toml").write_text(text, encoding="utf-8")
    (config / "trust" / f"{new_code}.toml").write_text(
        demo_trust_file_text(code).replace(f'department = "{code}"', f'department = "{new_code}"')
    )
    return config


async def test_a_seventh_department_of_this_style_is_configuration_only(
    department_file: Path, sims: Simulators, tmp_path: Path
) -> None:
    """Copy the file under a new code, point it at the simulator, vouch for the issuer key: no code at all."""
    code = department_file.stem
    if code not in sims.urls:
        pytest.skip(f"no simulator for department {code}")
    new_code = f"{code}_annex"
    config = write_annex(department_file, tmp_path / "config", new_code)
    (spec,) = load_department_dir(config / "departments")
    spec = tuned(spec.rebased(sims.url(code)))
    async with ConnectorPool([spec], data_dir=tmp_path, trust=TrustStore.load(config / "trust")) as pool:
        assert (await probe(pool, new_code)).ok
        report = await sync_department(pool, new_code, InMemorySink(), today=AS_OF)
    assert report.errors == [] and report.stored > 0
    assert report.fetched == len(identifiers(sims, code))
