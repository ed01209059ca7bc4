"""The sync engine against a real department server: everything arrives, verified; failures are classified and
never half-stored; incremental sync picks up only changes."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import msgspec
import pytest

from connectors.client import ConnectorPool
from connectors.errors import ConnectorError, MalformedResponse
from connectors.sync import fetch_holder, probe, sync_all, sync_department
from connectors.trust import TrustStore
from tests.connectors.helpers import (
    SHANGHAI,
    DepartmentServer,
    InMemorySink,
    citizen_id,
    make_certificate,
    public_security_spec,
)


async def test_full_sync_stores_every_certificate(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    sink = InMemorySink()
    progress: list[tuple[str, int, int]] = []
    report = await sync_department(pool, "public_security", sink, page_size=10, progress=lambda *a: progress.append(a))
    assert report.errors == []
    assert (report.fetched, report.stored, report.rejected, report.pages) == (25, 25, 0, 3)
    assert len(sink.valid) == 25
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert progress[-1] == ("public_security", 25, 3)
    first = next(iter(sink.valid.values()))
    assert first.source_department == "public_security"
    assert first.verification.key_id == "public_security-demo-1"
    assert first.certificate.type_key == "resident_id_card"
    assert first.source_updated_at is not None and first.source_updated_at.utcoffset() == dt.timedelta(hours=8)
    # The newest change time becomes the cursor for the next run.
    assert sink.cursors["public_security"] == report.cursor == dept_server.records[-1][0].isoformat()
    # Every request carried a distinct request id.
    assert len(set(dept_server.request_ids)) == len(dept_server.request_ids)


async def test_incremental_sync_fetches_only_changes(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    sink = InMemorySink()
    await sync_department(pool, "public_security", sink, page_size=10)
    touched = dept_server.touch(4, dt.datetime(2025, 6, 1, 9, 0, tzinfo=SHANGHAI))
    sink.batches.clear()
    report = await sync_department(pool, "public_security", sink, page_size=10)
    assert report.errors == []
    assert report.fetched == 4
    assert report.since is not None
    assert sorted(f.certificate.identifier for b in sink.batches for f in b) == sorted(touched)
    # Nothing changed since: nothing fetched, cursor kept.
    again = await sync_department(pool, "public_security", sink)
    assert (again.fetched, again.cursor) == (0, None)
    # full=True ignores the cursor.
    full = await sync_department(pool, "public_security", sink, full=True)
    assert full.fetched == 25


async def test_rejected_certificates_reach_the_sink_flagged(tmp_path: Path, trust: TrustStore) -> None:
    tampered = msgspec.structs.replace(make_certificate(1), holder_name="李四")
    revoked = make_certificate(2, status="03")
    expired = make_certificate(3, valid_until=dt.date(2021, 1, 1))
    unsigned = make_certificate(4, sign=False)
    server = DepartmentServer([make_certificate(0), tampered, revoked, expired, unsigned])
    await server.start()
    try:
        async with ConnectorPool([public_security_spec(server.base_url)], data_dir=tmp_path, trust=trust) as pool:
            sink = InMemorySink()
            report = await sync_department(pool, "public_security", sink)
    finally:
        await server.stop()
    assert (report.fetched, report.stored, report.rejected) == (5, 1, 4)
    assert report.rejections == {"bad_signature": 1, "revoked": 1, "expired": 1, "unsigned": 1}
    assert {f.verification.status for f in sink.rejected.values()} == {
        "bad_signature",
        "revoked",
        "expired",
        "unsigned",
    }
    assert all(not f.verification.ok and f.verification.reason for f in sink.rejected.values())


async def test_failure_mid_way_is_classified_and_never_half_stored(
    pool: ConnectorPool, dept_server: DepartmentServer
) -> None:
    sink = InMemorySink()
    # Page 1 fine, page 2 a truncated body: page 1 stored whole, nothing of page 2, cursor not advanced.
    dept_server.faults = ["ok", "malformed"]
    report = await sync_department(pool, "public_security", sink, page_size=10)
    assert report.fetched == 10 and report.stored == 10
    assert [len(b) for b in sink.batches] == [10]
    assert len(report.errors) == 1 and "malformed_response" in report.errors[0]
    assert "GET /api/v2/licenses" in report.errors[0] and "request " in report.errors[0]
    assert sink.cursors == {}


async def test_sink_failure_stops_the_sync(pool: ConnectorPool) -> None:
    sink = InMemorySink(fail_on_batch=1)
    with pytest.raises(RuntimeError, match="store is down"):
        await sync_department(pool, "public_security", sink, page_size=10)
    assert [len(b) for b in sink.batches] == [10]
    assert sink.cursors == {}


async def test_repeated_cursor_terminates_and_is_reported(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    dept_server.repeat_cursor = True
    sink = InMemorySink()
    report = await asyncio.wait_for(sync_department(pool, "public_security", sink, page_size=10), 30)
    assert report.pages == 2  # the first page, then the page at the repeated cursor; never a third
    assert any("repeated a cursor" in e for e in report.errors)
    assert sink.cursors == {}


async def test_fetch_holder_verifies_against_the_requested_holder(pool: ConnectorPool) -> None:
    holder = citizen_id(7)
    found = await fetch_holder(pool, "public_security", holder, ["resident_id_card"])
    assert [f.certificate.holder_code for f in found] == [holder]
    assert found[0].verification.ok
    # Types the department does not issue: nothing asked, nothing found.
    assert await fetch_holder(pool, "public_security", holder, ["marriage_certificate"]) == []

    # A department answering with someone else's certificate: flagged wrong_holder.
    async def lying_holder(holder_id: str, type_codes: object = ()) -> list[object]:
        return [r for r in records]

    client = pool.client("public_security")
    records = await client.holder(citizen_id(8))
    client.holder = lying_holder  # type: ignore[method-assign,assignment]
    wrong = await fetch_holder(pool, "public_security", holder)
    assert [f.verification.status for f in wrong] == ["wrong_holder"]


async def test_probe_reports_health_and_list(pool: ConnectorPool, dept_server: DepartmentServer) -> None:
    result = await probe(pool, "public_security")
    assert result.ok and result.health and result.list and result.breaker == "closed"
    assert any("limit=1" in r for r in dept_server.requests)
    dept_server.faults = [400]
    bad = await probe(pool, "public_security")
    assert not bad.ok and bad.health and not bad.list and bad.error_kind == "bad_request"


async def test_unknown_department_is_a_configuration_error(pool: ConnectorPool) -> None:
    report = await sync_department(pool, "nowhere", InMemorySink())
    assert report.errors and "configuration_error" in report.errors[0]
    with pytest.raises(ConnectorError):
        await fetch_holder(pool, "nowhere", citizen_id(1))
    assert issubclass(MalformedResponse, ConnectorError)


async def test_sync_all_reports_each_department(
    dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore
) -> None:
    good = public_security_spec(dept_server.base_url)
    down = msgspec.structs.replace(
        public_security_spec("http://127.0.0.1:9"),
        code="entry_exit",
        retry=msgspec.structs.replace(good.retry, attempts=1),
    )
    async with ConnectorPool([good, down], data_dir=tmp_path, trust=trust) as pool:
        reports = await sync_all(pool, InMemorySink())
        assert [r.code for r in reports] == ["public_security", "entry_exit"]
        assert reports[0].ok and reports[0].stored == 25
        assert not reports[1].ok and "connection_failed" in reports[1].errors[0]
        only = await sync_all(pool, InMemorySink(), ["entry_exit"])
        assert [r.code for r in only] == ["entry_exit"]
        with pytest.raises(RuntimeError, match="store is down"):
            await sync_all(pool, InMemorySink(fail_on_batch=0))


async def test_verification_in_a_worker_process_gives_the_same_verdicts(
    dept_server: DepartmentServer, tmp_path: Path, trust: TrustStore
) -> None:
    dept_server.records[3] = (
        dept_server.records[3][0],
        msgspec.structs.replace(dept_server.records[3][1], holder_name="X"),
    )
    spec = public_security_spec(dept_server.base_url)
    verdicts = []
    for processes in (0, 1):
        async with ConnectorPool([spec], data_dir=tmp_path, trust=trust, verify_processes=processes) as pool:
            sink = InMemorySink()
            report = await sync_department(pool, "public_security", sink, page_size=10, full=True)
        assert report.errors == [] and (report.stored, report.rejected) == (24, 1)
        verdicts.append({f.certificate.identifier: f.verification for b in sink.batches for f in b})
    assert verdicts[0] == verdicts[1]
