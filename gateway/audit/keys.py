"""The audit signing key: Ed25519, in ``<data_dir>/keys/audit_ed25519.pem`` (mode 0600), created on first use.

Checkpoints carry the key id (first 32 hex characters of SHA-256 over the raw public key), so a verifier holding
the public key — ideally a copy kept away from the data dir (``onewindow audit public-key``) — can check them.
Data-encryption keys are another matter (gateway/privacy/keys.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

AUDIT_KEY_FILE = Path("keys") / "audit_ed25519.pem"


class AuditKeyError(Exception):
    """The audit key file is missing, unreadable or not an Ed25519 key; the message names the file."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


class AuditSigner:
    """Signs checkpoints with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class AuditKeyring:
    """Public keys by key id, for verification (the current key and any older ones kept after a rotation)."""

    def __init__(self, *public_keys: Ed25519PublicKey) -> None:
        self._keys = {key_id_of(k): k for k in public_keys}

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, key_id: str, signature: bytes, message: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def key_path(data_dir: Path) -> Path:
    return data_dir / AUDIT_KEY_FILE


def load_signer(data_dir: Path) -> AuditSigner | None:
    """The signer from the data dir, or None when no key was created yet."""
    path = key_path(data_dir)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditKeyError(f"{path}: {exc.strerror}") from exc
    return AuditSigner(_private_key_from_pem(pem, path))


def load_or_create_signer(data_dir: Path) -> AuditSigner:
    """The signer from the data dir, creating the key file (0600) if there is none yet.

    Creation is atomic (write a temporary file, then hard-link it into place), so processes starting together
    agree on one key.
    """
    existing = load_signer(data_dir)
    if existing is not None:
        return existing
    create_key_file(key_path(data_dir))
    signer = load_signer(data_dir)
    assert signer is not None
    return signer


def create_key_file(path: Path) -> None:
    """Write a new Ed25519 private key (PEM, PKCS#8) to ``path`` unless one is there: mode 0600 in a 0700 folder,
    written in full and synced before it appears, so a reader never sees half a key; when another process writes
    one at the same moment, its key stays and this one is dropped (every process then loads the same key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file holding either the public or the private key."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"{path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" in pem:
        return _private_key_from_pem(pem, path).public_key()
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise AuditKeyError(f"{path}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path}: not an Ed25519 key")
    return key


def _private_key_from_pem(pem: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: not an Ed25519 key")
    return key


__all__ = [
    "AUDIT_KEY_FILE",
    "AuditKeyError",
    "AuditKeyring",
    "AuditSigner",
    "create_key_file",
    "key_id_of",
    "key_path",
    "load_or_create_signer",
    "load_public_key",
    "load_signer",
]
