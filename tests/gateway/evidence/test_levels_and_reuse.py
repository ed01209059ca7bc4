"""Trust levels on every material, the clerk's verification against the original (C → B), acceptance enforcing
the catalog's lowest level, and a verified copy reused at another window — over the real simulators, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib

from sqlalchemy import select, update

from gateway.evidence.tables import evidence_materials
from gateway.privacy import FieldCipher
from tests.gateway.evidence.helpers import SUBSISTENCE_ITEM, audit_details, citizen_without, materials, verify
from tests.gateway.intake.fixtures import JPEG, OTHER_STREET, PDF, STREET, Gateway, today_local

#: Public security answers with certificates whose signatures do not verify: ID card and household register must
#: come as scans.
NO_PUBLIC_SECURITY = "tampered=1"


async def _care_case_with_scans(gateway: Gateway) -> tuple[str, str]:
    """A care-subsidy draft (clerk of the street) whose ID card and household register are uploads: (id, ID no)."""
    gateway.sims.set_faults("public_security", NO_PUBLIC_SECURITY)
    citizen = citizen_without(gateway, "subsistence_allowance_certificate", "disability_certificate")
    created = await gateway.create(gateway.body(citizen))
    assert created.status_code == 201, created.text
    body = created.json()
    levels = {k: m.get("level") for k, m in materials(body).items()}
    assert levels["disability_certificate"] == "A"  # prefilled from the disabled persons' federation
    assert levels["resident_id_card"] is None and levels["household_register"] is None
    application_id = body["id"]
    for key, content in (("application_form", PDF), ("resident_id_card", JPEG), ("household_register", PDF)):
        uploaded = await gateway.upload(application_id, key, content=content)
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["level"] == "C"
    return application_id, citizen.id_number


async def test_levels_verification_and_acceptance_rule(gateway: Gateway) -> None:
    application_id, _ = await _care_case_with_scans(gateway)
    view = (await gateway.get(application_id)).json()
    shown = materials(view)
    assert shown["household_register"]["level"] == "C"
    assert shown["household_register"]["level_set_by"].startswith("token:")
    assert shown["household_register"]["level_set_at"]
    assert shown["disability_certificate"]["level"] == "A"

    # The catalog asks B of the household register: an upload alone is refused, naming the material and level.
    refused = await gateway.accept(application_id)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert [e["field"] for e in problem["errors"]] == ["materials.household_register"]
    assert "needs trust level B" in problem["errors"][0]["message"]
    assert problem["levels"] == {"household_register": "B"}

    # Verification needs the clerk to say the original was seen; and only a C can become B.
    not_seen = await verify(gateway, application_id, "household_register", original_seen=False)
    assert not_seen.status_code == 422 and not_seen.json()["errors"][0]["field"] == "original_seen"
    not_upload = await verify(gateway, application_id, "disability_certificate")
    assert not_upload.status_code == 409
    stale = await verify(gateway, application_id, "household_register", if_match=f'"{application_id}.1"')
    assert stale.status_code == 412
    outsider = await verify(gateway, application_id, "household_register", who="other_clerk")
    assert outsider.status_code == 404

    etag = (await gateway.get(application_id)).headers["ETag"]
    verified = await verify(gateway, application_id, "household_register", if_match=etag)
    assert verified.status_code == 200, verified.text
    assert verified.json()["level"] == "B"
    assert await gateway.audited("material.verified") == 1
    # Again: answered as it stands, nothing recorded twice.
    again = await verify(gateway, application_id, "household_register")
    assert again.status_code == 200 and again.json()["level"] == "B"
    assert await gateway.audited("material.verified") == 1

    accepted = await gateway.accept(application_id)
    assert accepted.status_code == 200, accepted.text


async def test_resubmission_after_a_correction_holds_the_same_levels(gateway: Gateway) -> None:
    """A corrected scan comes in at C: resubmitting it where the catalog asks B is refused like an acceptance would
    be (422 naming the material and the level), until the clerk verifies the new copy against the original."""
    application_id, _ = await _care_case_with_scans(gateway)
    assert (await verify(gateway, application_id, "household_register")).status_code == 200
    assert (await gateway.accept(application_id)).status_code == 200
    assert (await gateway.move(application_id, "in_review")).status_code == 200
    asked = await gateway.move(application_id, "correction_required", note="户口簿页面不清晰，请重新提交")
    assert asked.status_code == 200, asked.text

    replaced = await gateway.upload(application_id, "household_register", content=PDF + b" rescanned")
    assert replaced.status_code == 200 and replaced.json()["level"] == "C"
    refused = await gateway.move(application_id, "in_review", who="clerk", note="已补正")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert [e["field"] for e in problem["errors"]] == ["materials.household_register"]
    assert problem["levels"] == {"household_register": "B"}
    assert (await gateway.get(application_id)).json()["status"] == "correction_required"  # nothing changed

    assert (await verify(gateway, application_id, "household_register")).status_code == 200
    resumed = await gateway.move(application_id, "in_review", who="clerk", note="已补正")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "in_review"


async def test_idempotent_verification(gateway: Gateway) -> None:
    application_id, _ = await _care_case_with_scans(gateway)
    headers = gateway.auth("clerk") | {"Idempotency-Key": "verify-1"}
    url = f"/api/v1/applications/{application_id}/materials/household_register/verification"
    first = await gateway.client.post(url, json={"original_seen": True}, headers=headers)
    second = await gateway.client.post(url, json={"original_seen": True}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    other = await gateway.client.post(url, json={"original_seen": True, "valid_until": "2099-01-01"}, headers=headers)
    assert other.status_code == 422


async def test_verified_copy_reused_at_another_window(gateway: Gateway) -> None:
    first_id, id_number = await _care_case_with_scans(gateway)
    until = today_local() + dt.timedelta(days=30)
    assert (await verify(gateway, first_id, "household_register", valid_until=until.isoformat())).status_code == 200
    assert (await verify(gateway, first_id, "resident_id_card")).status_code == 200
    assert (await gateway.accept(first_id)).status_code == 200

    # Another street's clerk files 最低生活保障 for the same citizen: both copies come back as B, with provenance.
    citizen = next(c for c in gateway.sims.citizens if c.id_number == id_number)
    second = await gateway.create(gateway.body(citizen, SUBSISTENCE_ITEM), who="other_clerk")
    assert second.status_code == 201, second.text
    body = second.json()
    assert body["filing_unit"] == OTHER_STREET
    reused = materials(body)["household_register"]
    assert reused["state"] == "prefilled" and reused["level"] == "B"
    assert reused["evidence"]["application_id"] == first_id
    assert reused["evidence"]["unit"] == STREET
    assert reused["evidence"]["valid_until"] == until.isoformat()
    assert reused["evidence"]["verified_at"]
    assert materials(body)["resident_id_card"]["level"] == "B"
    # The application form is item-specific: never reused.
    assert materials(body)["application_form"]["state"] == "missing"
    # Shown again from the stored row, with where it came from.
    stored = materials((await gateway.get(body["id"], who="other_clerk")).json())["household_register"]
    assert stored["evidence"]["application_id"] == first_id and stored["level"] == "B"
    # The prefill rate tells a copy verified here (brought) from one reused (no paper this time).
    first_rate = (
        await gateway.client.get(
            f"/api/v1/evidence/prefill-rate/applications/{first_id}", headers=gateway.auth("clerk")
        )
    ).json()
    assert (first_rate["certificate"], first_rate["verified_here"], first_rate["uploaded"]) == (1, 2, 1)
    assert first_rate["rate"] == 0.25
    second_rate = (
        await gateway.client.get(
            f"/api/v1/evidence/prefill-rate/applications/{body['id']}", headers=gateway.auth("other_clerk")
        )
    ).json()
    assert (second_rate["verified"], second_rate["verified_here"]) == (2, 0)
    records = await audit_details(gateway, "evidence.reused")
    assert len(records) == 1
    assert records[0]["purpose"] == f"application:{body['id']}"
    assert set(records[0]["detail"]["materials"]) == {"household_register", "resident_id_card"}
    # The second window's clerk can see the reused copy itself: the scan first verified, served from the store.
    scan = await gateway.client.get(
        f"/api/v1/applications/{body['id']}/materials/household_register/scan",
        params={"purpose": "核对复用的户口簿复印件"},
        headers=gateway.auth("other_clerk"),
    )
    assert scan.status_code == 200, scan.text
    assert scan.content == PDF and scan.headers["content-type"] == "application/pdf"
    read = next(r for r in await audit_details(gateway, "personal_data.read") if r["detail"].get("subject") == "scan")
    assert read["detail"]["source"] == "evidence" and read["detail"]["material"] == "household_register"


async def test_expired_altered_and_withdrawn_copies_are_not_offered(gateway: Gateway) -> None:
    first_id, id_number = await _care_case_with_scans(gateway)
    assert (await verify(gateway, first_id, "household_register")).status_code == 200
    assert (await verify(gateway, first_id, "resident_id_card")).status_code == 200
    citizen = next(c for c in gateway.sims.citizens if c.id_number == id_number)

    async def offered() -> dict[str, str | None]:
        created = await gateway.create(gateway.body(citizen, SUBSISTENCE_ITEM), who="other_clerk")
        assert created.status_code == 201, created.text
        shown = materials(created.json())
        return {key: shown[key].get("level") for key in ("household_register", "resident_id_card")}

    assert await offered() == {"household_register": "B", "resident_id_card": "B"}

    # The household register's copy expired yesterday; the ID card's stored content was replaced at rest.
    cipher: FieldCipher = gateway.app.state["context"].cipher
    async with gateway.db.transaction() as conn:
        await conn.execute(
            update(evidence_materials)
            .where(evidence_materials.c.material_key == "household_register")
            .values(valid_until=today_local() - dt.timedelta(days=1))
        )
        row = (
            await conn.execute(
                select(evidence_materials).where(evidence_materials.c.material_key == "resident_id_card")
            )
        ).one()

        forged = cipher.encrypt(
            base64.b64encode(b"%PDF-1.7 another document").decode(),
            table="evidence_materials",
            column="content_enc",
            row_id=row.id,
        )
        await conn.execute(
            update(evidence_materials).where(evidence_materials.c.id == row.id).values(content_enc=forged)
        )
    assert row.file_sha256 == hashlib.sha256(JPEG).hexdigest()
    assert await offered() == {"household_register": None, "resident_id_card": None}

    # Fresh copies again, then the applicant withdraws consent for the household register.
    async with gateway.db.transaction() as conn:
        await conn.execute(
            update(evidence_materials)
            .where(evidence_materials.c.material_key == "household_register")
            .values(valid_until=today_local())
        )
    assert (await offered())["household_register"] == "B"
    bad = await gateway.client.post(
        "/api/v1/evidence/consent-withdrawals", json={"id_number": "123"}, headers=gateway.auth("clerk")
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "id_number"
    withdrawn = await gateway.client.post(
        "/api/v1/evidence/consent-withdrawals",
        json={"id_number": id_number, "material_key": "household_register"},
        headers=gateway.auth("other_clerk"),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json() == {"withdrawn": 1, "material_key": "household_register"}
    assert (await offered())["household_register"] is None
    assert await gateway.audited("evidence.consent_withdrawn") == 1


async def test_concurrent_verifications_record_once(gateway: Gateway) -> None:
    application_id, _ = await _care_case_with_scans(gateway)
    answers = await asyncio.gather(*(verify(gateway, application_id, "household_register") for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.json()["level"] for a in answers} == {"B"}
    assert await gateway.audited("material.verified") == 1
    async with gateway.db.read() as conn:
        kept = (await conn.execute(select(evidence_materials.c.id))).all()
    assert len(kept) == 1
