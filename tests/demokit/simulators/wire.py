"""Raw-protocol helpers for the simulator tests: each department's records back to the unified model, and the
civil-affairs request signature, written from docs/simulators.md (not from the simulators' own code)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
import uuid
from typing import Any
from xml.etree.ElementTree import Element

import msgspec
from yarl import URL

from connectors.model import Certificate, Signature

TYPE_KEYS = {
    "1110000034147425UL001": "resident_id_card",
    "1110000034147425UL002": "household_register",
    "1110000034147425UL003": "residence_permit",
    "11100000942518256Y001": "marriage_certificate",
    "11100000942518256Y002": "divorce_certificate",
    "11100000942518256Y003": "subsistence_allowance_certificate",
    "11100000942518256Y004": "extreme_poverty_certificate",
    "1110000056837233GB001": "social_security_card",
    "11100000603527777W001": "disability_certificate",
    "1110000009874357D9001": "birth_medical_certificate",
    "1110000009874357D9002": "only_child_parents_certificate",
    "1110000048348815WN001": "veteran_preferential_card",
}
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _certificate(fields: dict[str, Any], signature: dict[str, str] | None) -> Certificate:
    fields["type_key"] = TYPE_KEYS[fields["type_code"]]
    fields["signature"] = msgspec.convert(signature, Signature) if signature else None
    for name in ("issue_date", "valid_from", "valid_until"):
        fields[name] = _date(fields[name])
    return msgspec.convert(fields, Certificate)


def from_public_security(r: dict[str, Any]) -> Certificate:
    return _certificate(
        {
            "identifier": r["licenseId"], "number": r["licenseNo"], "type_code": r["licenseTypeCode"],
            "name": r["licenseName"], "holder_name": r["holderName"], "holder_code": r["holderIdNo"],
            "holder_code_type": r["holderIdType"], "issuer_name": r["issuerName"], "issuer_code": r["issuerCode"],
            "issue_date": r["issueDate"], "valid_from": r["validFrom"], "valid_until": r["validTo"],
            "status": r["statusCode"], "division_code": r["regionCode"], "attributes": r["ext"],
        },
        {"alg": r["sign"]["alg"], "key_id": r["sign"]["keyId"], "value": r["sign"]["value"]},
    )  # fmt: skip


def from_civil_affairs(r: dict[str, Any]) -> Certificate:
    return _certificate(
        {
            "identifier": r["zzbs"], "number": r["zzbh"], "type_code": r["zzlxdm"], "name": r["zzmc"],
            "holder_name": r["czzt"], "holder_code": r["czztdm"], "holder_code_type": r["czztdmlx"],
            "issuer_name": r["fzjg"], "issuer_code": r["fzjgdm"], "issue_date": r["fzrq"], "valid_from": r["yxqq"],
            "valid_until": r["yxqz"] or None, "status": r["zzzt"], "division_code": r["xzqh"],
            "attributes": r["kzxx"],
        },
        {"alg": r["qmsf"], "key_id": r["qmkid"], "value": r["qm"]},
    )  # fmt: skip


def from_human_resources(r: dict[str, Any]) -> Certificate:
    s = r["signature"]
    return _certificate(
        {
            "identifier": r["cert_id"], "number": r["card_no"], "type_code": r["type_code"], "name": r["title"],
            "holder_name": r["person_name"], "holder_code": r["person_id"], "holder_code_type": r["person_id_type"],
            "issuer_name": r["issuer"], "issuer_code": r["issuer_uscc"], "issue_date": r["issued_on"],
            "valid_from": r["valid_from"], "valid_until": r["valid_to"], "status": r["state"],
            "division_code": r["area_code"], "attributes": r["extra"],
        },
        {"alg": s["algorithm"], "key_id": s["key_id"], "value": s["value"]},
    )  # fmt: skip


def from_disabled_persons(record: Element) -> Certificate:
    def text(name: str) -> str:
        element = record.find(name)
        assert element is not None, f"<{name}> missing"
        return element.text or ""

    return _certificate(
        {
            "identifier": text("ZZBS"), "number": text("ZZBH"), "type_code": text("ZZLXDM"), "name": text("ZZMC"),
            "holder_name": text("CZZT"), "holder_code": text("CZZTDM"), "holder_code_type": text("CZZTDMLX"),
            "issuer_name": text("FZJG"), "issuer_code": text("FZJGDM"), "issue_date": text("FZRQ"),
            "valid_from": text("YXQQ"), "valid_until": text("YXQZ") or None, "status": text("ZZZT"),
            "division_code": text("XZQH"), "attributes": {"category": text("CJLB"), "grade": text("CJDJ")},
        },
        {"alg": text("QMSF"), "key_id": text("QMKID"), "value": text("QM")},
    )  # fmt: skip


def from_health(r: dict[str, Any]) -> Certificate:
    return _certificate(
        {
            "identifier": r["identifier"], "number": r["number"], "type_code": r["typeCode"], "name": r["name"],
            "holder_name": r["holder"], "holder_code": r["holderIdCard"], "holder_code_type": r["holderIdType"],
            "issuer_name": r["issuer"], "issuer_code": r["issuerCode"], "issue_date": r["issued"],
            "valid_from": r["validFrom"], "valid_until": r["validUntil"], "status": r["status"],
            "division_code": r["division"], "attributes": r["attributes"],
        },
        {"alg": r["signatureAlg"], "key_id": r["signatureKeyId"], "value": r["signatureValue"]},
    )  # fmt: skip


def from_veterans(r: dict[str, Any]) -> Certificate:
    return _certificate(
        {
            "identifier": r["cardId"], "number": r["cardNo"], "type_code": r["typeCode"], "name": r["cardName"],
            "holder_name": r["name"], "holder_code": r["idNumber"], "holder_code_type": r["idType"],
            "issuer_name": r["issuerName"], "issuer_code": r["issuerCode"], "issue_date": r["issueDate"],
            "valid_from": r["validFrom"], "valid_until": r["validTo"], "status": r["status"],
            "division_code": r["regionCode"], "attributes": r["ext"],
        },
        {"alg": r["sign"]["alg"], "key_id": r["sign"]["keyId"], "value": r["sign"]["value"]},
    )  # fmt: skip


# --- civil affairs request signing (docs/simulators.md §2) ---------------------------------------------------

CA_KEY = "onewindow"
CA_SECRET = "demo-civil-affairs-secret"


def ca_headers(
    url: URL,
    *,
    method: str = "GET",
    body: bytes = b"",
    secret: str = CA_SECRET,
    nonce: str | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, str]:
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    nonce = nonce or uuid.uuid4().hex
    pieces = sorted(tuple(p.partition("=")[::2]) for p in url.raw_query_string.split("&") if p)
    sorted_query = "&".join(f"{k}={v}" for k, v in pieces)
    text = "\n".join((method, url.raw_path, sorted_query, timestamp, nonce, hashlib.sha256(body).hexdigest()))
    signature = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()
    return {"X-Ca-Key": CA_KEY, "X-Ca-Timestamp": timestamp, "X-Ca-Nonce": nonce, "X-Ca-Signature": signature}


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
