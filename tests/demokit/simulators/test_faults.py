"""Fault injection: the spec grammar, and each fault as a client sees it over a real socket."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web
from yarl import URL

from connectors.trust import TrustStore
from demokit.simulators import FaultSpecError, Simulators, parse_fault_spec, run_simulators
from demokit.simulators.faults import Faults
from tests.demokit.simulators import wire
from tests.demokit.simulators.conftest import AS_OF

PS_KEY = {"X-Api-Key": "demo-public-security-key"}


# --- the grammar -----------------------------------------------------------------------------------------------


def test_spec_grammar() -> None:
    faults = parse_fault_spec("*:latency=50;civil_affairs:rate_limit=0.3,hang;health:malformed=0.2,latency=5")
    assert faults["public_security"] == Faults(latency=50)
    assert faults["civil_affairs"] == Faults(latency=50, rate_limit=0.3, hang=1.0)
    assert faults["health"] == Faults(latency=5, malformed=0.2)
    assert parse_fault_spec("") == parse_fault_spec(" ; ")
    assert all(not f.active for f in parse_fault_spec("").values())
    assert faults["civil_affairs"].describe() == "latency=50,rate_limit=0.3,hang=1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("planet:hang", "unknown department 'planet'"),
        ("health:explode=1", "unknown fault 'explode'"),
        ("health:hang=2", "probability must be between 0 and 1"),
        ("health:error_rate=-0.1", "probability must be between 0 and 1"),
        ("health:latency", "latency needs a value"),
        ("health:latency=abc", "'abc' is not a number"),
        ("health:latency=nan", "finite"),
        ("hang=1", "expected dept:fault"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault_spec(spec)


# --- behaviour -------------------------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.set_faults("public_security", "rate_limit=1")
    async with http.get(sims.url("public_security") + "/api/v2/licenses", headers=PS_KEY) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
        assert r.content_type == "application/problem+json"
    sims.set_faults("disabled_persons", {"rate_limit": 1})
    async with http.get(sims.url("disabled_persons") + "/cdpf/services/CertQuery") as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert "<ResultCode>429</ResultCode>" in await r.text()


async def test_error_rate_answers_503_and_control_still_works(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.set_faults("*", "error_rate=1")
    async with http.get(sims.url("veterans") + "/veterans/cards") as r:
        assert r.status == 503
        assert (await r.json())["status"] == 503
    async with http.get(sims.url("veterans") + "/__sim__/stats") as r:  # control paths never fail
        stats = await r.json()
    assert stats["faults"] == {"error_rate": 1}
    assert stats["by_path"]["GET /veterans/cards"] == {"503": 1}
    sims.clear_faults()
    async with http.get(sims.url("veterans") + "/veterans/cards") as r:
        assert r.status == 200


async def test_hang_times_out_on_the_client_and_shutdown_stays_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with aiohttp.ClientSession() as http:
        async with run_simulators(seed=1, citizens=30, data_dir=tmp_path, faults="veterans:hang", as_of=AS_OF) as sims:
            veterans = sims.departments["veterans"]
            hanging: list[web.Request] = []
            second_hangs = asyncio.Event()
            pause = veterans.pause

            async def counted_pause(request: web.Request, seconds: float | None) -> None:
                hanging.append(request)
                if len(hanging) == 2:
                    second_hangs.set()
                await pause(request, seconds)

            monkeypatch.setattr(veterans, "pause", counted_pause)
            with pytest.raises(asyncio.TimeoutError):
                async with http.get(sims.url("veterans") + "/veterans/cards", timeout=aiohttp.ClientTimeout(total=0.3)):
                    pass
            # a second request still waiting while the simulators stop: dropped, not answered
            waiting = asyncio.ensure_future(http.get(sims.url("veterans") + "/veterans/cards"))
            await asyncio.wait_for(second_hangs.wait(), 30)
            stopped = time.monotonic()
        # Without dropping them, stopping would wait for the hanging requests (aiohttp's 60 s shutdown timeout).
        assert time.monotonic() - stopped < 10
        with pytest.raises(aiohttp.ClientError):
            await waiting


async def test_latency_and_jitter_delay_the_answer(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.set_faults("veterans", "latency=250,jitter=50")
    started = time.monotonic()
    async with http.get(sims.url("veterans") + "/health") as r:
        assert r.status == 200
    # At least the latency; the upper bound only has to tell milliseconds from seconds.
    assert 0.25 <= time.monotonic() - started < 10


async def test_malformed_is_not_valid_json(sims: Simulators, http: aiohttp.ClientSession) -> None:
    sims.set_faults("veterans", "malformed=1")
    async with http.get(sims.url("veterans") + "/veterans/cards") as r:
        assert r.status == 200
        raw = await r.read()
    with pytest.raises((msgspec.DecodeError, UnicodeDecodeError)):
        msgspec.json.decode(raw)
    async with http.get(sims.url("veterans") + "/health") as r:  # only certificate answers are cut
        assert (await r.json())["status"] == "UP"


async def test_tampered_records_fail_verification(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    sims.set_faults("public_security", "tampered=1")
    async with http.get(sims.url("public_security") + "/api/v2/licenses?limit=20", headers=PS_KEY) as r:
        records = (await r.json())["data"]
    seeded = {e.certificate.identifier: e.certificate for e in sims.store("public_security").entries}
    for record in records:
        certificate = wire.from_public_security(record)
        assert certificate.holder_name != seeded[certificate.identifier].holder_name
        verdict = trust_store.verify(certificate, today=AS_OF, department="public_security")
        assert verdict.status == "bad_signature"


async def test_revoked_records_carry_status_03_and_a_valid_signature(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    tls = sims.client_ssl_context()
    async with http.post(sims.url("health") + "/__sim__/faults", json={"revoked": 1}, ssl=tls) as r:
        assert r.status == 200 and (await r.json())["faults"]["revoked"] == 1
    async with http.get(sims.url("health") + "/nhc/api/certificates", ssl=tls) as r:
        records = (await r.json())["certificates"]
    assert records and {c["status"] for c in records} == {"03"}
    for record in records:
        assert trust_store.verify(wire.from_health(record), today=AS_OF, department="health").status == "revoked"


async def test_faults_over_http_validate_and_replace(sims: Simulators, http: aiohttp.ClientSession) -> None:
    url = sims.url("civil_affairs") + "/__sim__/faults"
    async with http.post(url, json={"hang": 3}) as r:
        assert r.status == 400 and "hang" in (await r.json())["error"]
    async with http.post(url, json="rate_limit=1,latency=10") as r:
        assert (await r.json())["spec"] == "latency=10,rate_limit=1"
    async with http.post(url, json={"error_rate": 1}) as r:  # replaces, does not merge
        assert (await r.json())["spec"] == "error_rate=1"
    target = URL(sims.url("civil_affairs") + "/mca/certs")
    async with http.get(target, headers=wire.ca_headers(target)) as r:
        assert r.status == 503 and (await r.json())["code"] == 503
    async with http.post(url, json={}) as r:
        assert (await r.json())["spec"] == ""


async def test_fault_draws_repeat_with_the_seed(tmp_path: Path) -> None:
    async def statuses(seed: int) -> list[int]:
        async with (
            run_simulators(
                seed=seed, citizens=20, data_dir=tmp_path, faults="veterans:rate_limit=0.5", as_of=AS_OF
            ) as sims,
            aiohttp.ClientSession() as http,
        ):
            result = []
            for _ in range(24):
                async with http.get(sims.url("veterans") + "/health") as r:
                    result.append(r.status)
            return result

    first = await statuses(11)
    assert await statuses(11) == first
    assert {200, 429} == set(first)
