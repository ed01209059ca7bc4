"""The audit signing key file: created once with mode 0600, reloaded, agreed on by racing processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.audit.keys import (
    AuditKeyError,
    AuditKeyring,
    key_path,
    load_or_create_signer,
    load_public_key,
    load_signer,
)


def test_created_once_private_and_reloaded(tmp_path: Path) -> None:
    assert load_signer(tmp_path) is None
    signer = load_or_create_signer(tmp_path)
    path = key_path(tmp_path)
    assert path == tmp_path / "keys" / "audit_ed25519.pem"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    again = load_or_create_signer(tmp_path)
    assert again.key_id == signer.key_id and len(signer.key_id) == 32
    message = b"checkpoint"
    assert AuditKeyring(again.public_key).verify(signer.key_id, signer.sign(message), message)
    assert not AuditKeyring(again.public_key).verify(signer.key_id, signer.sign(message), b"other")
    assert [p.name for p in path.parent.iterdir()] == ["audit_ed25519.pem"]  # no temporary files left


def test_public_key_file_round_trip(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path)
    (tmp_path / "audit.pub").write_bytes(signer.public_key_pem())
    assert AuditKeyring(load_public_key(tmp_path / "audit.pub")).__contains__(signer.key_id)
    assert signer.key_id in AuditKeyring(load_public_key(key_path(tmp_path)))  # the private file works too


def test_bad_key_files_are_named(tmp_path: Path) -> None:
    path = key_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("not a key")
    with pytest.raises(AuditKeyError, match=r"audit_ed25519\.pem"):
        load_signer(tmp_path)
    ec = generate_private_key(SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.write_bytes(ec)
    with pytest.raises(AuditKeyError, match="not an Ed25519 key"):
        load_or_create_signer(tmp_path)
    with pytest.raises(AuditKeyError, match=r"missing\.pub"):
        load_public_key(tmp_path / "missing.pub")


def _create(folder: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(load_or_create_signer(Path(folder)).key_id)


def test_racing_processes_agree_on_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    procs = [context.Process(target=_create, args=(str(tmp_path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    ids = {queue.get(timeout=30) for _ in procs}
    assert len(ids) == 1 and ids == {load_or_create_signer(tmp_path).key_id}
