"""Issuer signatures on e-certificates: the demo issuer keys, signing, and the trust store that verifies.

DEMO ISSUER KEYS — NOT FOR PRODUCTION. The simulated department systems sign their certificates with keys derived
deterministically from the department code (`issuer_private_key`), so anyone who reads this file can forge them.
They exist so that `onewindow simulate` and the trust store shipped in ``config/trust/`` agree without exchanging
files. A real deployment replaces ``config/trust/*.toml`` with the public keys the issuing departments publish and
never calls `issuer_private_key`.

Trust store files: ``config/trust/<department>.toml``, each with one or more ``[[keys]]`` tables::

    [[keys]]
    key_id = "public_security-demo-1"
    department = "public_security"
    issuer_code = "1143030225095009BR"     # the issuer's USCC; a certificate naming another issuer is untrusted
    alg = "ed25519"                        # or "ecdsa-p256-sha256"
    public_key = '''-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----'''

`write_demo_trust_files` regenerates the demo files; `demo_trust_problems` checks that the shipped files match the
derivation (used by a test and by ``python -m connectors.trust --check``).

Verification is CPU-bound and runs once per certificate in bulk sync, so public keys are parsed once, when the
store loads, and `TrustStore.verify` does only the signature check and a few comparisons.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from catalog.codes import certificate_identifier_problem
from connectors.model import (
    STATUS_NAMES,
    Certificate,
    Signature,
    SignatureAlgorithm,
    Verification,
    canonical_bytes,
)

IssuerPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
IssuerPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

# --- demo issuer keys --------------------------------------------------------------------------------------

#: Label mixed into the derivation so these keys cannot collide with keys derived elsewhere from the same codes.
_DERIVATION_LABEL = b"onewindow/demo-issuer-key/v1\x00"
#: Departments that sign with ECDSA P-256 (docs/simulators.md); every other department signs with Ed25519.
DEMO_P256_DEPARTMENTS = frozenset({"human_resources", "health"})
#: Issuer USCCs of the simulated departments (the catalog's departments hold the same codes).
DEMO_ISSUER_CODES: dict[str, str] = {
    "public_security": "1143030225095009BR",
    "civil_affairs": "1143030256889651QK",
    "human_resources": "11430302161094428H",
    "disabled_persons": "13430302294112435D",
    "health": "1143030272284900B6",
    "veterans": "1143030285134115JB",
    "natural_resources": "1143030262199432C0",
}
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def issuer_algorithm(department_code: str) -> SignatureAlgorithm:
    """The signature algorithm a (demo) department issuer uses."""
    return "ecdsa-p256-sha256" if department_code in DEMO_P256_DEPARTMENTS else "ed25519"


def issuer_key_id(department_code: str) -> str:
    """The key id under which a department's demo issuer key is published in the trust store."""
    return f"{department_code}-demo-1"


def issuer_private_key(department_code: str) -> IssuerPrivateKey:
    """DEMO ONLY: the issuer signing key of a department, derived deterministically from its code.

    32 bytes = SHA-256(label + code). Ed25519 takes them as the seed; for P-256 they are reduced into
    [1, n-1] (n = the curve order) and used as the private scalar.
    """
    if not department_code:
        raise ValueError("department code must not be empty")
    seed = hashlib.sha256(_DERIVATION_LABEL + department_code.encode()).digest()
    if issuer_algorithm(department_code) == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def sign_bytes(private_key: IssuerPrivateKey, data: bytes) -> bytes:
    """Raw signature: 64 bytes for Ed25519, DER for ECDSA P-256 with SHA-256."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    return private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def sign(certificate: Certificate, private_key: IssuerPrivateKey, key_id: str) -> Signature:
    """The issuer's signature over `canonical_bytes` of ``certificate`` (its own signature field is ignored)."""
    alg: SignatureAlgorithm = "ed25519" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "ecdsa-p256-sha256"
    value = base64.b64encode(sign_bytes(private_key, canonical_bytes(certificate))).decode("ascii")
    return Signature(alg=alg, key_id=key_id, value=value)


def sign_as_department(certificate: Certificate, department_code: str) -> Certificate:
    """DEMO ONLY: ``certificate`` with the department's demo issuer signature attached."""
    signature = sign(certificate, issuer_private_key(department_code), issuer_key_id(department_code))
    return msgspec.structs.replace(certificate, signature=signature)


# --- trust store -------------------------------------------------------------------------------------------


class TrustError(ValueError):
    """A trust store file is invalid; the message names the file and the field."""


class TrustedKeyFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key_id: str
    department: str
    issuer_code: str
    alg: SignatureAlgorithm
    public_key: str  # PEM, SubjectPublicKeyInfo


class TrustFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    keys: list[TrustedKeyFile]


class TrustedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A published issuer key, parsed once."""

    key_id: str
    department: str
    issuer_code: str
    alg: SignatureAlgorithm
    public_key: IssuerPublicKey


#: Statuses other than 01 (有效) never verify; each maps to the verification status that names why.
_STATUS_OUTCOME: dict[str, Literal["revoked", "expired"]] = {
    "02": "revoked",  # 暂扣 suspended
    "03": "revoked",  # 撤销
    "04": "revoked",  # 注销
    "05": "expired",  # 失效
    "06": "revoked",  # 转出 transferred out
    "07": "revoked",  # 吊销
    "99": "revoked",  # 其他
}


class TrustStore:
    """Issuer public keys by key id. ``verify`` decides whether a certificate may be stored as valid."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._keys: dict[str, TrustedKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise TrustError(f"key id {key.key_id!r} is listed twice")
            self._keys[key.key_id] = key

    def __len__(self) -> int:
        return len(self._keys)

    def key(self, key_id: str) -> TrustedKey | None:
        return self._keys.get(key_id)

    @property
    def keys(self) -> Mapping[str, TrustedKey]:
        return self._keys

    @classmethod
    def load(cls, trust_dir: Path) -> TrustStore:
        """Load every ``*.toml`` under ``trust_dir``; all problems are reported together."""
        keys: list[TrustedKey] = []
        problems: list[str] = []
        for path in sorted(Path(trust_dir).glob("*.toml")):
            try:
                keys.extend(_load_trust_file(path))
            except TrustError as exc:
                problems.append(str(exc))
        seen: dict[str, Path | None] = {}
        for key in keys:
            if key.key_id in seen:
                problems.append(f"{trust_dir}: key id {key.key_id!r} is listed twice")
            seen[key.key_id] = None
        if problems:
            raise TrustError("\n".join(problems))
        return cls(keys)

    @classmethod
    def demo(cls, departments: Iterable[str] = DEMO_ISSUER_CODES) -> TrustStore:
        """The demo issuers' public keys, derived in memory (tests; never a substitute for ``config/trust``)."""
        return cls(demo_trusted_key(code) for code in departments)

    def verify(
        self,
        certificate: Certificate,
        *,
        expected_holder: str | None = None,
        today: dt.date | None = None,
        department: str | None = None,
    ) -> Verification:
        """Check signature, identifier, status, validity and holder, in that order; the first failure wins.

        ``department``, when given, must be the department the issuer key belongs to (a key of one department
        never vouches for certificates pulled from another).
        """
        signature = certificate.signature
        if signature is None:
            return Verification(status="unsigned", reason="certificate carries no issuer signature")
        key = self._keys.get(signature.key_id)
        if key is None:
            return Verification(
                status="untrusted_issuer", reason=f"key id {signature.key_id!r} is not in the trust store"
            )
        if key.issuer_code != certificate.issuer_code:
            return Verification(
                status="untrusted_issuer",
                reason=f"key {key.key_id} belongs to issuer {key.issuer_code}, certificate names "
                f"{certificate.issuer_code}",
                key_id=key.key_id,
            )
        if department is not None and key.department != department:
            return Verification(
                status="untrusted_issuer",
                reason=f"key {key.key_id} belongs to department {key.department}, not {department}",
                key_id=key.key_id,
            )
        if signature.alg != key.alg:
            return Verification(
                status="untrusted_issuer",
                reason=f"signature algorithm {signature.alg} does not match key {key.key_id} ({key.alg})",
                key_id=key.key_id,
            )
        if not _signature_ok(key.public_key, signature.value, canonical_bytes(certificate)):
            return Verification(status="bad_signature", reason="issuer signature does not verify", key_id=key.key_id)
        problem = certificate_identifier_problem(certificate.identifier)
        if problem is not None:
            return Verification(status="invalid_identifier", reason=f"identifier: {problem.message}", key_id=key.key_id)
        outcome = _STATUS_OUTCOME.get(certificate.status)
        if outcome is not None:
            name = STATUS_NAMES.get(certificate.status, "")
            return Verification(
                status=outcome, reason=f"status {certificate.status} {name}".rstrip(), key_id=key.key_id
            )
        today = today or dt.date.today()
        if certificate.valid_until is not None and certificate.valid_until < today:
            return Verification(
                status="expired",
                reason=f"valid until {certificate.valid_until.isoformat()}",
                key_id=key.key_id,
            )
        if expected_holder is not None and certificate.holder_code.upper() != expected_holder.strip().upper():
            # The reason names neither number: it may end up in logs.
            return Verification(
                status="wrong_holder", reason="holder code differs from the requested holder", key_id=key.key_id
            )
        return Verification(status="valid", key_id=key.key_id)


def _signature_ok(public_key: IssuerPublicKey, value: str, data: bytes) -> bool:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(raw, data)
        else:
            public_key.verify(raw, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _load_trust_file(path: Path) -> list[TrustedKey]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = msgspec.convert(raw, TrustFile, strict=True)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrustError(f"{path}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise TrustError(f"{path}: {_field_path_message(exc)}") from exc
    keys: list[TrustedKey] = []
    for index, entry in enumerate(parsed.keys):
        where = f"{path}: keys[{index}].public_key"
        try:
            public_key = serialization.load_pem_public_key(entry.public_key.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise TrustError(f"{where}: not a PEM public key ({exc})") from exc
        expected = ed25519.Ed25519PublicKey if entry.alg == "ed25519" else ec.EllipticCurvePublicKey
        if not isinstance(public_key, expected) or (
            isinstance(public_key, ec.EllipticCurvePublicKey) and not isinstance(public_key.curve, ec.SECP256R1)
        ):
            raise TrustError(f"{where}: key type does not match alg {entry.alg}")
        assert isinstance(public_key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
        keys.append(
            TrustedKey(
                key_id=entry.key_id,
                department=entry.department,
                issuer_code=entry.issuer_code,
                alg=entry.alg,
                public_key=public_key,
            )
        )
    return keys


def _field_path_message(exc: msgspec.ValidationError) -> str:
    """msgspec says ``Expected `str`, got `int` - at `$.keys[0].alg```; we say ``keys[0].alg: Expected …``."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        return text
    return f"{where.rstrip('`').removeprefix('$').lstrip('.')}: {message}"


# --- demo trust files --------------------------------------------------------------------------------------


def demo_trusted_key(department_code: str, issuer_code: str | None = None) -> TrustedKey:
    private_key = issuer_private_key(department_code)
    return TrustedKey(
        key_id=issuer_key_id(department_code),
        department=department_code,
        issuer_code=issuer_code or DEMO_ISSUER_CODES[department_code],
        alg=issuer_algorithm(department_code),
        public_key=private_key.public_key(),
    )


def _public_pem(key: IssuerPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def demo_trust_file_text(department_code: str, issuer_code: str | None = None) -> str:
    key = demo_trusted_key(department_code, issuer_code)
    return (
        "# DEMO issuer key of the simulated department system, derived from the department code by\n"
        "# connectors.trust.issuer_private_key. Anyone can derive the private key: replace this file with the\n"
        "# issuing department's published key in a real deployment. Regenerate: python -m connectors.trust --write\n"
        "[[keys]]\n"
        f'key_id = "{key.key_id}"\n'
        f'department = "{key.department}"\n'
        f'issuer_code = "{key.issuer_code}"\n'
        f'alg = "{key.alg}"\n'
        f"public_key = '''\n{_public_pem(key.public_key)}'''\n"
    )


def write_demo_trust_files(trust_dir: Path, issuers: Mapping[str, str] = DEMO_ISSUER_CODES) -> list[Path]:
    trust_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for code, uscc in issuers.items():
        path = trust_dir / f"{code}.toml"
        path.write_text(demo_trust_file_text(code, uscc), encoding="utf-8")
        written.append(path)
    return written


def demo_trust_problems(trust_dir: Path, issuers: Mapping[str, str] = DEMO_ISSUER_CODES) -> list[str]:
    """Differences between the trust files in ``trust_dir`` and the demo derivation (empty = they match)."""
    problems: list[str] = []
    try:
        store = TrustStore.load(trust_dir)
    except TrustError as exc:
        return [str(exc)]
    for code, uscc in issuers.items():
        expected = demo_trusted_key(code, uscc)
        found = store.key(expected.key_id)
        if found is None:
            problems.append(f"{trust_dir}: no key {expected.key_id} for department {code}")
            continue
        if (found.department, found.issuer_code, found.alg) != (code, uscc, expected.alg):
            problems.append(f"{trust_dir}: key {expected.key_id}: department/issuer_code/alg differ from the demo")
        if _public_pem(found.public_key) != _public_pem(expected.public_key):
            problems.append(f"{trust_dir}: key {expected.key_id}: public key differs from the demo derivation")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m connectors.trust --check|--write [DIR]`` (default DIR: the repository's config/trust)."""
    args = list(sys.argv[1:] if argv is None else argv)
    mode = args.pop(0) if args and args[0] in {"--check", "--write"} else "--check"
    trust_dir = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "config" / "trust"
    if mode == "--write":
        for path in write_demo_trust_files(trust_dir):
            print(path)
        return 0
    problems = demo_trust_problems(trust_dir)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
