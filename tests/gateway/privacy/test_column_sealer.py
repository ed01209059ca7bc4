"""`FieldCipher.column_sealer` / `encrypt_many`: the bulk form of `encrypt` — the same tokens (read by `decrypt`,
bound to table, column and row), under the active key, nonces never repeated across blocks, threads or a fork."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from pathlib import Path

import pytest

from gateway.privacy import DecryptionError, FieldCipher, KeyRing
from gateway.privacy.fields import ColumnSealer

ID_NUMBER = "11010519491231002X"


def _nonce(token: str) -> bytes:
    body = token.rsplit(".", 1)[1]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))[:12]


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.generate())


def test_sealed_values_are_encrypt_tokens(cipher: FieldCipher) -> None:
    sealer = cipher.column_sealer(table="certificates", column="holder_code_enc")
    token = sealer.seal(ID_NUMBER, "row-1")
    encrypted = cipher.encrypt(ID_NUMBER, table="certificates", column="holder_code_enc", row_id="row-1")
    version, key_id, body = token.split(".")
    assert (version, key_id) == ("v1", "k1") and "=" not in body and ID_NUMBER not in token
    assert len(token) == len(encrypted)  # one format: nonce, ciphertext and tag in the same places
    assert cipher.decrypt(token, table="certificates", column="holder_code_enc", row_id="row-1") == ID_NUMBER
    for table, column, row_id in [
        ("certificates", "holder_code_enc", "row-2"),  # copied to another row
        ("certificates", "holder_name_enc", "row-1"),  # another column
        ("applications", "holder_code_enc", "row-1"),  # another table
    ]:
        with pytest.raises(DecryptionError, match="authentication failed"):
            cipher.decrypt(token, table=table, column=column, row_id=row_id)
    assert sealer.seal(ID_NUMBER, "row-1") != token  # a fresh nonce each time


def test_encrypt_many_reads_back_with_any_row_id_type(cipher: FieldCipher) -> None:
    ids: list[str | int | uuid.UUID] = ["a", 7, uuid.uuid4()]
    values = [("张三", ids[0]), ("", ids[1]), ("地址 1 号", ids[2])]
    tokens = cipher.encrypt_many(values, table="t", column="c")
    assert len(tokens) == 3
    for (plain, row_id), token in zip(values, tokens, strict=True):
        assert cipher.decrypt(token, table="t", column="c", row_id=str(row_id)) == plain
    assert cipher.encrypt_many([], table="t", column="c") == []


def test_nonces_never_repeat_across_blocks_and_threads(cipher: FieldCipher) -> None:
    sealer = cipher.column_sealer(table="t", column="c")
    per_thread = 3 * (ColumnSealer.NONCE_BLOCK // 12) // 4 + 1  # the threads together use several blocks
    tokens: list[list[str]] = [[] for _ in range(4)]

    def seal_many(out: list[str]) -> None:
        for i in range(per_thread):
            out.append(sealer.seal("x", str(i)))

    threads = [threading.Thread(target=seal_many, args=(out,)) for out in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    nonces = [_nonce(t) for out in tokens for t in out]
    assert len(nonces) == 4 * per_thread > 2 * ColumnSealer.NONCE_BLOCK // 12
    assert len(set(nonces)) == len(nonces)


def test_a_forked_child_does_not_continue_its_parents_nonces(cipher: FieldCipher) -> None:
    sealer = cipher.column_sealer(table="t", column="c")
    sealer.seal("x", "1")  # the parent holds a block of nonces now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: seal one value and report its nonce
        try:
            os.write(write, _nonce(sealer.seal("x", "2")))
        finally:
            os._exit(0)
    os.close(write)
    try:
        _, status = os.waitpid(pid, 0)
        child = os.read(read, 64)
    finally:
        os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0 and len(child) == 12
    following = [_nonce(sealer.seal("x", str(i))) for i in range(3)]
    assert child not in following  # the parent's next nonces are not the child's


def test_sealers_follow_the_active_key(tmp_path: Path) -> None:
    ring = KeyRing.load(tmp_path, environ={})
    cipher = FieldCipher(ring)
    first = cipher.column_sealer(table="t", column="c")
    assert cipher.column_sealer(table="t", column="c") is first  # reused while the key is active
    assert cipher.column_sealer(table="t", column="other") is not first
    old = first.seal("value", "r1")
    new_key = ring.add_data_key()
    second = cipher.column_sealer(table="t", column="c")
    assert second is not first and second.key_id == new_key != first.key_id
    token = second.seal("value", "r1")
    assert FieldCipher.key_id_of(token) == new_key and FieldCipher.key_id_of(old) == first.key_id
    assert cipher.decrypt(token, table="t", column="c", row_id="r1") == "value"
    assert cipher.decrypt(old, table="t", column="c", row_id="r1") == "value"  # older values stay readable
