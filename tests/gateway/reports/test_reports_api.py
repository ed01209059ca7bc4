"""Reports over HTTP on SQLite and PostgreSQL: figures of real cases, formats, scope, versions, bad periods."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

from gateway.context import context_of
from gateway.identity import create_token
from gateway.reports.periods import current_start, previous_start
from tests.gateway.intake.fixtures import COMMUNITY, GRID, OTHER_STREET, STREET, Gateway, today_local


async def _completed_case(gw: Gateway) -> str:
    citizen = gw.citizen("resident_id_card", "disability_certificate", "household_register")
    created = await gw.create(gw.body(citizen, grid=GRID))
    assert created.status_code == 201, created.text
    application_id: str = created.json()["id"]
    assert (await gw.upload(application_id, "application_form")).status_code == 200
    assert (await gw.accept(application_id)).status_code == 200
    assert (await gw.move(application_id, "in_review")).status_code == 200
    assert (await gw.move(application_id, "approved", note="符合条件", result="同意")).status_code == 200
    return application_id


async def test_weekly_report_figures_formats_and_scope(gateway: Gateway) -> None:
    gw = gateway
    application_id = await _completed_case(gw)
    materials = [m for m in (await gw.get(application_id)).json()["materials"] if m["required"]]
    states = [m["state"] for m in materials]
    levels = [m["level"] for m in materials]
    monday = current_start("weekly", today_local())
    r = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": monday.isoformat()}, headers=gw.auth("supervisor")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    totals = body["totals"]
    assert {
        "received",
        "accepted",
        "completed",
        "completed_on_time",
        "on_time_rate",
        "overdue_open",
        "evaluations",
        "satisfaction_rate",
        "prefill_rate",
    } <= set(totals)
    assert (totals["received"], totals["accepted"], totals["completed"], totals["completed_on_time"]) == (1, 1, 1, 1)
    assert totals["on_time_rate"] == 1.0 and totals["satisfaction_rate"] is None
    # The certificate-sourced materials were prefilled (A), the form was a scan (C): the prefill rate counts by level.
    assert states.count("provided") == 1 and states.count("prefilled") >= 1
    assert levels.count("C") == 1 and levels.count("A") == states.count("prefilled")
    expected = (levels.count("A"), levels.count("A") + levels.count("C"))
    assert (totals["materials_prefilled"], totals["materials_satisfied"]) == expected
    assert body["stored"] is False  # the week is not over
    rows = {(row["breakdown"], row["code"]): row for row in body["rows"]}
    assert rows[("street", STREET)]["completed"] == 1
    assert rows[("community", COMMUNITY)]["completed"] == 1
    assert rows[("street", OTHER_STREET)]["completed"] == 0
    assert rows[("department", "civil_affairs")]["accepted"] == 1

    # A clerk reads their street and what lies under it; another street answers 404.
    community = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": monday.isoformat(), "unit": COMMUNITY}, headers=gw.auth("clerk")
    )
    assert community.status_code == 200 and community.json()["totals"]["completed"] == 1
    other = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": monday.isoformat(), "unit": OTHER_STREET}, headers=gw.auth("clerk")
    )
    assert other.status_code == 404
    grid = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": monday.isoformat(), "unit": GRID}, headers=gw.auth("supervisor")
    )
    assert grid.status_code == 404

    csv = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": monday.isoformat(), "format": "csv"}, headers=gw.auth("supervisor")
    )
    assert csv.status_code == 200 and csv.headers["content-disposition"].startswith("attachment")
    assert csv.content.startswith(b"\xef\xbb\xbf")
    assert "雨湖路街道" in csv.content.decode("utf-8-sig")
    xlsx = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": monday.isoformat(), "format": "xlsx"}, headers=gw.auth("supervisor")
    )
    assert xlsx.status_code == 200 and xlsx.headers["content-disposition"].startswith("attachment")
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as book:
        workbook = book.read("xl/workbook.xml").decode()
    for sheet in ("汇总", "街道", "社区", "部门", "事项"):
        assert sheet in workbook

    svg = await gw.client.get(
        "/api/v1/reports/weekly/chart.svg",
        params={"start": monday.isoformat(), "chart": "departments"},
        headers=gw.auth("supervisor"),
    )
    assert svg.status_code == 200 and svg.text.startswith("<svg") and "<rect" in svg.text
    page = await gw.client.get(
        "/api/v1/reports/weekly/page", params={"start": monday.isoformat()}, headers=gw.auth("supervisor")
    )
    assert page.status_code == 200 and page.text.count("<svg") == 3


async def test_bad_period_and_roles(gateway: Gateway) -> None:
    gw = gateway
    tuesday = current_start("weekly", today_local()) + dt.timedelta(days=1)
    r = await gw.client.get(
        "/api/v1/reports/weekly", params={"start": tuesday.isoformat()}, headers=gw.auth("supervisor")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "start"
    r = await gw.client.get("/api/v1/reports/monthly", params={"start": "2026-03-02"}, headers=gw.auth("supervisor"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "start"
    r = await gw.client.get("/api/v1/reports/monthly", params={"start": "2026-03-01"}, headers=gw.auth("officer"))
    assert r.status_code == 403
    token, _ = await create_token(context_of(gw.app).database, role="supervisor", unit=STREET)
    gw.tokens["street_supervisor"] = token
    r = await gw.client.get(
        "/api/v1/reports/monthly",
        params={"start": "2026-03-01", "unit": OTHER_STREET},
        headers=gw.auth("street_supervisor"),
    )
    assert r.status_code == 404


async def test_regenerating_keeps_earlier_versions(gateway: Gateway) -> None:
    gw = gateway
    last_week = previous_start("weekly", current_start("weekly", today_local()))
    params = {"start": last_week.isoformat()}
    first = await gw.client.get("/api/v1/reports/weekly", params=params, headers=gw.auth("supervisor"))
    assert first.status_code == 200 and first.json()["version"] == 1 and first.json()["stored"] is True
    again = await gw.client.post("/api/v1/reports/weekly/generate", params=params, headers=gw.auth("supervisor"))
    assert again.status_code == 201 and again.json()["version"] == 2
    assert again.json()["sha256"] == first.json()["sha256"]  # nothing changed in a closed week
    versions = await gw.client.get("/api/v1/reports/weekly/versions", params=params, headers=gw.auth("supervisor"))
    assert [v["version"] for v in versions.json()["items"]] == [1, 2]
    old = await gw.client.get("/api/v1/reports/weekly", params=params | {"version": "1"}, headers=gw.auth("supervisor"))
    assert old.json()["generated_at"] == first.json()["generated_at"]
