"""Models: strict decoding, offering by status and validity, the public shape (docs/api.md#catalog)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from catalog.models import ITEM_TYPES, Item, Material, PublicItem

CONTRACT_FIELDS = [
    "code",
    "name",
    "level",
    "item_type",
    "department",
    "legal_basis",
    "legal_days",
    "promised_days",
    "visits",
    "online",
    "fee",
    "materials",
    "status",
]


def make_item(**changes: object) -> Item:
    item = Item(
        code="0205001100",
        name="最低生活保障",
        level="street",
        item_type="05",
        department="civil_affairs",
        legal_basis="《社会救助暂行办法》",
        legal_days=30,
        promised_days=20,
        visits=1,
        online=True,
        fee=0,
        conditions="条件",
        steps=("申请", "审核"),
        materials=(
            Material(
                key="resident_id_card",
                name="居民身份证",
                required=True,
                form="electronic",
                source="certificate",
                certificate_type="resident_id_card",
            ),
            Material(key="form", name="申请书", required=True, form="paper", source="applicant"),
            Material(
                key="marriage",
                name="结婚证",
                required=False,
                form="electronic",
                source="certificate",
                certificate_type="marriage_certificate",
                condition="已婚的提供",
            ),
            Material(
                key="spouse_id",
                name="配偶身份证",
                required=False,
                form="electronic",
                source="certificate",
                certificate_type="resident_id_card",
            ),
        ),
        version=1,
        status="published",
        valid_from=dt.date(2024, 1, 1),
    )
    return msgspec.structs.replace(item, **changes)


def test_offered_only_when_published_and_valid() -> None:
    item = make_item(valid_until=dt.date(2024, 12, 31))
    assert not item.is_offered(dt.date(2023, 12, 31))
    assert item.is_offered(dt.date(2024, 1, 1))
    assert item.is_offered(dt.date(2024, 12, 31))  # valid_until is inclusive
    assert not item.is_offered(dt.date(2025, 1, 1))
    assert not make_item(status="concept").is_offered(dt.date(2024, 6, 1))


def test_public_shape_has_the_contract_fields_in_order() -> None:
    public = make_item().to_public("湘潭市雨湖区民政局")
    data = msgspec.to_builtins(public)
    assert list(data)[: len(CONTRACT_FIELDS)] == CONTRACT_FIELDS
    assert data["materials"][0] == {
        "key": "resident_id_card",
        "name": "居民身份证",
        "required": True,
        "source": "certificate",
        "certificate_type": "resident_id_card",
        "form": "electronic",
        "condition": "",
        "min_level": "C",
        "commitment": "",
        "reusable": True,
    }
    assert data["materials"][1]["certificate_type"] is None and data["materials"][1]["source"] == "applicant"
    assert data["department_name"] == "湘潭市雨湖区民政局"
    assert data["item_type_name"] == ITEM_TYPES["05"] == "行政给付"
    assert data["valid_from"] == "2024-01-01"
    # The public shape round-trips through JSON.
    assert msgspec.json.decode(msgspec.json.encode(public), type=PublicItem) == public


def test_certificate_types_in_order_without_repeats() -> None:
    assert make_item().certificate_types == ("resident_id_card", "marriage_certificate")
    item = make_item()
    assert item.material("form") is not None and item.material("nope") is None


def test_models_are_strict_and_frozen() -> None:
    raw = msgspec.to_builtins(make_item())
    assert msgspec.convert(raw, Item) == make_item()
    with pytest.raises(msgspec.ValidationError, match="unknown field `colour`"):
        msgspec.convert({**raw, "colour": "red"}, Item)
    with pytest.raises(msgspec.ValidationError, match="Invalid enum value 'planet'"):
        msgspec.convert({**raw, "level": "planet"}, Item)
    with pytest.raises(msgspec.ValidationError, match="missing required field `materials`"):
        msgspec.convert({k: v for k, v in raw.items() if k != "materials"}, Item)
    with pytest.raises(AttributeError):
        make_item().name = "x"  # type: ignore[misc]
