"""Unit tests of the canonical encoding the audit hash chain rests on."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.chain import (
    GENESIS_HASH,
    canonical_checkpoint,
    canonical_record,
    format_time,
    normalize_detail,
    record_hash,
)

AT = datetime(2026, 3, 2, 8, 15, 30, 5, tzinfo=UTC)


def _fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "seq": 1,
        "id": "0192f0c2a1b27000800000000000abcd",
        "at": AT,
        "actor": "token:abc",
        "role": "clerk",
        "action": "application.created",
        "object_type": "application",
        "object_id": "a1",
        "purpose": "受理",
        "detail": {"item_code": "S001", "materials": 3},
        "prev_hash": GENESIS_HASH,
    }
    fields.update(changes)
    return fields


def test_canonical_record_is_sorted_compact_utf8() -> None:
    encoded = canonical_record(**_fields())
    assert encoded == (
        b"onewindow.audit.record.v1\n"
        b'{"action":"application.created","actor":"token:abc","at":"2026-03-02T08:15:30.000005Z",'
        b'"detail":{"item_code":"S001","materials":3},"id":"0192f0c2a1b27000800000000000abcd",'
        b'"object_id":"a1","object_type":"application","prev_hash":"' + GENESIS_HASH.encode() + b'",'
        b'"purpose":"\xe5\x8f\x97\xe7\x90\x86","role":"clerk","seq":1}'
    )
    assert record_hash(**_fields()) == hashlib.sha256(encoded).hexdigest()


def test_every_field_changes_the_hash() -> None:
    base = record_hash(**_fields())
    for name, other in [
        ("seq", 2),
        ("id", "0" * 32),
        ("at", AT + timedelta(microseconds=1)),
        ("actor", "system"),
        ("role", None),
        ("action", "status.changed"),
        ("object_type", "token"),
        ("object_id", "a2"),
        ("purpose", None),
        ("detail", {"item_code": "S001", "materials": 4}),
        ("prev_hash", "f" * 64),
    ]:
        assert record_hash(**_fields(**{name: other})) != base, name


def test_detail_key_order_does_not_matter() -> None:
    one = record_hash(**_fields(detail={"a": 1, "b": [1, {"y": 2, "x": 1}]}))
    two = record_hash(**_fields(detail={"b": [1, {"x": 1, "y": 2}], "a": 1}))
    assert one == two


def test_time_is_rendered_in_utc_whatever_the_offset() -> None:
    beijing = AT.astimezone(timezone(timedelta(hours=8)))
    assert format_time(beijing) == format_time(AT) == "2026-03-02T08:15:30.000005Z"
    assert record_hash(**_fields(at=beijing)) == record_hash(**_fields())
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))


def test_normalize_detail_is_what_json_reads_back() -> None:
    assert normalize_detail(None) == {}
    assert normalize_detail({"t": (1, 2), "s": "雨湖"}) == {"t": [1, 2], "s": "雨湖"}
    with pytest.raises(TypeError, match="str keys"):
        normalize_detail({1: "x"})  # type: ignore[dict-item]
    assert normalize_detail({"n": math.nan}) == {"n": None}
    with pytest.raises(TypeError):
        normalize_detail(["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_detail({"x": object()})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=15,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_normalisation_is_a_fixed_point(detail: dict[str, Any]) -> None:
    once = normalize_detail(detail)
    assert normalize_detail(once) == once
    assert record_hash(**_fields(detail=once)) == record_hash(**_fields(detail=normalize_detail(once)))


def test_checkpoint_encoding() -> None:
    assert canonical_checkpoint(seq=7, hash="ab", at=AT, key_id="k1") == (
        b'onewindow.audit.checkpoint.v1\n{"at":"2026-03-02T08:15:30.000005Z","hash":"ab","key_id":"k1","seq":7}'
    )
