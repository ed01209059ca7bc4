"""The hash chain's canonical encoding: pure functions, no I/O.

A record's hash is SHA-256 over a domain-separation line followed by the record's fields as compact JSON with
sorted keys (UTF-8, no insignificant whitespace, time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), including the
previous record's hash. The first record's previous hash is `GENESIS_HASH`. A checkpoint signs the same kind of
encoding over (seq, hash, at, key_id).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec

#: The previous hash of record #1.
GENESIS_HASH = "0" * 64

_RECORD_DOMAIN = b"onewindow.audit.record.v1\n"
_CHECKPOINT_DOMAIN = b"onewindow.audit.checkpoint.v1\n"
_CANONICAL = msgspec.json.Encoder(order="sorted")

#: JSON values allowed in ``detail`` (after normalisation).
JSONValue = Any


def format_time(at: datetime) -> str:
    """The canonical text of a timestamp: UTC, microseconds, ``Z``."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalize_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """``detail`` as it will read back from the database: plain JSON, string keys, no NaN.

    Hashing the normalised form keeps the hash stable across the JSON round trip of either database.
    """
    if detail is None:
        return {}
    if not isinstance(detail, dict):
        raise TypeError("audit detail must be a JSON object")
    try:
        value = msgspec.json.decode(_CANONICAL.encode(detail))
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"audit detail is not JSON-serialisable: {exc}") from exc
    assert isinstance(value, dict)
    return value


def canonical_record(
    *,
    seq: int,
    id: str,
    at: datetime,
    actor: str,
    role: str | None,
    action: str,
    object_type: str,
    object_id: str,
    purpose: str | None,
    detail: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The exact bytes a record's hash covers."""
    fields = {
        "seq": seq,
        "id": id,
        "at": format_time(at),
        "actor": actor,
        "role": role,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "purpose": purpose,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return _RECORD_DOMAIN + _CANONICAL.encode(fields)


def record_hash(**fields: Any) -> str:
    """SHA-256 (hex) of `canonical_record` over ``fields``."""
    return hashlib.sha256(canonical_record(**fields)).hexdigest()


def canonical_checkpoint(*, seq: int, hash: str, at: datetime, key_id: str) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    return _CHECKPOINT_DOMAIN + _CANONICAL.encode({"seq": seq, "hash": hash, "at": format_time(at), "key_id": key_id})


__all__ = [
    "GENESIS_HASH",
    "canonical_checkpoint",
    "canonical_record",
    "format_time",
    "normalize_detail",
    "record_hash",
]
