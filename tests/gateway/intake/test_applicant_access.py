"""Audited reads of personal data over HTTP (SQLite and PostgreSQL, simulators answering the lookups): the
applicant unmasked and a prefilled certificate as issued, for the case's scope only, each read recorded in the
audit log with its purpose and without the values, the chain still verifying afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys

import httpx
import msgspec
import pytest
from sqlalchemy import func, select

from demokit.simulators.seed import Citizen
from gateway.audit import log as audit_log
from gateway.audit.tables import audit_records
from gateway.context import context_of
from gateway.intake.uploads import upload_path
from tests.gateway.intake.fixtures import GRID, PDF, Gateway

ADDRESS = "湖南省湘潭市雨湖区雨湖路街道雨湖社区3栋2单元"
PURPOSE = "审核重度残疾人护理补贴申请"


async def filed_case(gateway: Gateway) -> tuple[str, Citizen]:
    """A care-subsidy case with an address and grid, completed with an upload and accepted by the street clerk."""
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    created = await gateway.create(gateway.body(citizen, address=ADDRESS, grid=GRID))
    assert created.status_code == 201, created.text
    application_id = str(created.json()["id"])
    assert (await gateway.upload(application_id, "application_form")).status_code == 200
    assert (await gateway.accept(application_id)).status_code == 200
    return application_id, citizen


async def read_applicant(
    gateway: Gateway, application_id: str, who: str, purpose: str | None = PURPOSE
) -> httpx.Response:
    params = {} if purpose is None else {"purpose": purpose}
    return await gateway.client.get(
        f"/api/v1/applications/{application_id}/applicant", params=params, headers=gateway.auth(who)
    )


async def read_certificate(
    gateway: Gateway, application_id: str, key: str, who: str = "officer", purpose: str | None = PURPOSE
) -> httpx.Response:
    params = {} if purpose is None else {"purpose": purpose}
    return await gateway.client.get(
        f"/api/v1/applications/{application_id}/materials/{key}/certificate",
        params=params,
        headers=gateway.auth(who),
    )


async def reads(gateway: Gateway) -> list[audit_log.AuditRecord]:
    async with gateway.db.read() as conn:
        rows = await conn.execute(
            select(audit_records).where(audit_records.c.action == "personal_data.read").order_by(audit_records.c.seq)
        )
        return [audit_log._record(r) for r in rows]


async def token_actor(gateway: Gateway, who: str) -> str:
    response = await gateway.client.get("/api/v1/me", headers=gateway.auth(who))
    assert response.status_code == 200, response.text
    return f"token:{response.json()['token_id']}"


async def assert_chain_intact(gateway: Gateway) -> None:
    result = await audit_log.verify(gateway.db, [context_of(gateway.app).audit_signer.public_key])
    assert result.ok, result.summary()


def as_text(record: audit_log.AuditRecord) -> str:
    return json.dumps(msgspec.to_builtins(record), ensure_ascii=False)


def plaintext(citizen: Citizen) -> list[str]:
    return [citizen.id_number, citizen.name, citizen.phone, ADDRESS]


async def test_officer_reads_the_applicant_and_the_read_is_audited(gateway: Gateway) -> None:
    application_id, citizen = await filed_case(gateway)
    # Everywhere else the applicant stays masked.
    view = (await gateway.get(application_id, who="officer")).json()
    assert citizen.name not in json.dumps(view, ensure_ascii=False)
    before = len(await reads(gateway))

    response = await read_applicant(gateway, application_id, "officer")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "application_id": application_id,
        "id_number": citizen.id_number,
        "name": citizen.name,
        "phone": citizen.phone,
        "address": ADDRESS,
        "grid": GRID,
        "purpose": PURPOSE,
    }

    records = await reads(gateway)
    assert len(records) == before + 1
    record = records[-1]
    assert record.actor == await token_actor(gateway, "officer")
    assert record.role == "officer"
    assert (record.object_type, record.object_id) == ("application", application_id)
    assert record.purpose == PURPOSE
    assert record.detail["fields"] == ["id_number", "name", "phone", "address"]
    assert record.detail["actor_scope"] == "civil_affairs"
    stored = as_text(record)
    for value in plaintext(citizen):
        assert value not in stored
    await assert_chain_intact(gateway)


async def test_window_and_supervisor_may_read_admin_and_system_may_not(gateway: Gateway) -> None:
    application_id, citizen = await filed_case(gateway)
    for who in ("clerk", "supervisor"):  # the receipt with the full name; a follow-up call (回访)
        response = await read_applicant(gateway, application_id, who, purpose="打印受理回执")
        assert response.status_code == 200, (who, response.text)
        assert response.json()["name"] == citizen.name
    assert [r.role for r in await reads(gateway)][-2:] == ["clerk", "supervisor"]
    before = len(await reads(gateway))
    for who in ("admin", "system"):
        response = await read_applicant(gateway, application_id, who)
        assert response.status_code == 403, (who, response.text)
        assert citizen.name not in response.text
    assert len(await reads(gateway)) == before


async def test_out_of_scope_reads_answer_404_like_a_missing_case_and_write_nothing(gateway: Gateway) -> None:
    application_id, citizen = await filed_case(gateway)
    before = (await gateway.counts())["audit_records"]
    missing = "0" * 32
    for who in ("ps_officer", "other_clerk"):  # another department's officer, another street's clerk
        out_of_scope = await read_applicant(gateway, application_id, who)
        nonexistent = await read_applicant(gateway, missing, who)
        assert out_of_scope.status_code == nonexistent.status_code == 404, out_of_scope.text
        assert out_of_scope.json()["title"] == nonexistent.json()["title"]
        assert citizen.name not in out_of_scope.text and citizen.id_number not in out_of_scope.text
        response = await read_certificate(gateway, application_id, "disability_certificate", who=who)
        assert response.status_code == 404, response.text
    assert (await gateway.counts())["audit_records"] == before


async def test_purpose_is_required_and_bounded(gateway: Gateway) -> None:
    application_id, _ = await filed_case(gateway)
    before = (await gateway.counts())["audit_records"]
    for purpose in (None, "", "   ", "审", "审" * 201):
        response = await read_applicant(gateway, application_id, "officer", purpose=purpose)
        assert response.status_code == 422, (purpose, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["purpose"]
    response = await read_certificate(gateway, application_id, "resident_id_card", purpose=None)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "purpose"
    assert (await gateway.counts())["audit_records"] == before
    # A number typed into the purpose never reaches the audit log in plaintext.
    typed = "核对申请人 13812345678 的材料"
    response = await read_applicant(gateway, application_id, "officer", purpose=typed)
    assert response.status_code == 200, response.text
    purpose = (await reads(gateway))[-1].purpose
    assert purpose is not None and "13812345678" not in purpose and purpose.startswith("核对申请人 138")


async def test_prefilled_certificate_as_issued_with_audit(gateway: Gateway) -> None:
    application_id, citizen = await filed_case(gateway)
    view = (await gateway.get(application_id, who="officer")).json()
    material = next(m for m in view["materials"] if m["key"] == "disability_certificate")
    identifier = material["certificate"]["identifier"]
    assert material["certificate"]["holder_name"] != citizen.name  # masked in the case view

    response = await read_certificate(gateway, application_id, "disability_certificate")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    certificate = body["certificate"]
    assert certificate["identifier"] == identifier
    assert certificate["type_key"] == "disability_certificate"
    assert certificate["holder_name"] == citizen.name
    assert certificate["holder_code"] == citizen.id_number
    assert certificate["signature"]["alg"] and certificate["signature"]["key_id"] and certificate["signature"]["value"]
    assert body["verification"]["status"] == "valid" and body["verification"]["usable"] is True
    assert body["verification"]["key_id"] == certificate["signature"]["key_id"]
    assert body["status_name"] == "有效"
    assert body["application_id"] == application_id and body["material_key"] == "disability_certificate"
    issued = next(c for c in citizen.certificates if c.identifier == identifier)
    assert certificate["number"] == issued.number

    record = (await reads(gateway))[-1]
    assert (record.object_type, record.object_id) == ("certificate", identifier)
    assert record.detail["application"] == application_id
    assert record.detail["material"] == "disability_certificate"
    assert record.purpose == PURPOSE and record.role == "officer"
    stored = as_text(record)
    for value in (citizen.id_number, citizen.name):
        assert value not in stored

    # A material that was uploaded, or a key the item does not have: no certificate to show.
    before = (await gateway.counts())["audit_records"]
    assert (await read_certificate(gateway, application_id, "application_form")).status_code == 404
    assert (await read_certificate(gateway, application_id, "no_such_material")).status_code == 404
    assert (await gateway.counts())["audit_records"] == before
    await assert_chain_intact(gateway)


async def read_scan(
    gateway: Gateway, application_id: str, key: str, who: str = "officer", purpose: str | None = PURPOSE
) -> httpx.Response:
    params = {} if purpose is None else {"purpose": purpose}
    return await gateway.client.get(
        f"/api/v1/applications/{application_id}/materials/{key}/scan", params=params, headers=gateway.auth(who)
    )


async def test_uploaded_scan_as_handed_in_with_audit(gateway: Gateway) -> None:
    application_id, citizen = await filed_case(gateway)
    response = await read_scan(gateway, application_id, "application_form")
    assert response.status_code == 200, response.text
    assert response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="application_form.pdf"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    record = (await reads(gateway))[-1]
    assert (record.object_type, record.object_id) == ("application", application_id)
    assert record.detail["subject"] == "scan" and record.detail["material"] == "application_form"
    assert record.detail["source"] == "upload"
    assert record.detail["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert record.purpose == PURPOSE and record.role == "officer"
    for value in (citizen.id_number, citizen.name):
        assert value not in as_text(record)

    # No purpose, another window, a prefilled material, an unknown key: refused, nothing audited.
    before = (await gateway.counts())["audit_records"]
    assert (await read_scan(gateway, application_id, "application_form", purpose=None)).status_code == 422
    assert (await read_scan(gateway, application_id, "application_form", who="other_clerk")).status_code == 404
    assert (await read_scan(gateway, application_id, "disability_certificate")).status_code == 404
    assert (await read_scan(gateway, application_id, "no_such_material")).status_code == 404
    # A file altered on disk no longer matches its recorded hash: not served.
    path = upload_path(gateway.settings.data_dir, hashlib.sha256(PDF).hexdigest())
    path.write_bytes(PDF + b"% altered")
    gone = await read_scan(gateway, application_id, "application_form")
    assert gone.status_code == 404 and "no longer kept" in gone.json()["detail"]
    assert (await gateway.counts())["audit_records"] == before
    await assert_chain_intact(gateway)


@pytest.mark.slow
async def test_reads_keep_the_chain_verifiable_from_the_command_line(gateway: Gateway) -> None:
    """`onewindow audit checkpoint` and `verify`, as an operator runs them, over the same database and data dir."""
    application_id, _ = await filed_case(gateway)
    for who in ("officer", "clerk", "supervisor"):
        assert (await read_applicant(gateway, application_id, who)).status_code == 200
    assert (await read_certificate(gateway, application_id, "resident_id_card")).status_code == 200
    async with gateway.db.read() as conn:
        total = int((await conn.execute(select(func.count()).select_from(audit_records))).scalar_one())
    code, out, err = await onewindow(gateway, "audit", "checkpoint")
    assert code == 0, err
    code, out, err = await onewindow(gateway, "audit", "verify")
    assert code == 0, out + err
    assert f"{total} records, chain intact" in out


async def onewindow(gateway: Gateway, *args: str) -> tuple[int, str, str]:
    settings = gateway.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    env["ONEWINDOW_DATABASE_URL"] = settings.database_url
    if settings.database_schema:
        env["ONEWINDOW_DATABASE_SCHEMA"] = settings.database_schema
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        "--data-dir",
        str(settings.data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()
