"""The district as an issuer: the gateway's own signing key for the e-certificates it issues (results of cases
that are themselves certificates, `gateway.evidence.results`), and its place in the trust store.

The key is an Ed25519 key in the data dir (``keys/issuer_ed25519.pem``, 0600), created on first use; processes
starting together agree on one key (the file is linked into place atomically). Its public half is published as a
trust-store file, ``<data dir>/trust/district.toml`` (the format of ``config/trust/*.toml``), and added to the
trust store the connectors verify with, so a certificate the gateway issued verifies like any department's.

Issuer code and name: the district government's unified social credit code and name (sample values, like the
rest of ``config/registry``); certificates the gateway issues are stored with department ``district``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.codes import certificate_identifier
from connectors.model import Certificate
from connectors.trust import TrustedKey, TrustStore, sign
from gateway.audit.keys import create_key_file

#: The department code of certificates the gateway issues itself (in the certificate store).
DISTRICT_ISSUER = "district"
#: 颁发机构: the district government (sample USCC, valid under GB 32100).
DISTRICT_ISSUER_NAME = "湘潭市雨湖区人民政府"
DISTRICT_ISSUER_CODE = "11430302MB1938570N"
ISSUER_KEY_FILE = Path("keys") / "issuer_ed25519.pem"
TRUST_FILE = Path("trust") / "district.toml"


class IssuerKeyError(ValueError):
    """The issuer key file exists but cannot be used."""


class DistrictIssuer:
    """Signs certificates as the district."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = f"district-{hashlib.sha256(raw).hexdigest()[:12]}"
        self.issuer_code = DISTRICT_ISSUER_CODE
        self.issuer_name = DISTRICT_ISSUER_NAME

    def identifier(self, type_code: str, serial: str) -> str:
        """A GB/T 36904 identifier of a certificate of ``type_code`` issued by the district (version 001)."""
        return certificate_identifier(type_code, self.issuer_code, serial, 1)

    def sign(self, certificate: Certificate) -> Certificate:
        """``certificate`` with the district's signature over its canonical encoding."""
        return msgspec.structs.replace(certificate, signature=sign(certificate, self._key, self.key_id))

    def trusted_key(self) -> TrustedKey:
        return TrustedKey(
            key_id=self.key_id,
            department=DISTRICT_ISSUER,
            issuer_code=self.issuer_code,
            alg="ed25519",
            public_key=self._key.public_key(),
        )

    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def trust_file_text(self) -> str:
        return (
            "# The gateway's own issuer key: certificates the district issues for completed cases.\n"
            "# Written by the gateway from keys/issuer_ed25519.pem in its data dir;\n"
            "# publish this file to the systems that rely on them.\n"
            "[[keys]]\n"
            f'key_id = "{self.key_id}"\n'
            f'department = "{DISTRICT_ISSUER}"\n'
            f'issuer_code = "{self.issuer_code}"\n'
            'alg = "ed25519"\n'
            f"public_key = '''\n{self.public_pem()}'''\n"
        )

    def publish(self, data_dir: Path) -> Path:
        """Write the trust-store file of this key into ``data_dir/trust`` (replaced atomically)."""
        path = Path(data_dir) / TRUST_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.trust_file_text()
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == text:
                return path
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path


def with_issuer(trust: TrustStore, issuer: DistrictIssuer) -> TrustStore:
    """``trust`` plus the district's key (unchanged when it is already there)."""
    if trust.key(issuer.key_id) is not None:
        return trust
    return TrustStore([*trust.keys.values(), issuer.trusted_key()])


def _load(path: Path) -> Ed25519PrivateKey | None:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IssuerKeyError(f"{path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise IssuerKeyError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise IssuerKeyError(f"{path}: not an Ed25519 key")
    return key


@functools.lru_cache(maxsize=16)
def _issuer_at(path: Path) -> DistrictIssuer:
    key = _load(path)
    if key is None:
        create_key_file(path)
        key = _load(path)
        assert key is not None
    return DistrictIssuer(key)


@functools.lru_cache(maxsize=16)
def district_issuer(data_dir: Path) -> DistrictIssuer:
    """The district issuer of a data dir (the key created on first use; one object per data dir and process).

    Cached by the path as given too: request handlers ask for it on every request, and resolving the path is a
    system call per path component."""
    return _issuer_at(Path(data_dir).resolve() / ISSUER_KEY_FILE)


__all__ = [
    "DISTRICT_ISSUER",
    "DISTRICT_ISSUER_CODE",
    "DISTRICT_ISSUER_NAME",
    "DistrictIssuer",
    "IssuerKeyError",
    "district_issuer",
    "with_issuer",
]
