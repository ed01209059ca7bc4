"""Reporting cases to the simulated provincial platform over real HTTP, on SQLite and PostgreSQL: the national
record shapes (validated by the platform's own schema), order per case, retries with back-off after failures, a
restart resuming, the background task, and the reconciliation listing a planted difference."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from sqlalchemy import select, update

from catalog.calendar import district_today
from gateway.cli import main
from gateway.context import context_of
from gateway.province.reporter import LEASE_SECONDS, ProvinceReporter
from gateway.province.tables import province_reports
from gateway.province.target import load_target
from gateway.storage.metadata import utcnow
from tests.gateway.departments.fixtures import served_gateway
from tests.gateway.departments.test_push_api import event, push_hmac
from tests.gateway.intake.fixtures import Gateway
from tests.gateway.province.conftest import Platform


class Clock:
    def __init__(self) -> None:
        self.at = utcnow()

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@contextlib.asynccontextmanager
async def reporter_for(
    gw: Gateway, platform: Platform, now: Callable[[], dt.datetime] = utcnow
) -> AsyncIterator[ProvinceReporter]:
    context = context_of(gw.app)
    target = load_target(gw.settings.config_dir, platform.url)
    assert target is not None
    async with aiohttp.ClientSession() as session:
        yield ProvinceReporter(
            database=gw.db,
            target=target,
            catalog=context.catalog,
            session=session,
            environ={},
            now=now,
            jitter=lambda: 0.0,
        )


async def full_case(gw: Gateway) -> tuple[str, dict[str, Any]]:
    """A case through every kind of step: review, a special procedure (by the department), approval, delivery."""
    application_id, acceptance = await gw.accepted_case()
    assert (await gw.move(application_id, "in_review", note="开始审查")).status_code == 200
    response = await push_hmac(
        gw,
        event(
            application_id,
            "special_procedure_started",
            procedure={"kind": "public_notice", "reason": "公示七日"},
        ),
    )
    assert response.status_code == 200, response.text
    assert (await push_hmac(gw, event(application_id, "special_procedure_ended"))).status_code == 200
    assert (await gw.move(application_id, "approved", result="准予发放")).status_code == 200
    assert (await gw.move(application_id, "delivered")).status_code == 200
    return application_id, acceptance


def records_of(platform: Platform, case_number: str) -> list[dict[str, Any]]:
    found = [s.record for s in platform.sim.state.records.values() if s.record["sblsh"] == case_number]
    return sorted(found, key=lambda r: r["xh"])


async def test_every_step_is_reported_in_the_national_shape_once_and_in_order(
    reporting_gateway: Gateway, platform: Platform
) -> None:
    gw = reporting_gateway
    _, acceptance = await full_case(gw)
    # A draft the window refuses (不予受理), and one withdrawn before it became a case (not reported).
    citizen = gw.citizen("resident_id_card", "disability_certificate", "household_register")
    refused = (await gw.create(gw.body(citizen))).json()["id"]
    assert (await gw.move(refused, "not_accepted", who="clerk", note="不属于本窗口受理范围")).status_code == 200
    withdrawn = (await gw.create(gw.body(citizen))).json()["id"]
    assert (await gw.move(withdrawn, "withdrawn", who="clerk")).status_code == 200

    async with reporter_for(gw, platform) as reporter:
        result = await reporter.drain()
        assert result.failed == 0 and result.sent == 7
        assert (await reporter.drain()).sent == 0  # nothing twice
    assert platform.sim.state.rejected == []
    records = records_of(platform, acceptance["tracking_number"])
    assert [(r["jllx"], r["bjzt"]) for r in records] == [
        ("SL", "accepted"),
        ("GC", "in_review"),
        ("TBCX", "special_procedure"),
        ("TBCX", "in_review"),
        ("JG", "approved"),
        ("JG", "delivered"),
    ]
    accepted, review, started, ended, approved, delivered = records
    assert accepted["slbz"] == "1" and accepted["cnbjrq"] == acceptance["deadline"] and accepted["cnsx"] == 15
    assert accepted["sqrzjlx"] == "111" and "*" in accepted["sqrzjhm"] and "*" in accepted["sqrxm"]
    assert citizen.id_number not in msgspec.json.encode(platform.sim.state.records).decode()
    assert accepted["sxbm"] == "0205006100" and accepted["xzqhdm"] == "430302" and accepted["blbmdm"] == "civil_affairs"
    assert review["hjmc"] == "已受理" and review["dzmc"] == "审查中" and review["clyj"] == "开始审查"
    assert review["blr"] == "officer:civil_affairs"
    assert (
        started["tbcxzl"] == "公示" and started["tbcxyy"] == "公示七日" and started["blr"] == "department:civil_affairs"
    )
    assert ended["tbcxkssj"] == started["tbcxkssj"] and "tbcxjssj" in ended
    assert approved["bjjg"] == "准予" and approved["bjjgms"] == "准予发放"
    assert delivered["bjjg"] == "准予" and delivered["sdfs"] == "窗口领取" and "sdsj" in delivered
    refusal = next(s.record for s in platform.sim.state.records.values() if s.record["sblsh"] == refused)
    assert refusal["jllx"] == "SL" and refusal["slbz"] == "0" and refusal["byslyy"] == "不属于本窗口受理范围"
    assert not [s for s in platform.sim.state.records.values() if s.record["sblsh"] == withdrawn]
    status = await gw.client.get("/api/v1/province/status", headers=gw.auth("admin"))
    assert status.status_code == 200 and status.json()["sent"] == 7 and status.json()["pending"] == 0
    assert (await gw.client.get("/api/v1/province/status", headers=gw.auth("clerk"))).status_code == 403


async def test_a_failing_platform_is_retried_with_back_off_and_a_restart_resumes(
    reporting_gateway: Gateway, platform: Platform
) -> None:
    gw = reporting_gateway
    application_id, acceptance = await gw.accepted_case()
    assert (await gw.move(application_id, "in_review")).status_code == 200
    clock = Clock()
    platform.sim.fail_next(2)
    async with reporter_for(gw, platform, clock) as reporter:
        first = await reporter.report_once()
        assert first.discovered == 2 and first.sent == 0 and first.failed == 1
        async with gw.db.read() as conn:
            rows = {r.position: r for r in await conn.execute(select(province_reports))}
        head, later = rows[min(rows)], rows[max(rows)]
        assert head.attempts == 1 and head.last_error == "HTTP 503" and head.state == "pending"
        assert head.next_attempt_at == clock.at + dt.timedelta(seconds=1)
        assert later.attempts == 0  # the later step waits for the earlier one
        assert (await reporter.report_once()).failed == 0  # backing off: nothing due, nothing sent
        assert platform.sim.state.attempts == 1
        clock.advance(1.5)
        assert (await reporter.report_once()).failed == 1
        async with gw.db.read() as conn:
            head = (
                await conn.execute(select(province_reports).where(province_reports.c.position == head.position))
            ).one()
        assert head.attempts == 2 and head.next_attempt_at == clock.at + dt.timedelta(seconds=2)
    # "Restart": a new reporter with nothing in memory picks up where the old one stopped.
    clock.advance(2.5)
    async with reporter_for(gw, platform, clock) as reporter:
        result = await reporter.drain()
    assert result.sent == 2 and result.failed == 0
    assert [(r["jllx"], r["bjzt"]) for r in records_of(platform, acceptance["tracking_number"])] == [
        ("SL", "accepted"),
        ("GC", "in_review"),
    ]
    assert platform.sim.state.rejected == []


async def test_a_report_claimed_by_a_reporter_that_died_is_sent_after_its_lease(
    reporting_gateway: Gateway, platform: Platform
) -> None:
    gw = reporting_gateway
    await gw.accepted_case()
    clock = Clock()
    async with reporter_for(gw, platform, clock) as reporter:
        assert await reporter.discover() == 1
        async with gw.db.transaction() as conn:  # claimed by a process that was then killed
            await conn.execute(
                update(province_reports).values(lease_until=clock.at + dt.timedelta(seconds=LEASE_SECONDS))
            )
        assert (await reporter.report_once()).sent == 0
        clock.advance(LEASE_SECONDS + 1)
        assert (await reporter.report_once()).sent == 1
    assert len(platform.sim.state.records) == 1


async def test_the_reconciliation_lists_a_planted_difference(
    reporting_gateway: Gateway, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = reporting_gateway
    await full_case(gw)
    await full_case(gw)
    async with reporter_for(gw, platform) as reporter:
        assert (await reporter.drain()).sent == 12
    today = district_today().isoformat()
    url = f"/api/v1/province/reconciliation?day={today}"
    clean = await gw.client.get(url, headers=gw.auth("admin"))
    assert clean.status_code == 200, clean.text
    assert clean.json()["ok"] is True and clean.json()["differences"] == []
    assert clean.json()["ours"]["approved"] == 2 and clean.json()["theirs"] == clean.json()["ours"]
    # The platform lost one approval.
    lost = next(k for k, s in platform.sim.state.records.items() if s.record["bjzt"] == "approved")
    async with aiohttp.ClientSession() as session, session.delete(f"{platform.url}/__sim__/records/{lost}") as r:
        assert r.status == 200
    response = await gw.client.get(url, headers=gw.auth("supervisor"))
    body = response.json()
    assert body["ok"] is False and body["differences"] == [{"status": "approved", "ours": 2, "theirs": 1}]
    assert (await gw.client.get(url, headers=gw.auth("officer"))).status_code == 403
    # The same from the command line (exit 1 naming the difference).
    settings = gw.settings
    monkeypatch.setenv("ONEWINDOW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ONEWINDOW_DATABASE_SCHEMA", settings.database_schema)
    monkeypatch.setenv("ONEWINDOW_PROVINCE_URL", platform.url)
    monkeypatch.setenv("ONEWINDOW_PROVINCE_HMAC_SECRET", "demo-province-secret")
    lines: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(str(x) for x in a)))
    code = await asyncio.to_thread(
        main, ["province", "reconcile", "--day", today, "--data-dir", str(settings.data_dir)]
    )
    assert code == 1
    assert "difference: approved: ours 2, platform 1" in lines


async def test_serve_runs_the_reporter_in_the_background(
    db_settings: Any, shared_simulators: Any, platform: Platform
) -> None:
    settings = msgspec.structs.replace(
        db_settings, province_url=platform.url, province_reporting=True, province_interval_seconds=0.1
    )
    async with served_gateway(settings, shared_simulators) as gw:
        _, acceptance = await gw.accepted_case()
        for _ in range(400):  # the task's rounds are 0.1 s apart: well within 20 s
            if records_of(platform, acceptance["tracking_number"]):
                break
            await asyncio.sleep(0.05)
    assert records_of(platform, acceptance["tracking_number"])[0]["jllx"] == "SL"


def test_the_platform_refuses_a_record_that_does_not_fit_its_schema() -> None:
    from demokit.simulators.province import validate

    record = {
        "sjwybs": uuid.uuid4().hex,
        "jllx": "SL",
        "xh": 2,
        "sblsh": "430302202612060000011",
        "sxbm": "0205006100",
        "sxmc": "重度残疾人护理补贴",
        "xzqhdm": "430302",
        "xtbs": "YUHU-ONEWINDOW",
        "blbmdm": "civil_affairs",
        "blbmmc": "民政",
        "bjzt": "accepted",
        "fssj": "2026-12-06T10:00:00+08:00",
        "blr": "clerk:430302001000",
        "slbz": "1",
        "slsj": "2026-12-06T10:00:00+08:00",
        "sqrlx": "1",
        "sqrxm": "张三",  # not masked
        "sqrzjlx": "111",
        "sqrzjhm": "430302********123X",
        "sldwdm": "430302001000",
        "cnsx": 15,
        "cnbjrq": "2026-12-28",
        "extra": 1,
    }
    assert validate(record) == ["sqrxm: must be masked (脱敏)", "extra: not a field of a SL record"]


async def test_the_reporter_reconciles_yesterday_once_a_day_and_logs_differences(
    reporting_gateway: Gateway, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    from catalog.calendar import DISTRICT_TZ
    from gateway.province.reporter import DailyReconciliation

    gw = reporting_gateway
    await full_case(gw)
    clock = Clock()
    daily = DailyReconciliation()
    async with reporter_for(gw, platform, clock) as reporter:
        assert (await reporter.drain()).sent == 6
        lost = next(k for k, s in platform.sim.state.records.items() if s.record["bjzt"] == "delivered")
        platform.sim.drop(lost)
        tomorrow = district_today() + dt.timedelta(days=1)
        clock.at = dt.datetime.combine(tomorrow, dt.time(1), tzinfo=DISTRICT_TZ).astimezone(dt.UTC)
        assert await daily(reporter) is None  # before 02:00: not yet
        clock.advance(3600 * 2)
        with caplog.at_level("WARNING", logger="onewindow.province"):
            result = await daily(reporter)
        assert result is not None and result.day == district_today()
        assert f"provincial reconciliation of {district_today()}: delivered: ours 1, platform 0" in caplog.messages
        assert await daily(reporter) is None  # once a day
    # A platform that does not answer: one warning, tried again an hour later, not every round.
    daily = DailyReconciliation()
    async with reporter_for(gw, Platform(platform.sim, "http://127.0.0.1:9"), clock) as unreachable:
        caplog.clear()
        with caplog.at_level("WARNING", logger="onewindow.province"):
            assert await daily(unreachable) is None
            assert await daily(unreachable) is None
        assert len(caplog.messages) == 1 and "did not answer" in caplog.messages[0]
        assert daily.next_try == clock.at + DailyReconciliation.RETRY_AFTER


async def test_two_reporters_at_once_send_each_step_once_in_order(
    reporting_gateway: Gateway, platform: Platform
) -> None:
    gw = reporting_gateway
    cases = [await full_case(gw) for _ in range(3)]
    async with reporter_for(gw, platform) as one, reporter_for(gw, platform) as other:
        results = await asyncio.gather(one.drain(), other.drain(), one.drain())
    assert sum(r.sent for r in results) == 18 and all(r.failed == 0 for r in results)
    assert platform.sim.state.attempts == 18  # no step sent twice
    assert platform.sim.state.rejected == []  # the platform saw every case's steps in order
    for _, acceptance in cases:
        assert [r["xh"] for r in records_of(platform, acceptance["tracking_number"])] == [2, 3, 4, 5, 6, 7]
