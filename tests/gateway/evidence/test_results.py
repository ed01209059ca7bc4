"""A completed case whose result is a certificate: the district issues it (GB/T 36904 identifier with a valid check
character, signed with the gateway's issuer key, published in the trust store), stores it, and a later
application is prefilled with it (level A) — its signature verified against the published key."""

from __future__ import annotations

import msgspec
from sqlalchemy import select

from catalog.codes import certificate_identifier_problem
from connectors.model import Certificate
from connectors.trust import TrustStore
from gateway.certificates.issuer import DISTRICT_ISSUER, DISTRICT_ISSUER_CODE
from gateway.events.tables import outbox_events
from tests.gateway.evidence.helpers import (
    DISABILITY_SUBSIDY_ITEM,
    SUBSISTENCE_ITEM,
    audit_details,
    citizen_without,
    commit,
    materials,
)
from tests.gateway.intake.fixtures import PDF, Gateway


async def test_result_certificate_issued_and_reused(gateway: Gateway) -> None:
    citizen = citizen_without(
        gateway, "subsistence_allowance_certificate", "resident_id_card", "household_register", "disability_certificate"
    )
    created = await gateway.create(gateway.body(citizen, SUBSISTENCE_ITEM, commitments=["income_statement"]))
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]
    for key in ("application_form", "verification_authorization"):
        assert (await gateway.upload(case_id, key, content=PDF)).status_code == 200
    accepted = await gateway.accept(case_id)
    assert accepted.status_code == 200, accepted.text
    tracking = accepted.json()["tracking_number"]
    assert (await gateway.move(case_id, "in_review")).status_code == 200
    approved = await gateway.move(case_id, "approved", result="准予纳入最低生活保障，自次月起发放")
    assert approved.status_code == 200, approved.text
    issued = await audit_details(gateway, "certificate.issued")
    assert len(issued) == 1 and issued[0]["detail"]["application"] == case_id
    # The outbox carries it too, thin (ids, status, type — nothing of the holder), in the approving transaction.
    async with gateway.db.read() as conn:
        rows = (
            await conn.execute(
                select(outbox_events.c.type, outbox_events.c.data).where(outbox_events.c.application_id == case_id)
            )
        ).all()
    events = [(r.type, r.data) for r in rows if r.type == "certificate.issued"]
    assert len(events) == 1
    data = events[0][1]
    assert data["status"] == "approved" and data["certificate_type"] == "subsistence_allowance_certificate"
    assert citizen.id_number not in str(data) and citizen.name not in str(data)

    # A later application that needs a 最低生活保障证, at the same window: prefilled from what the district issued.
    later = await gateway.create(gateway.body(citizen, DISABILITY_SUBSIDY_ITEM))
    assert later.status_code == 201, later.text
    material = materials(later.json())["subsistence_allowance_certificate"]
    assert material["state"] == "prefilled" and material["level"] == "A"
    shown = material["certificate"]
    identifier = shown["identifier"]
    assert certificate_identifier_problem(identifier) is None
    assert f".{DISTRICT_ISSUER_CODE}.{tracking}.001." in identifier
    assert shown["department"] == DISTRICT_ISSUER

    # As issued, from the store: the signature verifies against the key the gateway published.
    read = await gateway.client.get(
        f"/api/v1/applications/{later.json()['id']}/materials/subsistence_allowance_certificate/certificate",
        params={"purpose": "核对低保证"},
        headers=gateway.auth("clerk"),
    )
    assert read.status_code == 200, read.text
    record = read.json()
    certificate = msgspec.convert(record["certificate"], Certificate)
    trust = TrustStore.load(gateway.settings.data_dir / "trust")
    verification = trust.verify(certificate, expected_holder=citizen.id_number, department=DISTRICT_ISSUER)
    assert verification.ok, verification
    tampered = msgspec.structs.replace(certificate, holder_name=certificate.holder_name + "甲")
    assert trust.verify(tampered).status == "bad_signature"


async def test_denied_case_issues_nothing(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "household_register")
    created = await gateway.create(gateway.body(citizen, SUBSISTENCE_ITEM))
    case_id = created.json()["id"]
    for key in ("application_form", "verification_authorization"):
        assert (await gateway.upload(case_id, key, content=PDF)).status_code == 200
    assert (await commit(gateway, case_id, "income_statement")).status_code == 200
    assert (await gateway.accept(case_id)).status_code == 200
    assert (await gateway.move(case_id, "in_review")).status_code == 200
    denied = await gateway.move(case_id, "denied", note="收入超过标准", result="不予纳入")
    assert denied.status_code == 200, denied.text
    assert await gateway.audited("certificate.issued") == 0
