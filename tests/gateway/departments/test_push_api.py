"""Departments push events for their cases over real HTTP (the gateway on a loopback port), on SQLite and
PostgreSQL: every event kind, the three ways to authenticate, idempotent replay, 409 naming what is possible, 404
for another department's case, 422 for an unknown type."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from connectors.auth import HmacRequestAuth
from connectors.registry import load_departments
from connectors.spec import HmacAuth, PushMutualTls
from demokit.simulators import Simulators
from gateway.cases.tables import application_history
from gateway.clients import TrustedProxies
from gateway.departments.auth import PushRequest, verify_client_certificate
from gateway.departments.tables import department_events
from gateway.problems import Unauthorized
from gateway.settings import Settings
from tests.gateway.departments.fixtures import served_gateway
from tests.gateway.intake.fixtures import PDF, Gateway

#: 退役报到 (veterans: pushes with a department token): the ID card from public security, two uploads.
VETERANS_ITEM = "0620001100"


def push_spec(code: str) -> HmacAuth:
    spec = next(s for s in load_departments() if s.code == code)
    assert isinstance(spec.push, HmacAuth)
    return spec.push


async def signed(path: str, body: bytes, *, spec: HmacAuth | None = None, secret: str | None = None) -> dict[str, str]:
    """Headers a civil-affairs system sends: the connectors' HMAC scheme with its push key."""
    spec = spec or push_spec("civil_affairs")
    if secret is not None:
        spec = msgspec.structs.replace(spec, secret=secret, secret_env="")
    headers = {"Content-Type": "application/json"}
    await HmacRequestAuth(spec, environ={}).apply("POST", path, "", body, headers)
    return headers


def event(application_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"evt-{uuid.uuid4().hex}", "type": kind, "application_id": application_id} | fields


async def push_hmac(gw: Gateway, body: dict[str, Any], department: str = "civil_affairs", **sign: Any) -> Any:
    path = f"/api/v1/departments/{department}/events"
    raw = msgspec.json.encode(body)
    return await gw.client.post(path, content=raw, headers=await signed(path, raw, **sign))


async def push_token(gw: Gateway, body: dict[str, Any], department: str, token: str) -> Any:
    return await gw.client.post(
        f"/api/v1/departments/{department}/events", json=body, headers={"Authorization": f"Bearer {token}"}
    )


async def history_count(gw: Gateway, application_id: str) -> int:
    async with gw.db.read() as conn:
        query = select(func.count()).where(application_history.c.application_id == application_id)
        return int((await conn.execute(query)).scalar_one())


async def veterans_case(gw: Gateway) -> tuple[str, dict[str, Any]]:
    citizen = gw.citizen("resident_id_card")
    created = await gw.create(gw.body(citizen, VETERANS_ITEM))
    assert created.status_code == 201, created.text
    application_id = created.json()["id"]
    for key in ("discharge_certificate", "introduction_letter"):
        assert (await gw.upload(application_id, key, PDF)).status_code == 200
    accepted = await gw.accept(application_id)
    assert accepted.status_code == 200, accepted.text
    return application_id, accepted.json()


async def test_hmac_department_takes_a_case_through_every_event_to_delivery(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, acceptance = await gw.accepted_case()
    steps: list[tuple[dict[str, Any], str]] = [
        (event(application_id, "in_review"), "in_review"),
        (
            event(
                application_id,
                "special_procedure_started",
                procedure={"kind": "inspection", "reason": "需入户核查护理情况"},
            ),
            "special_procedure",
        ),
        (event(application_id, "special_procedure_ended", note="核查完毕"), "in_review"),
        (event(application_id, "approved", result="准予发放重度残疾人护理补贴"), "approved"),
        (event(application_id, "delivered"), "delivered"),
    ]
    for body, status in steps:
        response = await push_hmac(gw, body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == status and answer["event_id"] == body["event_id"]
        assert answer["tracking_number"] == acceptance["tracking_number"]
        assert "Idempotent-Replayed" not in response.headers
    view = (await gw.get(application_id, who="officer")).json()
    assert view["status"] == "delivered" and view["result"] == "准予发放重度残疾人护理补贴"
    pushed = [h for h in view["history"] if h["by"] == "department:civil_affairs"]
    assert [h["status"] for h in pushed] == [s for _, s in steps]
    assert pushed[1]["note"] == "【现场勘验】需入户核查护理情况"
    # The citizen's tracking view shows the department's steps.
    track = await gw.client.get(
        f"/api/v1/track/{acceptance['tracking_number']}", params={"code": acceptance["query_code"]}
    )
    assert track.status_code == 200, track.text
    assert [t["status"] for t in track.json()["timeline"]][-5:] == [s for _, s in steps]
    assert await gw.audited("status.changed") == len(steps)


async def test_correction_required_names_what_is_missing_and_denied_needs_the_reason(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, _ = await gw.accepted_case()
    assert (await push_hmac(gw, event(application_id, "in_review"))).status_code == 200
    # correction_required without `missing`, and fields that do not belong to the type: 422 naming them.
    response = await push_hmac(gw, event(application_id, "correction_required", result="x"))
    assert response.status_code == 422, response.text
    assert {e["field"] for e in response.json()["errors"]} == {"missing", "result"}
    response = await push_hmac(
        gw, event(application_id, "correction_required", missing=["监护人签字的申请表", "近期体检报告"])
    )
    assert response.status_code == 200, response.text
    view = (await gw.get(application_id, who="officer")).json()
    assert view["status"] == "correction_required" and view["clock"]["paused"] is True
    assert view["history"][-1]["note"] == "需补齐补正：监护人签字的申请表；近期体检报告"
    # The window resubmits after uploading; then the department denies, which needs the reason.
    assert (await gw.upload(application_id, "application_form", b"%PDF-1.7 corrected")).status_code == 200
    assert (await gw.move(application_id, "in_review", who="clerk", note="已补正")).status_code == 200
    response = await push_hmac(gw, event(application_id, "denied", result="不予发放"))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "note"
    response = await push_hmac(gw, event(application_id, "denied", result="不予发放", note="不符合重度残疾条件"))
    assert response.status_code == 200 and response.json()["status"] == "denied"


async def test_a_replayed_event_id_answers_the_first_answer_and_adds_no_history(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, _ = await gw.accepted_case()
    body = event(application_id, "in_review")
    first = await push_hmac(gw, body)
    assert first.status_code == 200, first.text
    before = await history_count(gw, application_id)
    again = await push_hmac(gw, body)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await history_count(gw, application_id) == before
    async with gw.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(department_events))).scalar_one() == 1
    # Still the first answer once the case moved on and the same move would no longer be allowed.
    assert (await push_hmac(gw, event(application_id, "approved", result="准予"))).status_code == 200
    late = await push_hmac(gw, body)
    assert late.status_code == 200 and late.json() == first.json()


async def test_a_move_the_machine_does_not_allow_is_409_naming_the_possible_events(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, _ = await gw.accepted_case()
    before = await history_count(gw, application_id)
    response = await push_hmac(gw, event(application_id, "delivered"))
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["current_status"] == "accepted"
    assert problem["allowed"] == ["in_review"] and problem["allowed_statuses"] == ["in_review"]
    # special_procedure_ended is only the end of a special procedure, not another way into review.
    response = await push_hmac(gw, event(application_id, "special_procedure_ended"))
    assert response.status_code == 409 and response.json()["allowed"] == ["in_review"]
    assert await history_count(gw, application_id) == before
    assert (await push_hmac(gw, event(application_id, "in_review"))).status_code == 200
    response = await push_hmac(gw, event(application_id, "in_review"))
    assert response.status_code == 409
    assert response.json()["allowed"] == [
        "correction_required",
        "special_procedure_started",
        "approved",
        "denied",
    ]


async def test_another_departments_case_is_404_and_an_unknown_type_422(live_gateway: Gateway) -> None:
    gw = live_gateway
    veterans_id, _ = await veterans_case(gw)
    response = await push_hmac(gw, event(veterans_id, "in_review"))
    assert response.status_code == 404, response.text
    missing = await push_hmac(gw, event("0" * 32, "in_review"))
    assert missing.status_code == 404 and missing.json()["detail"] == response.json()["detail"].replace(
        veterans_id, "0" * 32
    )
    response = await push_hmac(gw, event(veterans_id, "teleported"))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "type"
    # A department without a connector file, or one that does not push.
    response = await push_token(gw, event(veterans_id, "in_review"), "tax_bureau", gw.tokens["dept_veterans"])
    assert response.status_code == 404
    async with gw.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(department_events))).scalar_one() == 0


async def test_department_tokens_are_bound_to_their_department(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, _ = await veterans_case(gw)
    body = event(application_id, "in_review")
    for token, status in (
        (gw.tokens["dept_disabled_persons"], 403),  # another department's token
        (gw.tokens["officer"], 403),  # staff are not a department system
        ("ow_not-a-token", 401),
    ):
        response = await push_token(gw, body, "veterans", token)
        assert response.status_code == status, response.text
    assert (await gw.client.post("/api/v1/departments/veterans/events", json=body)).status_code == 401
    # The wrong department's token on its own department's route still cannot reach this case.
    response = await push_token(gw, body, "disabled_persons", gw.tokens["dept_disabled_persons"])
    assert response.status_code == 404
    response = await push_token(gw, body, "veterans", gw.tokens["dept_veterans"])
    assert response.status_code == 200, response.text
    view = (await gw.get(application_id, who="supervisor")).json()
    assert view["history"][-1]["by"] == "department:veterans"


async def test_bad_hmac_signatures_are_refused_and_change_nothing(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, _ = await gw.accepted_case()
    before = await history_count(gw, application_id)
    body = event(application_id, "in_review")
    assert (await push_hmac(gw, body, secret="not-the-secret")).status_code == 401
    # Signed for one body, sent with another.
    path = "/api/v1/departments/civil_affairs/events"
    raw = msgspec.json.encode(body)
    headers = await signed(path, raw)
    tampered = msgspec.json.encode(body | {"type": "approved", "result": "准予"})
    assert (await gw.client.post(path, content=tampered, headers=headers)).status_code == 401
    # Unsigned, or a token instead of the configured signature.
    response = await gw.client.post(
        path, json=body, headers={"Authorization": f"Bearer {gw.tokens['dept_civil_affairs']}"}
    )
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem+json")
    # An old timestamp.
    old = dict(headers)
    spec = push_spec("civil_affairs")
    old[spec.timestamp_header] = str(int((dt.datetime.now(dt.UTC).timestamp() - 3600) * 1000))
    assert (await gw.client.post(path, content=raw, headers=old)).status_code == 401
    assert await history_count(gw, application_id) == before
    assert (await gw.client.post(path, content=raw, headers=headers)).status_code == 200


async def test_client_certificates_come_only_through_a_trusted_proxy(live_gateway: Gateway) -> None:
    """health pushes with a client certificate; a peer that is not a trusted proxy is refused before any check."""
    gw = live_gateway
    response = await gw.client.post(
        "/api/v1/departments/health/events",
        json=event("0" * 32, "in_review"),
        headers={"X-Client-Cert": "-----BEGIN CERTIFICATE-----"},
    )
    assert response.status_code == 401, response.text


def _certificate(
    common_name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer, issuer_name = issuer or (key, name)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return key, cert


def test_a_forwarded_client_certificate_must_come_from_the_departments_ca(tmp_path: Path) -> None:
    ca_key, ca = _certificate("health push CA")
    _, good = _certificate("health-push", (ca_key, ca.subject))
    _, stranger = _certificate("health-push")  # self-signed: not from the CA
    _, other = _certificate("someone-else", (ca_key, ca.subject))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    spec = PushMutualTls(ca_file="ca.pem", subject="health-push")
    proxies = TrustedProxies.parse("127.0.0.1")

    def request(cert: x509.Certificate, peer: str = "127.0.0.1") -> PushRequest:
        pem = quote(cert.public_bytes(serialization.Encoding.PEM).decode())
        return PushRequest(method="POST", path="/", query=[], headers={"X-Client-Cert": pem}, body=b"", peer=peer)

    principal = verify_client_certificate(spec, "health", request(good), trusted_proxies=proxies, data_dir=tmp_path)
    assert principal.department == "health" and principal.role.value == "department"
    for bad in (request(stranger), request(other), request(good, peer="192.0.2.7")):
        with pytest.raises(Unauthorized):
            verify_client_certificate(spec, "health", bad, trusted_proxies=proxies, data_dir=tmp_path)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(Unauthorized):
        verify_client_certificate(
            spec, "health", request(good), trusted_proxies=proxies, data_dir=tmp_path, now=lambda: later
        )


async def test_one_event_delivered_several_times_at_once_applies_once(live_gateway: Gateway) -> None:
    gw = live_gateway
    application_id, _ = await gw.accepted_case()
    before = await history_count(gw, application_id)
    body = event(application_id, "in_review")
    responses = await asyncio.gather(*(push_hmac(gw, body) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert len({r.text for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 3
    assert await history_count(gw, application_id) == before + 1
    # Two different events racing for one move: one wins, the other is told what is possible now.
    racing = await asyncio.gather(
        push_hmac(gw, event(application_id, "approved", result="准予")),
        push_hmac(gw, event(application_id, "denied", result="不予", note="不符合条件")),
    )
    assert sorted(r.status_code for r in racing) == [200, 409]
    assert await history_count(gw, application_id) == before + 2


#: 申领老年人优待证 (health: pushes with a client certificate): the ID card from public security, a photo.
HEALTH_ITEM = "0520001100"


async def test_health_pushes_with_a_client_certificate_forwarded_by_the_tls_proxy(
    db_settings: Settings, shared_simulators: Simulators, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(db_settings.config_dir, config)
    health = config / "departments" / "health.toml"
    health.write_text(
        health.read_text().replace('ca_file = "simulators/pki/ca.pem"\nsubject', 'ca_file = "push/ca.pem"\nsubject')
    )
    ca_key, ca = _certificate("health push CA")
    _, client = _certificate("health-push", (ca_key, ca.subject))
    _, intruder = _certificate("health-push")
    (db_settings.data_dir / "push").mkdir(parents=True)
    (db_settings.data_dir / "push" / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    settings = msgspec.structs.replace(db_settings, config_dir=config, trusted_proxies="127.0.0.1")
    async with served_gateway(settings, shared_simulators) as gw:
        created = await gw.create(gw.body(gw.citizen("resident_id_card"), HEALTH_ITEM))
        assert created.status_code == 201, created.text
        application_id = created.json()["id"]
        assert (await gw.upload(application_id, "photo", PDF)).status_code == 200
        assert (await gw.accept(application_id)).status_code == 200
        url = "/api/v1/departments/health/events"
        body = event(application_id, "in_review")

        def forwarded(cert: x509.Certificate) -> dict[str, str]:
            return {"X-Client-Cert": quote(cert.public_bytes(serialization.Encoding.PEM).decode())}

        assert (await gw.client.post(url, json=body, headers=forwarded(intruder))).status_code == 401
        response = await gw.client.post(url, json=body, headers=forwarded(client))
        assert response.status_code == 200, response.text
        view = (await gw.get(application_id, who="supervisor")).json()
        assert view["status"] == "in_review" and view["history"][-1]["by"] == "department:health"
