"""The prefill rate: required materials satisfied without paper (A, B, D) over all satisfied ones, per application
and by item, unit and period, in the caller's scope; the same function the reports call."""

from __future__ import annotations

from gateway.evidence.rates import prefill_rates
from tests.gateway.evidence.helpers import SUBSISTENCE_ITEM
from tests.gateway.intake.fixtures import CARE_ITEM, OTHER_STREET, PDF, STREET, Gateway, today_local


async def test_prefill_rate_per_application_item_unit_and_period(gateway: Gateway) -> None:
    care_id, _ = await gateway.accepted_case()  # ID card, disability certificate, household register: A; form: C
    citizen = gateway.citizen("resident_id_card", "household_register", skip=1)
    created = await gateway.create(
        gateway.body(citizen, SUBSISTENCE_ITEM, commitments=["income_statement"]), who="other_clerk"
    )
    subsistence_id = created.json()["id"]
    for key in ("application_form", "verification_authorization"):
        assert (await gateway.upload(subsistence_id, key, content=PDF, who="other_clerk")).status_code == 200
    assert (await gateway.accept(subsistence_id, who="other_clerk")).status_code == 200
    # A draft never counts in the period figures.
    draft = await gateway.create(gateway.body(citizen, CARE_ITEM))
    assert draft.status_code == 201

    one = await gateway.client.get(
        f"/api/v1/evidence/prefill-rate/applications/{subsistence_id}", headers=gateway.auth("supervisor")
    )
    assert one.status_code == 200, one.text
    assert one.json()["levels"] == {
        "application_form": "C",
        "resident_id_card": "A",
        "household_register": "A",
        "income_statement": "D",
        "verification_authorization": "C",
    }
    assert one.json()["rate"] == 0.6
    hidden = await gateway.client.get(
        f"/api/v1/evidence/prefill-rate/applications/{subsistence_id}", headers=gateway.auth("clerk")
    )
    assert hidden.status_code == 404

    today = today_local().isoformat()
    report = await gateway.client.get(
        "/api/v1/evidence/prefill-rate",
        params={"start": today, "end": today, "group": "item"},
        headers=gateway.auth("supervisor"),
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["totals"]["applications"] == 2
    assert body["totals"]["certificate"] == 5 and body["totals"]["commitment"] == 1
    assert body["totals"]["uploaded"] == 3 and body["totals"]["rate"] == round(6 / 9, 4)
    rows = {r["key"]: r for r in body["rows"]}
    assert rows[CARE_ITEM]["rate"] == 0.75 and rows[SUBSISTENCE_ITEM]["rate"] == 0.6
    assert rows[CARE_ITEM]["name"] == "重度残疾人护理补贴"

    by_unit = await gateway.client.get(
        "/api/v1/evidence/prefill-rate", params={"group": "unit"}, headers=gateway.auth("supervisor")
    )
    assert {r["key"] for r in by_unit.json()["rows"]} == {STREET, OTHER_STREET}
    by_month = await gateway.client.get(
        "/api/v1/evidence/prefill-rate", params={"group": "month"}, headers=gateway.auth("supervisor")
    )
    assert [r["key"] for r in by_month.json()["rows"]] == [today[:7]]

    # A clerk sees their own unit's cases only.
    mine = await gateway.client.get("/api/v1/evidence/prefill-rate", headers=gateway.auth("clerk"))
    assert mine.json()["totals"]["applications"] == 1 and mine.json()["totals"]["rate"] == 0.75

    bad = await gateway.client.get(
        "/api/v1/evidence/prefill-rate", params={"group": "week"}, headers=gateway.auth("supervisor")
    )
    assert bad.status_code == 400
    backwards = await gateway.client.get(
        "/api/v1/evidence/prefill-rate",
        params={"start": "2026-02-01", "end": "2026-01-01"},
        headers=gateway.auth("supervisor"),
    )
    assert backwards.status_code == 422
    assert (
        await gateway.client.get("/api/v1/evidence/prefill-rate", headers=gateway.auth("system"))
    ).status_code == 403

    # The function the reports call, with their own connection and filters.
    async with gateway.db.read() as conn:
        direct = await prefill_rates(conn, start=today_local(), end=today_local(), group="day", unit=OTHER_STREET)
    assert direct.totals.applications == 1 and direct.totals.rate == 0.6
    assert [r.key for r in direct.rows] == [today]
    assert care_id
