"""Intake over HTTP on SQLite and PostgreSQL, with the department simulators answering the certificate lookups:
filing with prefill, 代办 routing, uploads (content sniffing, size cap, dedupe), acceptance, bad input that writes
nothing, and no plaintext personal data at rest."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from catalog.catalog import Catalog
from catalog.codes import mod37_36_check_char
from gateway.context import context_of
from gateway.intake import purge, uploads
from gateway.intake.deps import provide_intake
from tests.gateway.intake.fixtures import (
    BIRTH_ITEM,
    CARE_ITEM,
    COMMUNITY,
    GRID,
    JPEG,
    ONE_CERT_ITEM,
    OTHER_GRID,
    PDF,
    PNG,
    STREET,
    Gateway,
    stored_files,
    today_local,
)


def fields(response: Any) -> dict[str, str]:
    body = response.json()
    return {e["field"]: e["message"] for e in body.get("errors", [])}


async def test_create_prefills_certificates_and_masks_the_applicant(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    response = await gateway.create(
        gateway.body(citizen, address="湖南省湘潭市雨湖区雨湖路街道雨湖社区3栋2单元", grid=GRID)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/applications/{body['id']}"
    assert body["status"] == "draft"
    assert body["item"]["code"] == CARE_ITEM and body["item"]["name"] == "重度残疾人护理补贴"
    assert body["filing_unit"] == body["handling_unit"] == STREET
    assert body["grid"] == GRID
    states = {m["key"]: m for m in body["materials"]}
    assert states["application_form"]["state"] == "missing"  # applicant-sourced materials start missing
    assert states["application_form"]["source"] == "applicant"
    for key in ("resident_id_card", "disability_certificate", "household_register"):
        material = states[key]
        assert material["state"] == "prefilled", material
        assert material["source"] == "certificate"
        certificate = material["certificate"]
        assert certificate["type_key"] == key
        assert certificate["identifier"].startswith("1.2.156.3005.2.")
        assert certificate["holder_name"] != citizen.name and certificate["holder_name"].startswith(citizen.name[0])
    assert body["missing"] == ["application_form"]
    text = response.text
    for secret in (citizen.id_number, citizen.name, citizen.phone):
        assert secret not in text
    assert body["applicant"]["id_number"].startswith(citizen.id_number[:6]) and "*" in body["applicant"]["id_number"]


async def test_applicant_sourced_only_and_unavailable_department(gateway: Gateway) -> None:
    """A department that cannot be reached leaves its materials unavailable with the reason, within the budget."""
    gateway.sims.set_faults("public_security", "error_rate=1")
    citizen = gateway.citizen("resident_id_card")
    response = await gateway.create(gateway.body(citizen, item=ONE_CERT_ITEM))
    assert response.status_code == 201, response.text
    (material,) = [m for m in response.json()["materials"] if m["key"] == "resident_id_card"]
    assert material["state"] == "unavailable" and material["reason"]
    gateway.sims.clear_faults()


async def test_create_with_accept_is_one_transaction(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card")
    response = await gateway.create(gateway.body(citizen, item=ONE_CERT_ITEM, accept=True))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "accepted"
    number = body["tracking_number"]
    assert number.startswith("430302" + today_local().strftime("%Y%m%d"))
    assert len(number) == 21 and number[-1] == mod37_36_check_char(number[:-1])
    assert len(body["query_code"]) == 8
    item = context_of(gateway.app).catalog.item(ONE_CERT_ITEM)
    assert item is not None
    calendar = provide_intake(context_of(gateway.app)).calendar
    assert body["deadline"] == calendar.deadline(today_local(), item.promised_days).date.isoformat()
    view = (await gateway.get(body["id"])).json()
    assert [h["status"] for h in view["history"]] == ["draft", "accepted"]
    assert view["tracking_number"] == number


async def test_accept_true_with_missing_materials_stores_nothing(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    before = await gateway.counts()
    response = await gateway.create(gateway.body(citizen, accept=True))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = fields(response)
    assert set(errors) == {"materials.application_form"}
    assert response.json()["missing"] == ["application_form"]
    after = await gateway.counts()
    # The certificate pulls made for the attempt are audited (in a transaction of their own, since the
    # application's never happens); nothing of the application is stored.
    assert after["audit_records"] > before["audit_records"]
    assert {k: v for k, v in after.items() if k != "audit_records"} == {
        k: v for k, v in before.items() if k != "audit_records"
    }


async def test_bad_input_names_the_field_and_writes_nothing(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card")
    good = gateway.body(citizen, item=ONE_CERT_ITEM)
    # A concept (unpublished) item and an expired one, added to the loaded catalog.
    catalog: Catalog = context_of(gateway.app).catalog
    base = catalog.item(ONE_CERT_ITEM)
    assert base is not None
    concept = msgspec.structs.replace(base, code="0720099100", status="concept")
    expired = msgspec.structs.replace(base, code="0720098100", valid_until=today_local() - dt.timedelta(days=1))
    context_of(gateway.app).catalog = Catalog(
        items=(*catalog.items, concept, expired),
        departments=catalog.departments,
        certificate_types=catalog.certificate_types,
        units=catalog.units,
        etag="test",
    )
    bad_id = citizen.id_number[:-1] + ("0" if citizen.id_number[-1] != "0" else "1")
    cases: list[tuple[dict[str, Any], str, int]] = [
        (good | {"applicant": good["applicant"] | {"id_number": bad_id}}, "applicant.id_number", 422),
        (good | {"applicant": good["applicant"] | {"id_number": "43030219991340123X"}}, "applicant.id_number", 422),
        (good | {"applicant": good["applicant"] | {"id_number": "123"}}, "applicant.id_number", 422),
        (good | {"item_code": "9999999999"}, "item_code", 422),
        (good | {"item_code": "0720099100"}, "item_code", 422),
        (good | {"item_code": "0720098100"}, "item_code", 422),
        ({k: v for k, v in good.items() if k != "consent"}, "consent", 422),
        (good | {"consent": False}, "consent", 422),
        (good | {"applicant": good["applicant"] | {"phone": "12345"}}, "applicant.phone", 422),
        (good | {"applicant": good["applicant"] | {"name": ""}}, "applicant.name", 422),
        (good | {"applicant": good["applicant"] | {"grid": OTHER_GRID}}, "applicant.grid", 422),
        (good | {"applicant": good["applicant"] | {"grid": STREET}}, "applicant.grid", 422),
        ({k: v for k, v in good.items() if k != "applicant"}, "applicant", 422),
    ]
    before = await gateway.counts()
    for body, field, status in cases:
        response = await gateway.create(body)
        assert response.status_code == status, (field, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in fields(response), (field, response.text)
    # Every problem at once.
    response = await gateway.create({"item_code": "", "applicant": {"id_number": "x"}, "consent": False})
    assert {"item_code", "applicant.id_number", "applicant.name", "applicant.phone", "consent"} <= set(fields(response))
    # Malformed JSON: 400; a wrongly typed field: 4xx naming it.
    response = await gateway.client.post(
        "/api/v1/applications",
        content=b'{"item_code": "0720003100", "applicant": {',
        headers=gateway.auth("clerk") | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    response = await gateway.create(good | {"consent": "yes"})
    assert response.status_code in (400, 422) and "consent" in response.text
    assert await gateway.counts() == before
    # Only clerks file; a supervisor is refused before anything happens.
    assert (await gateway.create(good, who="supervisor")).status_code == 403
    assert (await gateway.create(good, who="officer")).status_code == 403
    assert (await gateway.client.post("/api/v1/applications", json=good)).status_code == 401
    assert await gateway.counts() == before


async def test_bodies_are_json_by_media_type_and_strictly_typed(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card")
    purpose = "核对张三家庭情况以便发放补贴"
    good = gateway.body(citizen, item=ONE_CERT_ITEM, purpose=purpose)
    before = await gateway.counts()
    cases: list[tuple[dict[str, Any], str]] = [
        (good | {"consent": "true"}, "consent"),
        (good | {"consent": 1}, "consent"),
        (good | {"accept": "false"}, "accept"),
        (good | {"applicant": good["applicant"] | {"phone": 13800138000}}, "applicant.phone"),
        (good | {"applicant": good["applicant"] | {"nickname": "三儿"}}, "applicant.nickname"),
        (good | {"purpose": 42}, "purpose"),
    ]
    for body, field in cases:
        response = await gateway.create(body)
        assert response.status_code == 422, (field, response.text)
        assert list(fields(response)) == [field], response.text
        # Neither the purpose nor the applicant's data come back in a refusal.
        for value in (purpose, citizen.id_number, citizen.name, citizen.phone):
            assert value not in response.text
    raw = msgspec.json.encode(good)
    for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "application/x-www-form-urlencoded"}):
        response = await gateway.client.post(
            "/api/v1/applications", content=raw, headers=gateway.auth("clerk") | headers
        )
        assert response.status_code == 415, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert list(fields(response)) == ["Content-Type"] and purpose not in response.text
    assert await gateway.counts() == before
    # A JSON media type with parameters, or a +json one, is JSON.
    for media in ("application/json; charset=utf-8", "application/vnd.onewindow+json"):
        response = await gateway.client.post(
            "/api/v1/applications", content=raw, headers=gateway.auth("clerk") | {"Content-Type": media}
        )
        assert response.status_code == 201, (media, response.text)


async def test_community_window_files_a_street_item_on_behalf(gateway: Gateway) -> None:
    """代办: routed to the parent street, visible to both windows and to the item's department only."""
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    response = await gateway.create(gateway.body(citizen, grid=GRID), who="community_clerk")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filing_unit"] == COMMUNITY and body["handling_unit"] == STREET
    application_id = body["id"]
    for who, status in [
        ("community_clerk", 200),
        ("clerk", 200),
        ("other_clerk", 404),
        ("officer", 200),
        ("ps_officer", 404),
        ("supervisor", 200),
    ]:
        assert (await gateway.get(application_id, who=who)).status_code == status, who
    # A street window does not file community items.
    response = await gateway.create(gateway.body(citizen, item="0220001200"))
    assert response.status_code == 422 and "item_code" in fields(response)
    # A community's own item stays with the community.
    response = await gateway.create(gateway.body(citizen, item="0220001200"), who="community_clerk")
    assert response.status_code == 201 and response.json()["handling_unit"] == COMMUNITY


async def test_uploads_are_sniffed_capped_deduplicated(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    application_id = (await gateway.create(gateway.body(citizen))).json()["id"]
    before = await gateway.counts()
    # An executable named .pdf, HTML, an empty file: refused by content.
    for content in (b"MZ\x90\x00\x03" + b"\x00" * 64, b"<html>%PDF-</html>", b"GIF89a" + b"\x00" * 10):
        response = await gateway.upload(application_id, "application_form", content, filename="scan.pdf")
        assert response.status_code == 415, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await gateway.upload(application_id, "application_form", b"")).status_code in (400, 422)
    assert (await gateway.upload(application_id, "no_such_material")).status_code == 404
    assert (await gateway.upload(application_id, "application_form", who="other_clerk")).status_code == 404
    url = f"/api/v1/applications/{application_id}/materials/application_form"
    # A form that is not multipart is another media type; a multipart form without the file part is invalid.
    response = await gateway.client.post(url, data={"note": "no file part"}, headers=gateway.auth("clerk"))
    assert response.status_code == 415
    response = await gateway.client.post(url, files={"note": (None, "no file part")}, headers=gateway.auth("clerk"))
    assert response.status_code in (400, 422)
    # Over the configured cap: 413.
    settings = context_of(gateway.app).settings
    context_of(gateway.app).settings = msgspec.structs.replace(settings, upload_max_bytes=1024)
    try:
        response = await gateway.upload(application_id, "application_form", PDF + b"\x00" * 2048)
        assert response.status_code == 413, response.text
    finally:
        context_of(gateway.app).settings = settings
    # Beyond the request limit itself (the cap plus multipart framing): 413 before the body is read.
    response = await gateway.upload(
        application_id, "application_form", PDF + b"\x00" * (settings.upload_max_bytes + 70_000)
    )
    assert response.status_code == 413
    assert await gateway.counts() == before
    assert stored_files(settings.data_dir / "uploads") == set()

    # PNG named .pdf and JPEG named .txt are fine: the content decides.
    response = await gateway.upload(application_id, "application_form", PNG, filename="form.pdf")
    assert response.status_code == 200, response.text
    material = response.json()
    assert material["state"] == "provided" and material["file"]["content_type"] == "image/png"
    digest = hashlib.sha256(PNG).hexdigest()
    assert material["file"]["sha256"] == digest
    stored = settings.data_dir / "uploads" / digest[:2] / digest[2:4] / digest
    assert PNG not in stored.read_bytes()  # sealed at rest
    assert uploads.read(settings.data_dir, digest, cipher=context_of(gateway.app).cipher) == PNG
    # The same scan for another material of another application: one file.
    other = (await gateway.create(gateway.body(citizen))).json()["id"]
    assert (await gateway.upload(other, "application_form", PNG)).status_code == 200
    assert (await gateway.upload(application_id, "guardian_id_card", JPEG, filename="x.txt")).status_code == 200
    assert stored_files(settings.data_dir / "uploads") == {digest, hashlib.sha256(JPEG).hexdigest()}
    view = (await gateway.get(application_id)).json()
    states = {m["key"]: m["state"] for m in view["materials"]}
    assert states["application_form"] == "provided" and states["guardian_id_card"] == "provided"
    # A retried upload with the same Idempotency-Key is answered from the first, not stored twice.
    key = {"Idempotency-Key": "scan-retry-1"}
    first = await gateway.upload(application_id, "application_form", JPEG, headers=key)
    audit_rows = (await gateway.counts())["audit_records"]
    again = await gateway.upload(application_id, "application_form", JPEG, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
    assert (await gateway.counts())["audit_records"] == audit_rows


async def test_accept_assigns_number_code_and_deadline(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    application_id = (await gateway.create(gateway.body(citizen))).json()["id"]
    before = await gateway.counts()
    response = await gateway.accept(application_id)
    assert response.status_code == 422, response.text
    assert set(fields(response)) == {"materials.application_form"}
    assert await gateway.counts() == before
    etag = (await gateway.get(application_id)).headers["etag"]
    assert (await gateway.upload(application_id, "application_form")).status_code == 200
    # The upload changed the application: the old ETag is stale.
    response = await gateway.accept(application_id, **{"If-Match": etag})
    assert response.status_code == 412, response.text
    etag = (await gateway.get(application_id)).headers["etag"]
    response = await gateway.accept(application_id, **{"If-Match": etag})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["id"] == application_id
    calendar = provide_intake(context_of(gateway.app)).calendar
    assert body["deadline"] == calendar.deadline(today_local(), 15).date.isoformat()
    assert body.get("deadline_estimated", False) is False
    # Accepting twice: 409 naming what is allowed; uploads are closed.
    again = await gateway.accept(application_id)
    assert again.status_code == 409 and again.json()["allowed"] == ["in_review", "withdrawn"]
    assert again.json()["status"] == 409 and again.json()["current_status"] == "accepted"
    upload = await gateway.upload(application_id, "application_form", PNG)
    assert upload.status_code == 409 and upload.json()["status"] == 409
    assert upload.json()["current_status"] == "accepted"
    assert upload.json()["allowed"] == ["draft", "correction_required"]
    # Another unit's clerk cannot even see it.
    assert (await gateway.accept(application_id, who="other_clerk")).status_code == 404


async def test_concurrent_acceptances_get_distinct_numbers(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card")
    ids = []
    for _ in range(8):
        response = await gateway.create(gateway.body(citizen, item=ONE_CERT_ITEM))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    results = await asyncio.gather(*(gateway.accept(i) for i in ids))
    assert [r.status_code for r in results] == [200] * len(ids), [r.text for r in results]
    numbers = [r.json()["tracking_number"] for r in results]
    assert len(set(numbers)) == len(numbers)
    assert sorted(int(n[14:20]) for n in numbers) == list(range(1, len(ids) + 1))


async def test_birth_registration_is_complete_from_certificates(gateway: Gateway) -> None:
    """An item whose required materials all come from certificates needs no upload (when the citizen has them)."""
    citizen = next(
        (
            c
            for c in gateway.sims.citizens
            if {"birth_medical_certificate", "resident_id_card", "household_register"} <= set(c.certificate_types)
        ),
        None,
    )
    if citizen is None:
        pytest.skip("no simulated citizen holds a birth medical certificate")
    response = await gateway.create(gateway.body(citizen, item=BIRTH_ITEM, accept=True))
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert response.json()["status"] == "accepted"


async def test_drafts_are_purged_with_their_uploads(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    draft = (await gateway.create(gateway.body(citizen))).json()["id"]
    assert (await gateway.upload(draft, "application_form", JPEG)).status_code == 200
    assert (await gateway.upload(draft, "guardian_id_card", PNG)).status_code == 200
    kept, _ = await gateway.accepted_case()  # uploads PDF; accepted cases are never purged
    shared = (await gateway.create(gateway.body(citizen))).json()["id"]
    assert (await gateway.upload(shared, "application_form", PDF)).status_code == 200
    service = provide_intake(context_of(gateway.app))
    # Not yet expired: nothing happens.
    result = await service.purge_drafts(file_grace_seconds=0)
    assert (result.drafts, result.files) == (0, 0)
    later = service.now() + dt.timedelta(hours=gateway.settings.draft_retention_hours + 1)
    result = await service.purge_drafts(now=later, file_grace_seconds=0)
    assert result.drafts == 2  # the two drafts; the accepted case stays
    assert result.files == 2  # JPEG and PNG; the PDF is still referenced by the accepted case
    assert (await gateway.get(draft)).status_code == 404
    assert (await gateway.get(shared)).status_code == 404
    assert (await gateway.get(kept)).status_code == 200
    assert stored_files(gateway.settings.data_dir / "uploads") == {hashlib.sha256(PDF).hexdigest()}


async def test_no_plaintext_personal_data_in_the_database_file(gateway: Gateway) -> None:
    if context_of(gateway.app).database.dialect != "sqlite":
        pytest.skip("reads the SQLite file's bytes")
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    address = "湖南省湘潭市雨湖区雨湖路街道白石古莲城7栋301室"
    body = gateway.body(citizen, address=address)
    created = (await gateway.create(body)).json()
    assert (await gateway.upload(created["id"], "application_form")).status_code == 200
    accepted = (await gateway.accept(created["id"])).json()
    assert (await gateway.get(created["id"])).status_code == 200
    number = accepted["tracking_number"]
    assert (
        await gateway.client.get(f"/api/v1/track/{number}", params={"code": accepted["query_code"]})
    ).status_code == 200
    database_file = Path(str(gateway.db.engine.url.database))
    paths = [p for p in database_file.parent.glob(database_file.name + "*") if p.is_file()]
    blob = b"".join(p.read_bytes() for p in paths)
    assert blob
    for secret in (citizen.id_number, citizen.name, citizen.phone, address, "白石古莲城7栋301室"):
        for encoding in ("utf-8", "utf-16-le"):
            assert secret.encode(encoding) not in blob, secret
    assert accepted["query_code"].encode() not in blob


async def test_the_periodic_purge_task_runs(gateway: Gateway) -> None:
    assert purge.purge_interval(72) == purge.MAX_INTERVAL_SECONDS
    assert purge.purge_interval(0.001) == purge.MIN_INTERVAL_SECONDS
    citizen = gateway.citizen("resident_id_card")
    draft = (await gateway.create(gateway.body(citizen, item=ONE_CERT_ITEM))).json()["id"]
    settings = context_of(gateway.app).settings
    context_of(gateway.app).settings = msgspec.structs.replace(
        settings, draft_retention_hours=0.0, draft_purge_interval_seconds=0.05
    )
    try:
        async with purge.draft_purge_lifespan(gateway.app):
            for _ in range(200):
                await asyncio.sleep(0.02)
                if (await gateway.get(draft)).status_code == 404:
                    break
    finally:
        context_of(gateway.app).settings = settings
    assert (await gateway.get(draft)).status_code == 404
    assert (await purge.purge_drafts(gateway.app)).drafts == 0
