"""Commitments (告知承诺制): level D with the catalog's text, refused where the catalog does not allow one, a check
(事后核查) opened at acceptance and due in the item's working days; a failed check flags the case for the
supervisors."""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from typing import Any

from sqlalchemy import update

from catalog.calendar import CalendarEstimateWarning, cached_calendar
from gateway.evidence.tables import evidence_checks
from gateway.settings import Settings
from tests.gateway.evidence.helpers import SUBSISTENCE_ITEM, audit_details, commit, materials
from tests.gateway.intake.fixtures import PDF, Gateway, today_local


async def _subsistence_draft(gateway: Gateway, skip: int = 0) -> str:
    citizen = gateway.citizen("resident_id_card", "household_register", skip=skip)
    created = await gateway.create(gateway.body(citizen, SUBSISTENCE_ITEM))
    assert created.status_code == 201, created.text
    application_id: str = created.json()["id"]
    for key in ("application_form", "verification_authorization"):
        assert (await gateway.upload(application_id, key, content=PDF)).status_code == 200
    return application_id


async def _accepted_with_commitment(gateway: Gateway, skip: int = 0) -> tuple[str, dict[str, Any]]:
    application_id = await _subsistence_draft(gateway, skip)
    committed = await commit(gateway, application_id, "income_statement")
    assert committed.status_code == 200, committed.text
    accepted = await gateway.accept(application_id)
    assert accepted.status_code == 200, accepted.text
    checks = await gateway.client.get("/api/v1/evidence/checks?status=open", headers=gateway.auth("officer"))
    assert checks.status_code == 200
    check = next(c for c in checks.json()["items"] if c["application_id"] == application_id)
    return application_id, check


async def test_commitment_is_level_d_with_its_text(gateway: Gateway) -> None:
    application_id = await _subsistence_draft(gateway)
    # Not signed, or a material the catalog does not allow it for: 422 naming it, nothing changed.
    unsigned = await commit(gateway, application_id, "income_statement", agreed=False)
    assert unsigned.status_code == 422 and unsigned.json()["errors"][0]["field"] == "agreed"
    refused = await commit(gateway, application_id, "application_form")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "materials.application_form"
    assert materials((await gateway.get(application_id)).json())["application_form"]["level"] == "C"

    committed = await commit(gateway, application_id, "income_statement")
    assert committed.status_code == 200, committed.text
    body = committed.json()
    assert body["level"] == "D" and body["state"] == "provided"
    assert body["commitment"].startswith("本人承诺所填报的家庭收入")
    assert await gateway.audited("material.committed") == 1


async def test_commitment_refused_at_filing_names_the_material(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "household_register")
    before = await gateway.counts()
    refused = await gateway.create(
        gateway.body(citizen, SUBSISTENCE_ITEM, commitments=["income_statement", "verification_authorization"])
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["commitments.verification_authorization"]
    assert await gateway.counts() == before
    created = await gateway.create(gateway.body(citizen, SUBSISTENCE_ITEM, commitments=["income_statement"]))
    assert created.status_code == 201
    assert materials(created.json())["income_statement"]["level"] == "D"


async def test_check_opened_at_acceptance_and_passed(gateway: Gateway) -> None:
    application_id, check = await _accepted_with_commitment(gateway)
    assert check["application_id"] == application_id
    settings: Settings = gateway.settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalendarEstimateWarning)
        due = cached_calendar(settings.config_dir).deadline(today_local(), 20).date
    assert check["due_on"] == due.isoformat()
    assert check["material_key"] == "income_statement" and check["status"] == "open"
    assert check["commitment"].startswith("本人承诺")
    # Only the department's officer or a supervisor records it; another department's officer does not see it.
    url = f"/api/v1/evidence/checks/{check['id']}/outcome"
    assert (await gateway.client.post(url, json={"passed": True}, headers=gateway.auth("clerk"))).status_code == 403
    other = await gateway.client.post(url, json={"passed": True}, headers=gateway.auth("ps_officer"))
    assert other.status_code == 404
    passed = await gateway.client.post(url, json={"passed": True}, headers=gateway.auth("officer"))
    assert passed.status_code == 200, passed.text
    assert passed.json()["status"] == "passed"
    again = await gateway.client.post(url, json={"passed": False, "note": "x"}, headers=gateway.auth("officer"))
    assert again.status_code == 409
    assert await gateway.audited("evidence.check_passed") == 1
    assert await gateway.audited("application.flagged") == 0


async def test_failed_check_flags_the_case_for_supervisors(gateway: Gateway) -> None:
    application_id, check = await _accepted_with_commitment(gateway)
    url = f"/api/v1/evidence/checks/{check['id']}/outcome"

    async def summary() -> dict[str, Any]:
        answer = await gateway.client.get("/api/v1/supervision/summary", headers=gateway.auth("supervisor"))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    before = await summary()
    assert before["totals"]["flagged"] == 0 and before["totals"]["checks_overdue"] == 0
    async with gateway.db.transaction() as conn:  # the check's due date passes
        await conn.execute(
            update(evidence_checks)
            .where(evidence_checks.c.id == check["id"])
            .values(due_on=today_local() - dt.timedelta(days=1))
        )
    assert (await summary())["totals"]["checks_overdue"] == 1
    no_note = await gateway.client.post(url, json={"passed": False}, headers=gateway.auth("officer"))
    assert no_note.status_code == 422 and no_note.json()["errors"][0]["field"] == "note"
    failed = await gateway.client.post(
        url, json={"passed": False, "note": "核查发现申请人名下有未申报的房产"}, headers=gateway.auth("officer")
    )
    assert failed.status_code == 200, failed.text
    flagged = await gateway.client.get("/api/v1/evidence/checks?status=failed", headers=gateway.auth("supervisor"))
    assert [c["application_id"] for c in flagged.json()["items"]] == [application_id]
    records = await audit_details(gateway, "application.flagged")
    assert len(records) == 1 and records[0]["detail"]["reason"] == "commitment_check_failed"
    # The supervisors' summary counts the flagged case on its item's row and in the totals.
    after = await summary()
    assert after["totals"]["flagged"] == 1
    row = next(r for r in after["rows"] if r["item_code"] == SUBSISTENCE_ITEM)
    assert row["flagged"] == 1 and row["checks_overdue"] == 0  # recorded: no longer open
    # The clerk of the handling unit sees it too; another street's clerk does not.
    mine = await gateway.client.get("/api/v1/evidence/checks?status=failed", headers=gateway.auth("clerk"))
    assert mine.json()["total"] == 1
    theirs = await gateway.client.get("/api/v1/evidence/checks?status=failed", headers=gateway.auth("other_clerk"))
    assert theirs.json()["total"] == 0
    bad = await gateway.client.get("/api/v1/evidence/checks?status=nope", headers=gateway.auth("supervisor"))
    assert bad.status_code == 400


async def test_concurrent_outcomes_one_counts(gateway: Gateway) -> None:
    _, check = await _accepted_with_commitment(gateway)
    url = f"/api/v1/evidence/checks/{check['id']}/outcome"

    async def record(passed: bool) -> int:
        body = {"passed": passed, "note": "核查结论"}
        return (await gateway.client.post(url, json=body, headers=gateway.auth("officer"))).status_code

    statuses = sorted(await asyncio.gather(record(True), record(False), record(True), record(False)))
    assert statuses == [200, 409, 409, 409]
    assert await gateway.audited("evidence.check_passed") + await gateway.audited("evidence.check_failed") == 1
