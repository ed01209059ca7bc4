"""Field encryption and blind indexes for personal data (ID number, name, phone, address).

A stored value is a self-describing token ``v1.<key id>.<base64url(nonce ‖ ciphertext+tag)>``: AES-256-GCM with a
random 96-bit nonce, and associated data that binds the key id, table, column and row id — a value copied to
another row or column, or edited, fails to decrypt instead of showing someone else's data.

Bulk writers encrypt many values of one column with `FieldCipher.column_sealer` (the key and the associated data's
table/column part prepared once, nonces drawn from the OS in blocks): the same tokens, one implementation of the
format — `FieldCipher.encrypt` and `ColumnSealer.seal` share every piece of it.

``row_id`` is the row's primary key as text (``str(row.id)``); encrypt before insert with the id the row will
have (generate ids in Python, not by the database), so the same text is used when reading it back.

A blind index is HMAC-SHA256 under the ring's index key over a normalised value, separated by ``kind`` (the
same ID number gives unrelated digests as ``citizen_id`` and as ``phone``), so equality lookups work without the
plaintext and without a dictionary attack from the database alone.

Exceptions::

    DecryptionError     a token is malformed, names an unknown key, or fails authentication; names
                        table/column/row, never the value
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import unicodedata
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.privacy.keys import KeyRing, UnknownKeyError

TOKEN_VERSION = "v1"  # noqa: S105 - a format tag, not a secret
_NONCE_BYTES = 12
_TAG_BYTES = 16
_AAD_LABEL = b"onewindow.field.v1"
_SEAL_LABEL = b"onewindow.seal.v1"
_INDEX_LABEL = b"onewindow.blind-index.v1"
_SEAL_MAGIC = b"\x01"
_SHA256_BLOCK = 64

RowId = str | int | uuid.UUID


class DecryptionError(Exception):
    """A stored value cannot be decrypted; the message names where it is stored, never what it holds."""

    def __init__(self, table: str, column: str, row_id: RowId, reason: str) -> None:
        super().__init__(f"cannot decrypt {table}.{column} of row {row_id}: {reason}")
        self.table = table
        self.column = column
        self.row_id = str(row_id)
        self.reason = reason


def _hmac_pads(key: bytes, prefix: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner hash (key XOR ipad, then ``prefix``) and outer hash (key XOR opad), ready to copy."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(prefix)
    return inner, hashlib.sha256(bytes(b ^ 0x5C for b in key))


def _frame(*parts: bytes) -> bytes:
    """Length-prefixed concatenation, so ('ab','c') and ('a','bc') never give the same associated data."""
    out = bytearray()
    for part in parts:
        out += len(part).to_bytes(4, "big")
        out += part
    return bytes(out)


def _aad_prefix(key_id: str, table: str, column: str) -> bytes:
    """The associated data of every value of one column under one key, up to the row id."""
    return _frame(_AAD_LABEL, key_id.encode(), table.encode(), column.encode())


def _aad_for_row(prefix: bytes, row_id: RowId) -> bytes:
    """`_aad_prefix` completed with the row id (framed as `_frame` frames every part)."""
    raw = str(row_id).encode()
    return prefix + len(raw).to_bytes(4, "big") + raw


def field_aad(key_id: str, table: str, column: str, row_id: RowId) -> bytes:
    return _aad_for_row(_aad_prefix(key_id, table, column), row_id)


def _token_head(key_id: str) -> str:
    """``v1.<key id>.`` — what every token under that key starts with."""
    return f"{TOKEN_VERSION}.{key_id}."


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


# --- normalisation for blind indexes ------------------------------------------------------------------


def _normalise_citizen_id(value: str) -> str:
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


def _normalise_phone(value: str) -> str:
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", value) if ch.isdigit())
    # +86 / 0086 prefixes name the same mobile number.
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits


def _normalise_text(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).split())


NORMALISERS: dict[str, Callable[[str], str]] = {
    "citizen_id": _normalise_citizen_id,
    "phone": _normalise_phone,
}


def normalise(value: str, kind: str) -> str:
    """The canonical form hashed for ``kind`` (ID numbers upper-case without spaces, phones digits only, …)."""
    return NORMALISERS.get(kind, _normalise_text)(value)


class ColumnSealer:
    """`FieldCipher.encrypt` for one table column under one key, for many values (`FieldCipher.column_sealer`).

    Per value it saves the key lookup, the framing of key, table and column into the associated data, and most of
    the system calls for nonces: they are drawn from the OS in blocks of `NONCE_BLOCK` bytes (one call per 1,024
    values). Handing out nonces is serialised (threads never share one), and a forked child drops the block it
    inherited, so no two processes continue the same block.
    """

    __slots__ = (
        "__weakref__",
        "_aead",
        "_encrypt",
        "_head",
        "_lock",
        "_nonces",
        "_prefix",
        "_used",
        "column",
        "key_id",
        "table",
    )

    #: Bytes of nonces drawn from the OS at a time (1,024 nonces).
    NONCE_BLOCK = _NONCE_BYTES * 1024

    def __init__(self, key_id: str, aead: AESGCM, *, table: str, column: str) -> None:
        self.key_id = key_id
        self.table = table
        self.column = column
        self._aead = aead
        self._encrypt = aead.encrypt
        self._prefix = _aad_prefix(key_id, table, column)
        self._head = _token_head(key_id)
        self._lock = threading.Lock()
        self._nonces = b""
        self._used = 0
        _sealers.add(self)

    def seal(self, plaintext: str, row_id: RowId) -> str:
        """The token of ``plaintext`` stored at this column of ``row_id`` — what `FieldCipher.encrypt` gives."""
        nonce = self._nonce()
        sealed = self._encrypt(nonce, plaintext.encode("utf-8"), _aad_for_row(self._prefix, row_id))
        return self._head + _b64e(nonce + sealed)

    def _nonce(self) -> bytes:
        with self._lock:
            start = self._used
            if start >= len(self._nonces):
                self._nonces = os.urandom(self.NONCE_BLOCK)
                start = 0
            self._used = start + _NONCE_BYTES
            return self._nonces[start : start + _NONCE_BYTES]

    def _forget_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._nonces = b""
        self._used = 0


_sealers: weakref.WeakSet[ColumnSealer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sealer in list(_sealers):
        sealer._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class FieldCipher:
    """Encrypts, decrypts and indexes personal-data fields with one `KeyRing` (AESGCM objects are reused)."""

    __slots__ = ("_digest_pads", "_index_cache", "_sealers", "keyring")

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._index_cache: tuple[bytes, hmac.HMAC] | None = None
        self._sealers: dict[tuple[str, str], ColumnSealer] = {}
        #: purpose -> (index key, the HMAC's inner hash with the padded key and the framed prefix absorbed, its
        #: outer hash with the padded key absorbed): `keyed_digest` copies them instead of keying a new HMAC.
        self._digest_pads: dict[str, tuple[bytes, Any, Any]] = {}

    # --- fields ----------------------------------------------------------------------------------------

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: RowId) -> str:
        """``v1.<key id>.<base64url(nonce|ciphertext)>`` under the active key, bound to table/column/row."""
        key_id, aead = self.keyring.active_aead()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = aead.encrypt(nonce, plaintext.encode("utf-8"), field_aad(key_id, table, column, row_id))
        return _token_head(key_id) + _b64e(nonce + sealed)

    def column_sealer(self, *, table: str, column: str) -> ColumnSealer:
        """Encrypt many values of ``table.column`` under the active key: ``sealer.seal(plaintext, row_id)`` gives
        what `encrypt` gives (`decrypt` reads it), faster. A sealer keeps the key that was active when it was made:
        ask again for each batch, so that a rotation takes effect (the same sealer comes back until then)."""
        key_id, aead = self.keyring.active_aead()
        sealer = self._sealers.get((table, column))
        if sealer is None or sealer.key_id != key_id or sealer._aead is not aead:
            sealer = self._sealers[(table, column)] = ColumnSealer(key_id, aead, table=table, column=column)
        return sealer

    def encrypt_many(self, values: Iterable[tuple[str, RowId]], *, table: str, column: str) -> list[str]:
        """`encrypt` of each ``(plaintext, row_id)`` for ``table.column``, through one `column_sealer`."""
        seal = self.column_sealer(table=table, column=column).seal
        return [seal(plaintext, row_id) for plaintext, row_id in values]

    def decrypt(self, token: str, *, table: str, column: str, row_id: RowId) -> str:
        """The plaintext of ``token`` stored at ``table.column`` of ``row_id``; `DecryptionError` otherwise."""
        version, _, rest = token.partition(".")
        key_id, _, body = rest.partition(".")
        if version != TOKEN_VERSION or not key_id or not body:
            raise DecryptionError(table, column, row_id, "not an encrypted value (expected 'v1.<key>.<data>')")
        try:
            aead = self.keyring.aead(key_id)
        except UnknownKeyError:
            raise DecryptionError(table, column, row_id, f"data key {key_id!r} is not in the key ring") from None
        try:
            raw = _b64d(body)
        except (binascii.Error, ValueError):
            raise DecryptionError(table, column, row_id, "corrupt encoding") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionError(table, column, row_id, "truncated value")
        try:
            plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], field_aad(key_id, table, column, row_id))
        except InvalidTag:
            raise DecryptionError(
                table, column, row_id, "authentication failed (altered, or copied from another row or column)"
            ) from None
        return plain.decode("utf-8")

    def encrypt_optional(self, plaintext: str | None, *, table: str, column: str, row_id: RowId) -> str | None:
        return None if plaintext is None else self.encrypt(plaintext, table=table, column=column, row_id=row_id)

    def decrypt_optional(self, token: str | None, *, table: str, column: str, row_id: RowId) -> str | None:
        return None if token is None else self.decrypt(token, table=table, column=column, row_id=row_id)

    def reencrypt(self, token: str, *, table: str, column: str, row_id: RowId) -> str:
        """The same plaintext under the active key (rotation)."""
        plain = self.decrypt(token, table=table, column=column, row_id=row_id)
        return self.encrypt(plain, table=table, column=column, row_id=row_id)

    @staticmethod
    def key_id_of(token: str) -> str | None:
        """The data key id a token was encrypted with, or ``None`` if it is not a token."""
        parts = token.split(".", 2)
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            return None
        return parts[1]

    def token_prefix(self, key_id: str | None = None) -> str:
        """``v1.<key id>.`` — what every value under that key (default: the active one) starts with."""
        return _token_head(key_id or self.keyring.active_key_id)

    # --- blind index ---------------------------------------------------------------------------------

    def blind_index(self, value: str, *, kind: str = "citizen_id") -> str:
        """Hex HMAC-SHA256 of the normalised value, domain-separated by ``kind``; stable for one index key."""
        key = self.keyring.index_key
        cached = self._index_cache
        if cached is None or cached[0] is not key:
            cached = (key, hmac.new(key, digestmod=hashlib.sha256))
            self._index_cache = cached
        mac = cached[1].copy()
        mac.update(_frame(_INDEX_LABEL, kind.encode(), normalise(value, kind).encode("utf-8")))
        return mac.hexdigest()

    def keyed_digest(self, data: bytes, *, purpose: str) -> bytes:
        """A keyed digest of arbitrary bytes (e.g. an idempotency fingerprint of a body holding personal data):
        HMAC-SHA256 under the index key of ``_frame(_INDEX_LABEL, purpose, data)``.

        Computed from the HMAC's two hashes with the padded key (and the purpose's part of the frame) absorbed
        once per key and purpose (RFC 2104's own precomputation): the same digest as ``hmac.digest``, at about a
        quarter of its CPU (keying an OpenSSL HMAC per call costs ~6 µs; the public lookup pays it every time)."""
        key = self.keyring.index_key
        pads = self._digest_pads.get(purpose)
        if pads is None or pads[0] is not key:
            pads = self._digest_pads[purpose] = (key, *_hmac_pads(key, _frame(_INDEX_LABEL, purpose.encode())))
        inner = pads[1].copy()
        inner.update(len(data).to_bytes(4, "big") + data)
        outer = pads[2].copy()
        outer.update(inner.digest())
        return cast(bytes, outer.digest())

    # --- opaque blobs (idempotency records and other cached bytes) ------------------------------------

    def seal(self, data: bytes, *, context: bytes) -> bytes:
        """Encrypt bytes bound to ``context`` (e.g. the store key); binary twin of `encrypt`."""
        key_id, aead = self.keyring.active_aead()
        nonce = os.urandom(_NONCE_BYTES)
        kid = key_id.encode()
        return (
            _SEAL_MAGIC + bytes([len(kid)]) + kid + nonce + aead.encrypt(nonce, data, _frame(_SEAL_LABEL, kid, context))
        )

    @staticmethod
    def sealed_key_id(sealed: bytes) -> str | None:
        """The data key id a `seal`ed blob names (None: not a sealed blob), without opening it."""
        if len(sealed) < 2 or sealed[:1] != _SEAL_MAGIC or len(sealed) < 2 + sealed[1]:
            return None
        try:
            return sealed[2 : 2 + sealed[1]].decode("ascii")
        except UnicodeDecodeError:
            return None

    def unseal(self, sealed: bytes, *, context: bytes) -> bytes:
        """Decrypt what `seal` made; `ValueError` when it does not authenticate or its key is gone."""
        if len(sealed) < 2 or sealed[:1] != _SEAL_MAGIC:
            raise ValueError("not a sealed blob")
        size = sealed[1]
        kid = sealed[2 : 2 + size]
        rest = sealed[2 + size :]
        if len(rest) < _NONCE_BYTES + _TAG_BYTES:
            raise ValueError("truncated sealed blob")
        try:
            aead = self.keyring.aead(kid.decode("ascii"))
            return aead.decrypt(rest[:_NONCE_BYTES], rest[_NONCE_BYTES:], _frame(_SEAL_LABEL, kid, context))
        except (UnknownKeyError, InvalidTag, UnicodeDecodeError) as exc:
            raise ValueError(f"sealed blob does not open: {type(exc).__name__}") from None


# --- function forms (one cipher per call is cheap: the AESGCM objects live in the key ring) ------------


def encrypt(keyring: KeyRing, plaintext: str, *, table: str, column: str, row_id: RowId) -> str:
    return FieldCipher(keyring).encrypt(plaintext, table=table, column=column, row_id=row_id)


def decrypt(keyring: KeyRing, token: str, *, table: str, column: str, row_id: RowId) -> str:
    return FieldCipher(keyring).decrypt(token, table=table, column=column, row_id=row_id)


def blind_index(keyring: KeyRing, value: str, *, kind: str = "citizen_id") -> str:
    return FieldCipher(keyring).blind_index(value, kind=kind)


__all__ = [
    "TOKEN_VERSION",
    "ColumnSealer",
    "DecryptionError",
    "FieldCipher",
    "RowId",
    "blind_index",
    "decrypt",
    "encrypt",
    "field_aad",
    "normalise",
]
