"""Personal-data protection: field encryption, blind indexes, masking, keys and their rotation.

    from gateway.privacy import FieldCipher, KeyRing, mask_name, register_encrypted_column

The application builds one `KeyRing` and one `FieldCipher` and keeps them in its context (``keyring``,
``cipher``; `gateway.context`).

The key and cipher names (`cryptography`) load on first use: every ``onewindow`` command installs the log masking
from here, and most never touch a key.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gateway.privacy.masking import (
    PersonalDataFilter,
    install_log_masking,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
)
from gateway.privacy.registry import EncryptedColumn, encrypted_columns, register_encrypted_column

if TYPE_CHECKING:
    from gateway.privacy.fields import ColumnSealer, DecryptionError, FieldCipher, RowId, blind_index, decrypt, encrypt
    from gateway.privacy.keys import KeyRing, KeyRingError, UnknownKeyError

#: Names served lazily, by the module that defines them.
_LAZY = {
    **dict.fromkeys(
        ("ColumnSealer", "DecryptionError", "FieldCipher", "RowId", "blind_index", "decrypt", "encrypt"),
        "gateway.privacy.fields",
    ),
    **dict.fromkeys(("KeyRing", "KeyRingError", "UnknownKeyError"), "gateway.privacy.keys"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


__all__ = [
    "ColumnSealer",
    "DecryptionError",
    "EncryptedColumn",
    "FieldCipher",
    "KeyRing",
    "KeyRingError",
    "PersonalDataFilter",
    "RowId",
    "UnknownKeyError",
    "blind_index",
    "decrypt",
    "encrypt",
    "encrypted_columns",
    "install_log_masking",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_text",
    "register_encrypted_column",
]
