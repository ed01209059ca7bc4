from __future__ import annotations

import base64
import hmac
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.privacy import DecryptionError, FieldCipher, KeyRing, blind_index, decrypt, encrypt
from gateway.privacy.keys import generate_key

ID_NUMBER = "11010519491231002X"


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.generate())


def test_round_trip_and_token_shape(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, table="applications", column="applicant_id_number", row_id="a1")
    version, key_id, body = token.split(".")
    assert (version, key_id) == ("v1", "k1")
    assert ID_NUMBER not in token and "=" not in body
    assert cipher.decrypt(token, table="applications", column="applicant_id_number", row_id="a1") == ID_NUMBER
    # Same plaintext, fresh nonce each time.
    assert token != cipher.encrypt(ID_NUMBER, table="applications", column="applicant_id_number", row_id="a1")


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=200), row=st.text(min_size=1, max_size=40))
def test_round_trip_any_text(text: str, row: str) -> None:
    ring = _RING
    token = encrypt(ring, text, table="t", column="c", row_id=row)
    assert decrypt(ring, token, table="t", column="c", row_id=row) == text


_RING = KeyRing.generate()


@pytest.mark.parametrize(
    ("table", "column", "row_id"),
    [
        ("applications", "applicant_id_number", "a2"),  # copied to another row
        ("applications", "applicant_phone", "a1"),  # copied to another column
        ("certificates", "applicant_id_number", "a1"),  # copied to another table
    ],
)
def test_value_moved_elsewhere_does_not_decrypt(cipher: FieldCipher, table: str, column: str, row_id: str) -> None:
    token = cipher.encrypt(ID_NUMBER, table="applications", column="applicant_id_number", row_id="a1")
    with pytest.raises(DecryptionError) as info:
        cipher.decrypt(token, table=table, column=column, row_id=row_id)
    message = str(info.value)
    assert f"{table}.{column}" in message and row_id in message
    assert "authentication failed" in message
    assert ID_NUMBER not in message


def test_tampered_truncated_and_foreign_values_fail(cipher: FieldCipher) -> None:
    token = cipher.encrypt("张三", table="t", column="name", row_id=7)
    prefix, body = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 0x01
    tampered = prefix + "." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    for bad, reason in [
        (tampered, "authentication failed"),
        (token[:20], "truncated"),
        ("张三", "not an encrypted value"),
        ("v2.k1." + body, "not an encrypted value"),
        ("v1.k9." + body, "'k9' is not in the key ring"),
        ("v1.k1.@@@", "corrupt encoding"),
    ]:
        with pytest.raises(DecryptionError, match=reason):
            cipher.decrypt(bad, table="t", column="name", row_id=7)


def test_row_ids_of_any_type_bind_as_text(cipher: FieldCipher) -> None:
    rid = uuid.uuid4()
    token = cipher.encrypt("x", table="t", column="c", row_id=rid)
    assert cipher.decrypt(token, table="t", column="c", row_id=str(rid)) == "x"
    token = cipher.encrypt("y", table="t", column="c", row_id=42)
    assert cipher.decrypt(token, table="t", column="c", row_id="42") == "y"


def test_key_ids_old_values_readable_new_values_under_active() -> None:
    k1, k2, index = generate_key(), generate_key(), generate_key()
    old_ring = KeyRing.from_keys([("k1", k1)], index)
    old = FieldCipher(old_ring).encrypt("phone", table="t", column="c", row_id="1")
    ring = KeyRing.from_keys([("k2", k2), ("k1", k1)], index)
    cipher = FieldCipher(ring)
    assert cipher.decrypt(old, table="t", column="c", row_id="1") == "phone"
    new = cipher.reencrypt(old, table="t", column="c", row_id="1")
    assert FieldCipher.key_id_of(new) == "k2" and FieldCipher.key_id_of(old) == "k1"
    assert new.startswith(cipher.token_prefix())
    assert FieldCipher.key_id_of("plain") is None


def test_optional_values(cipher: FieldCipher) -> None:
    assert cipher.encrypt_optional(None, table="t", column="c", row_id="1") is None
    assert cipher.decrypt_optional(None, table="t", column="c", row_id="1") is None
    token = cipher.encrypt_optional("addr", table="t", column="c", row_id="1")
    assert token is not None
    assert cipher.decrypt_optional(token, table="t", column="c", row_id="1") == "addr"


def test_blind_index_is_stable_normalised_keyed_and_domain_separated() -> None:
    index = generate_key()
    ring = KeyRing.from_keys([("k1", generate_key())], index)
    digest = blind_index(ring, ID_NUMBER)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert blind_index(ring, "11010519491231002x") == digest
    assert blind_index(ring, " 110105 19491231 002X ") == digest
    # Same index key, new data keys: same digest (rotation never changes indexes).
    assert blind_index(KeyRing.from_keys([("k7", generate_key())], index), ID_NUMBER) == digest
    # Another index key: unrelated digest. Another kind: unrelated digest.
    assert blind_index(KeyRing.generate(), ID_NUMBER) != digest
    assert blind_index(ring, ID_NUMBER, kind="phone") != digest
    assert blind_index(ring, ID_NUMBER, kind="phone") == FieldCipher(ring).blind_index(ID_NUMBER, kind="phone")
    # Phones: +86 and separators are the same number.
    cipher = FieldCipher(ring)
    assert cipher.blind_index("+86 138-1234-5678", kind="phone") == cipher.blind_index("13812345678", kind="phone")


def test_seal_binds_context(cipher: FieldCipher) -> None:
    sealed = cipher.seal(b"response body", context=b"key-1")
    assert b"response body" not in sealed
    assert cipher.unseal(sealed, context=b"key-1") == b"response body"
    with pytest.raises(ValueError):
        cipher.unseal(sealed, context=b"key-2")
    with pytest.raises(ValueError):
        FieldCipher(KeyRing.generate()).unseal(sealed, context=b"key-1")


def test_fast_enough_for_request_paths(cipher: FieldCipher) -> None:
    started = time.process_time()
    for i in range(2000):
        token = cipher.encrypt(ID_NUMBER, table="t", column="c", row_id=i)
        cipher.decrypt(token, table="t", column="c", row_id=i)
        cipher.blind_index(ID_NUMBER)
    # Tens of microseconds each on a laptop; a generous bound, in CPU time so that other processes on a busy
    # shared CI machine do not count.
    assert time.process_time() - started < 2.0


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=300), purpose=st.sampled_from(["tracking.query_code", "idempotency", ""]))
def test_keyed_digest_is_hmac_sha256_of_the_framed_data(data: bytes, purpose: str) -> None:
    """`keyed_digest` absorbs the key's pads once per purpose; the digest is still RFC 2104's HMAC-SHA256."""
    cipher = FieldCipher(_RING)
    framed = b"".join(len(p).to_bytes(4, "big") + p for p in (b"onewindow.blind-index.v1", purpose.encode(), data))
    expected = hmac.digest(_RING.index_key, framed, "sha256")
    assert cipher.keyed_digest(data, purpose=purpose) == expected
    assert cipher.keyed_digest(data, purpose=purpose) == expected  # again, from the kept pads
