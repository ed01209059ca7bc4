"""Personal-data protection: field encryption, blind indexes, masking, keys and their rotation.

    from gateway.privacy import FieldCipher, KeyRing, mask_name, register_encrypted_column

The application builds one `KeyRing` and one `FieldCipher` and puts them on ``app.state.keyring`` and
``app.state.cipher``.
"""

from gateway.privacy.fields import DecryptionError, FieldCipher, RowId, blind_index, decrypt, encrypt
from gateway.privacy.keys import KeyRing, KeyRingError, UnknownKeyError
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

__all__ = [
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
