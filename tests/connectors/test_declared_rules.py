"""The declared value rules, business result codes, record-total paging and quarantine, over the real simulators
(the seventh department, natural_resources, is driven only by its department file)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from connectors.client import ConnectorPool
from connectors.errors import BusinessError, DepartmentBusy
from connectors.registry import load_departments, load_trust, rebase
from connectors.spec import BreakerPolicy, DepartmentSpec, RetryPolicy
from connectors.sync import fetch_holder, probe, sync_department
from demokit.simulators import Simulators, run_simulators
from demokit.simulators.natural_resources import LONG_TERM
from tests.connectors.helpers import CONFIG_DIR, InMemorySink

SEED = 31
AS_OF = dt.date(2025, 6, 30)
CITIZENS = 400
CODE = "natural_resources"


@pytest.fixture
async def sims(tmp_path: Path) -> AsyncIterator[Simulators]:
    async with run_simulators(seed=SEED, citizens=CITIZENS, data_dir=tmp_path, as_of=AS_OF) as running:
        yield running


def spec_of(sims: Simulators, code: str = CODE, **overrides: Any) -> DepartmentSpec:
    (spec,) = [s for s in rebase(load_departments(CONFIG_DIR), sims.urls) if s.code == code]
    retry = RetryPolicy(attempts=12, initial_backoff=0.01, max_backoff=0.02, jitter=0.0, deadline=10)
    breaker = BreakerPolicy(failure_threshold=100)  # the breaker is test_departments.py's business
    return msgspec.structs.replace(spec, retry=retry, breaker=breaker, **overrides)


@pytest.fixture
async def pool(sims: Simulators, tmp_path: Path) -> AsyncIterator[ConnectorPool]:
    specs = [spec_of(sims, code) for code in (CODE, "veterans")]
    async with ConnectorPool(specs, data_dir=tmp_path, trust=load_trust(CONFIG_DIR)) as running:
        yield running


async def control(sims: Simulators, path: str, *, code: str = CODE, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.post(sims.url(code) + path, **kwargs) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def stats(sims: Simulators, code: str = CODE) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(sims.url(code) + "/__sim__/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


def list_requests(document: dict[str, Any]) -> int:
    return sum(document["by_path"].get("GET /bdc/api/zzxx/list", {}).values())


async def test_every_rule_maps_the_platforms_records_to_certificates_that_verify(
    sims: Simulators, pool: ConnectorPool
) -> None:
    sink = InMemorySink()
    report = await sync_department(pool, CODE, sink, today=AS_OF, page_size=100)
    held = {e.certificate.identifier: e.certificate for e in sims.store(CODE).entries}
    assert report.errors == [] and report.quarantined == 0 and not report.degraded
    assert report.fetched == len(held) and report.stored == len(held)  # every signature verified after mapping
    # The mapped certificate is exactly what the issuer signed: the Chinese dates, the Beijing-time datetimes, the
    # status / kind / ID-type / algorithm codes and the long-term sentinels all came back to the unified values.
    for identifier, fetched in sink.valid.items():
        assert fetched.certificate == held[identifier]
        assert fetched.source_updated_at is not None and fetched.source_updated_at.utcoffset() == dt.timedelta(hours=8)
    served = [r for r in (await pool_records(sims))]
    assert {r["qljssj"] for r in served} >= set(LONG_TERM)  # every no-expiry sentinel was on the wire
    assert any("年" in r["fzrq"] for r in served) and all(isinstance(r["gxsj"], int) for r in served)
    assert all(f.certificate.valid_until is None for f in sink.valid.values())


async def pool_records(sims: Simulators) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            sims.url(CODE) + "/bdc/api/zzxx/list",
            params={"pageNum": "1", "pageSize": "500"},
            headers={"appKey": "demo-natural-resources-key"},
        ) as response,
    ):
        document = await response.json()
    records: list[dict[str, Any]] = document["data"]["list"]
    return records


async def test_status_codes_come_through_the_code_table(sims: Simulators, pool: ConnectorPool) -> None:
    entry = sims.store(CODE).entries[0]
    await control(sims, "/__sim__/revoke", params={"identifier": entry.certificate.identifier})  # served as "2"
    sink = InMemorySink()
    report = await sync_department(pool, CODE, sink, today=AS_OF)
    assert report.errors == [] and report.rejections == {"revoked": 1}
    revoked = sink.rejected[entry.certificate.identifier]
    assert revoked.certificate.status == "03" and revoked.verification.status == "revoked"


async def test_paging_stops_on_the_declared_record_total(sims: Simulators, pool: ConnectorPool) -> None:
    held = len(sims.store(CODE))
    size = next(n for n in range(held // 3, 0, -1) if held % n == 0)  # pages that end exactly at the total
    assert held // size >= 3
    before = list_requests(await stats(sims))
    report = await sync_department(pool, CODE, InMemorySink(), today=AS_OF, page_size=size)
    assert report.errors == [] and report.fetched == held
    # No request for an empty page after the last: the total said it was the last (a short page would too).
    assert list_requests(await stats(sims)) - before == report.pages == held // size


async def test_a_bad_record_is_quarantined_and_the_rest_of_its_page_stored(
    sims: Simulators, pool: ConnectorPool
) -> None:
    entries = sims.store(CODE).entries
    bad_date, not_an_object, unknown_status = (e.certificate.identifier for e in entries[3:6])
    await control(sims, "/__sim__/corrupt", json={"identifier": bad_date, "fields": {"fzrq": "2024年2月30日"}})
    await control(sims, "/__sim__/corrupt", json={"identifier": unknown_status, "fields": {"zt": "X"}})
    await control(sims, "/__sim__/corrupt", json={"identifier": not_an_object, "record": "430302199001011234"})
    sink = InMemorySink()
    report = await sync_department(pool, CODE, sink, today=AS_OF, page_size=len(entries))  # all on one page
    assert report.errors == [] and report.pages == 1
    assert report.fetched == len(entries) - 3 == report.stored
    assert report.quarantined == 3 and report.quarantine == {"issue_date": 1, "status": 1, "(record)": 1}
    assert {bad_date, unknown_status, not_an_object} & set(sink.valid) == set()
    by_position = {q.position: q for q in sink.quarantined}
    assert (by_position[3].field, by_position[3].source, by_position[3].value_kind) == (
        "issue_date",
        "fzrq",
        "text(10)",
    )
    assert by_position[3].rule == "date[yyyy年M月d日|yyyy-MM-dd]" and by_position[3].identifier == bad_date
    assert (by_position[5].field, by_position[5].rule, by_position[5].value_kind) == ("status", "code", "text(1)")
    assert (by_position[4].field, by_position[4].value_kind, by_position[4].identifier) == ("(record)", "text(18)", "")
    text = msgspec.json.encode(sink.quarantined).decode()
    assert "2024年2月30日" not in text and "430302199001011234" not in text  # never the value
    # 3 of the page's records: more than the declared 2 %
    assert report.degraded and report.rejected_share == round(3 / len(entries), 4)
    quality = sink.quality[CODE]
    assert (quality.received, quality.quarantined, quality.degraded) == (len(entries), 3, True)


async def test_below_the_threshold_a_department_is_not_degraded(sims: Simulators, tmp_path: Path) -> None:
    spec = spec_of(sims)
    lenient = msgspec.structs.replace(spec, quality=msgspec.structs.replace(spec.quality, max_rejected_share=0.5))
    identifier = sims.store(CODE).entries[0].certificate.identifier
    await control(sims, "/__sim__/corrupt", json={"identifier": identifier, "fields": {"gxsj": "yesterday"}})
    async with ConnectorPool([lenient], data_dir=tmp_path, trust=load_trust(CONFIG_DIR)) as lenient_pool:
        sink = InMemorySink()
        report = await sync_department(lenient_pool, CODE, sink, today=AS_OF)
    assert report.quarantined == 1 and sink.quarantined[0].field == "updated_at"
    assert sink.quarantined[0].rule == "date[epoch_ms]" and not report.degraded


async def test_a_retriable_result_code_is_retried(sims: Simulators, pool: ConnectorPool) -> None:
    await control(sims, "/__sim__/faults", json={"error_rate": 0.4})  # HTTP 200 {"code": 50301, …}
    report = await sync_department(pool, CODE, InMemorySink(), today=AS_OF, page_size=50)
    assert report.errors == [] and report.fetched == len(sims.store(CODE))
    assert (await stats(sims))["faults"]["error_rate"] > 0
    await control(sims, "/__sim__/faults", json={"error_rate": 1})
    with pytest.raises(DepartmentBusy, match="result code 50301"):
        await pool.client(CODE).check_list()


async def test_a_fatal_result_code_fails_the_call_without_retrying(sims: Simulators, tmp_path: Path) -> None:
    spec = spec_of(sims)
    wrong = msgspec.structs.replace(spec, auth=msgspec.structs.replace(spec.auth, key="not-the-key"))
    async with ConnectorPool([wrong], data_dir=tmp_path, trust=load_trust(CONFIG_DIR)) as wrong_pool:
        before = list_requests(await stats(sims))
        result = await probe(wrong_pool, CODE)
        assert result.error_kind == "business_error" and "result code 40101" in (result.error or "")
        assert list_requests(await stats(sims)) - before == 1  # not retried
        report = await sync_department(wrong_pool, CODE, InMemorySink(), today=AS_OF)
        assert len(report.errors) == 1 and "business_error" in report.errors[0]
        with pytest.raises(BusinessError):
            await wrong_pool.client(CODE).check_list()


async def test_a_rejected_result_code_in_a_lookup_means_nothing_found(sims: Simulators, pool: ConnectorPool) -> None:
    holders = {e.certificate.holder_code for e in sims.store(CODE).entries}
    without = next(c.id_number for c in sims.citizens if c.id_number not in holders)  # 40401 未查询到证照信息
    assert await fetch_holder(pool, CODE, without, today=AS_OF) == []
    with_one = next(iter(holders))
    found = await fetch_holder(pool, CODE, with_one, today=AS_OF)
    assert found and all(f.verification.ok for f in found)


async def test_a_rejected_page_is_recorded_and_the_sync_goes_on(sims: Simulators, pool: ConnectorPool) -> None:
    held = len(sims.store(CODE))
    size = held // 4 + 1
    await control(sims, "/__sim__/refuse", params={"page": "2"})  # 40302 该页数据暂停共享
    sink = InMemorySink()
    report = await sync_department(pool, CODE, sink, today=AS_OF, page_size=size)
    assert report.errors == [] and report.fetched == held - size  # every page but the refused one
    (refused,) = sink.quarantined
    assert (refused.field, refused.position, refused.page, refused.rule) == ("(page)", -1, 2, "result_code 40302")
    assert "40302" in refused.message
    # Refused every time: paging gives up after a few pages in a row, saying why, and keeps no cursor.
    await control(sims, "/__sim__/refuse", params={"page": ["1", "2", "3", "4", "5"]})
    stuck = InMemorySink()
    report = await sync_department(pool, CODE, stuck, today=AS_OF, page_size=size, full=True)
    assert report.errors == [f"[{CODE}] paging: stopped: the department refused 3 pages in a row"]
    assert CODE not in stuck.cursors


async def test_check_shows_a_mapped_sample_or_why_it_was_rejected(sims: Simulators, pool: ConnectorPool) -> None:
    result = await probe(pool, CODE)
    assert result.ok and result.sample is not None and result.sample.type_key == "real_estate_certificate"
    first = sims.store(CODE).entries[0].certificate
    assert result.sample == first
    await control(sims, "/__sim__/corrupt", json={"identifier": first.identifier, "fields": {"qlrzjlx": "护照"}})
    rejected = await probe(pool, CODE)
    assert rejected.ok and rejected.sample is None and rejected.sample_rejection is not None
    assert (rejected.sample_rejection.field, rejected.sample_rejection.source) == ("holder_code_type", "qlrzjlx")


async def test_a_non_object_record_of_another_department_is_quarantined_too(
    sims: Simulators, pool: ConnectorPool
) -> None:
    identifier = sims.store("veterans").entries[0].certificate.identifier
    await control(sims, "/__sim__/corrupt", code="veterans", json={"identifier": identifier, "record": [1, 2]})
    sink = InMemorySink()
    report = await sync_department(pool, "veterans", sink, today=AS_OF)
    assert report.errors == [] and report.quarantined == 1 and report.fetched == len(sims.store("veterans")) - 1
    assert (sink.quarantined[0].field, sink.quarantined[0].value_kind) == ("(record)", "array")
