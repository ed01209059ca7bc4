"""Trust store: each rejection reason, for both Ed25519 and ECDSA P-256 issuers; the shipped demo keys match."""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path

import msgspec
import pytest

from connectors.model import Signature
from connectors.trust import (
    TrustError,
    TrustStore,
    demo_trust_problems,
    issuer_algorithm,
    issuer_key_id,
    issuer_private_key,
    main,
    sign_as_department,
    write_demo_trust_files,
)
from tests.connectors.helpers import CONFIG_DIR, citizen_id, make_certificate

TODAY = dt.date(2026, 3, 1)
ALGORITHMS = {"public_security": "ed25519", "human_resources": "ecdsa-p256-sha256"}


@pytest.fixture(scope="module")
def store() -> TrustStore:
    return TrustStore.load(CONFIG_DIR / "trust")


def test_shipped_trust_files_match_the_demo_derivation() -> None:
    assert demo_trust_problems(CONFIG_DIR / "trust") == []
    assert main(["--check", str(CONFIG_DIR / "trust")]) == 0


def test_derivation_is_deterministic_and_per_department() -> None:
    a = issuer_private_key("health").private_numbers().private_value  # type: ignore[union-attr]
    b = issuer_private_key("health").private_numbers().private_value  # type: ignore[union-attr]
    assert a == b
    assert issuer_algorithm("health") == "ecdsa-p256-sha256" and issuer_algorithm("veterans") == "ed25519"
    raw = {
        code: issuer_private_key(code).public_key().public_bytes_raw()  # type: ignore[union-attr]
        for code in ("public_security", "civil_affairs", "disabled_persons", "veterans")
    }
    assert len(set(raw.values())) == 4
    with pytest.raises(ValueError):
        issuer_private_key("")


def test_tampered_trust_file_is_detected(tmp_path: Path) -> None:
    write_demo_trust_files(tmp_path)
    assert demo_trust_problems(tmp_path) == []
    veterans = tmp_path / "veterans.toml"
    other = (tmp_path / "civil_affairs.toml").read_text().split("public_key = ")[1]
    veterans.write_text(veterans.read_text().split("public_key = ")[0] + "public_key = " + other)
    assert any("veterans-demo-1: public key differs" in p for p in demo_trust_problems(tmp_path))
    assert main(["--check", str(tmp_path)]) == 1


def test_invalid_trust_file_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(
        '[[keys]]\nkey_id = "k"\ndepartment = "d"\nissuer_code = "c"\nalg = "rsa"\npublic_key = \'x\'\n'
    )
    with pytest.raises(TrustError, match=r"x\.toml: keys\[0\]\.alg: Invalid enum value 'rsa'"):
        TrustStore.load(tmp_path)
    (tmp_path / "x.toml").write_text(
        '[[keys]]\nkey_id = "k"\ndepartment = "d"\nissuer_code = "c"\nalg = "ed25519"\npublic_key = "nope"\n'
    )
    with pytest.raises(TrustError, match=r"x\.toml: keys\[0\]\.public_key: not a PEM public key"):
        TrustStore.load(tmp_path)


@pytest.mark.parametrize("department", list(ALGORITHMS))
def test_valid_certificate_verifies(store: TrustStore, department: str) -> None:
    certificate = make_certificate(1, department=department)
    assert certificate.signature is not None and certificate.signature.alg == ALGORITHMS[department]
    verdict = store.verify(certificate, expected_holder=certificate.holder_code, today=TODAY, department=department)
    assert verdict.ok and verdict.key_id == issuer_key_id(department)


@pytest.mark.parametrize("department", list(ALGORITHMS))
@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"holder_name": "李四"}, "bad_signature"),
        ({"status": "02"}, "bad_signature"),  # status edited after signing
        ({"attributes": {"address": "别处"}}, "bad_signature"),
    ],
)
def test_tampered_certificate_fails(store: TrustStore, department: str, change: dict[str, object], status: str) -> None:
    tampered = msgspec.structs.replace(make_certificate(2, department=department), **change)
    assert store.verify(tampered, today=TODAY, department=department).status == status


@pytest.mark.parametrize("department", list(ALGORITHMS))
def test_each_rejection_reason(store: TrustStore, department: str) -> None:
    def verdict(**kwargs: object) -> str:
        certificate = make_certificate(3, department=department, **kwargs)  # type: ignore[arg-type]
        return store.verify(certificate, expected_holder=citizen_id(3), today=TODAY, department=department).status

    assert verdict(valid_until=dt.date(2026, 2, 28)) == "expired"
    assert verdict(valid_until=TODAY) == "valid"  # the last day still counts
    assert verdict(valid_until=None) == "valid"  # 长期
    for revoked in ("03", "04", "07"):
        assert verdict(status=revoked) == "revoked"
    assert verdict(status="05") == "expired"
    assert verdict(holder=citizen_id(4)) == "wrong_holder"
    assert verdict(sign=False) == "unsigned"

    certificate = make_certificate(3, department=department)
    assert certificate.signature is not None
    unknown = msgspec.structs.replace(
        certificate, signature=msgspec.structs.replace(certificate.signature, key_id="someone-else-1")
    )
    assert store.verify(unknown, today=TODAY).status == "untrusted_issuer"
    # Signed by this department's key, but claiming another issuer.
    impostor = sign_as_department(msgspec.structs.replace(certificate, issuer_code="1143030256889651QK"), department)
    assert store.verify(impostor, today=TODAY).status == "untrusted_issuer"
    # A key of this department never vouches for certificates pulled from another department.
    assert store.verify(certificate, today=TODAY, department="veterans").status == "untrusted_issuer"
    garbage = msgspec.structs.replace(
        certificate,
        signature=Signature(
            alg=certificate.signature.alg, key_id=certificate.signature.key_id, value="***not base64***"
        ),
    )
    assert store.verify(garbage, today=TODAY).status == "bad_signature"
    short = base64.b64encode(b"x" * 10).decode()
    truncated = msgspec.structs.replace(
        certificate, signature=msgspec.structs.replace(certificate.signature, value=short)
    )
    assert store.verify(truncated, today=TODAY).status == "bad_signature"


def test_invalid_identifier_is_rejected_even_when_signed(store: TrustStore) -> None:
    certificate = make_certificate(5)
    broken_check = certificate.identifier[:-1] + ("0" if certificate.identifier[-1] != "0" else "1")
    resigned = sign_as_department(msgspec.structs.replace(certificate, identifier=broken_check), "public_security")
    verdict = store.verify(resigned, today=TODAY)
    assert verdict.status == "invalid_identifier" and "MOD 37,36" in verdict.reason


def test_verification_is_fast(store: TrustStore) -> None:
    certificates = [make_certificate(n) for n in range(200)]
    started = time.process_time()
    for certificate in certificates:
        assert store.verify(certificate, today=TODAY).ok
    per_certificate = (time.process_time() - started) / len(certificates)
    # ~0.2 ms on the 2-core reference machine; a generous bound, and CPU time (not wall-clock time) so that other
    # processes on a busy CI box do not count.
    assert per_certificate < 0.002
