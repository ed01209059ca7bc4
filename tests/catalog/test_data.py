"""The real catalog in config/: the district's counts and the rules the data must keep."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from catalog.catalog import Catalog
from catalog.codes import is_valid_uscc
from catalog.loader import cached_catalog
from catalog.models import ITEM_TYPES
from gateway.settings import DEFAULT_CONFIG_DIR

#: Certificate types the department simulators serve.
SIMULATED = {
    "resident_id_card",
    "household_register",
    "residence_permit",
    "marriage_certificate",
    "divorce_certificate",
    "subsistence_allowance_certificate",
    "extreme_poverty_certificate",
    "social_security_card",
    "disability_certificate",
    "birth_medical_certificate",
    "only_child_parents_certificate",
    "veteran_preferential_card",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return cached_catalog(DEFAULT_CONFIG_DIR)


def test_counts_104_59_45(catalog: Catalog) -> None:
    assert len(catalog.items) == 104
    assert len({i.code for i in catalog.items}) == 104
    assert catalog.counts() == {"street": 59, "community": 45}


def test_at_least_40_items_take_a_department_certificate(catalog: Catalog) -> None:
    with_certificates = [i for i in catalog.items if i.certificate_types]
    assert len(with_certificates) >= 40
    used = {t for i in catalog.items for t in i.certificate_types}
    assert used >= SIMULATED, f"unused simulated types: {SIMULATED - used}"
    # Beyond the ID card: many items take a second, domain certificate.
    assert sum(1 for i in catalog.items if set(i.certificate_types) - {"resident_id_card"}) >= 40


def test_references_resolve_and_time_limits_hold(catalog: Catalog) -> None:
    for item in catalog.items:
        assert catalog.department(item.department) is not None, item.code
        assert item.item_type in ITEM_TYPES
        assert 1 <= item.promised_days <= item.legal_days, item.code
        assert item.visits in (0, 1, 2)
        assert item.fee >= 0 and item.legal_basis.startswith("《"), item.code
        assert item.conditions and item.steps and item.materials, item.code
        for m in item.materials:
            if m.source == "certificate":
                assert m.certificate_type is not None and catalog.certificate_type(m.certificate_type) is not None
            else:
                assert m.certificate_type is None
        assert len({m.key for m in item.materials}) == len(item.materials), item.code


def test_community_items_on_behalf_of_name_street_items(catalog: Catalog) -> None:
    on_behalf = [i for i in catalog.items if i.on_behalf_of is not None]
    assert len(on_behalf) >= 30
    for item in on_behalf:
        assert item.level == "community"
        target = catalog.item(item.on_behalf_of or "")
        assert target is not None and target.level == "street", item.code
        assert target.department == item.department
        assert item.code[:7] == target.code[:7]  # same base code, another handling item


def test_real_item_names_are_present(catalog: Catalog) -> None:
    names = {i.name for i in catalog.items}
    for name in (
        "最低生活保障",
        "特困人员救助供养",
        "社会保障卡密码修改与重置",
        "居民在社区居住证明",
        "人民调解服务",
        "法律援助咨询服务",
    ):
        assert name in names
    reset = next(i for i in catalog.items if i.name == "社会保障卡密码修改与重置")
    assert reset.promised_days == 1


def test_everything_is_offered_today_and_versions_are_set(catalog: Catalog) -> None:
    today = dt.date.today()
    assert len(catalog.offered(today)) == 104
    assert all(i.version >= 1 and i.status == "published" for i in catalog.items)
    assert any(i.version > 1 for i in catalog.items)


def test_registries(catalog: Catalog) -> None:
    assert [d.code for d in catalog.departments][:6] == [
        "public_security",
        "civil_affairs",
        "human_resources",
        "disabled_persons",
        "health",
        "veterans",
    ]
    assert all(is_valid_uscc(d.uscc) for d in catalog.departments)
    civil = catalog.department("civil_affairs")
    assert civil is not None and civil.uscc == "1143030256889651QK" and civil.name == "湘潭市雨湖区民政局"
    assert len(catalog.certificate_types) == 14
    assert {c.key for c in catalog.certificate_types} >= SIMULATED
    bl = catalog.certificate_type("business_license")
    assert bl is not None and bl.holder_code_type == "001" and bl.type_code == "1110000020569441YY001"


def test_units_district_streets_communities_473_grids(catalog: Catalog) -> None:
    district = catalog.unit("430302")
    assert district is not None and district.name == "雨湖区"
    streets = {u.name: u for u in catalog.units_at("street")}
    assert {"窑湾街道", "昭潭街道"} <= set(streets)
    communities = {u.name: u for u in catalog.units_at("community")}
    assert {"洗脚桥社区", "宝庆路社区", "罗祖殿社区"} <= set(communities)
    assert communities["洗脚桥社区"].parent == streets["窑湾街道"].code
    grids = catalog.units_at("grid")
    assert len(grids) == 473 == len({g.code for g in grids})
    assert all(re.fullmatch(r"\d{15}", g.code) and g.parent in {c.code for c in communities.values()} for g in grids)
    assert all(re.fullmatch(r"430302\d{6}", u.code) for u in catalog.units if u.level != "grid")
    assert all(u.uscc is None or is_valid_uscc(u.uscc) for u in catalog.units)
    assert all(catalog.children(c.code) for c in communities.values())  # every community has grids
