"""The loader: a clean small catalog loads; a broken one reports every problem, one `file:item:field: message`
line each."""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from pathlib import Path

import pytest

from catalog.loader import CatalogError, cached_catalog, check_catalog, load_catalog
from gateway.settings import DEFAULT_CONFIG_DIR

UNITS = """
note = "test units"
[district]
code = "430302000000"
name = "雨湖区"
grids = 3

[[streets]]
code = "430302006000"
name = "窑湾街道"
[[streets.communities]]
code = "430302006001"
name = "洗脚桥社区"
grids = 2
grid_names = ["洗脚桥一网格"]
[[streets.communities]]
code = "430302006002"
name = "罗祖殿社区"
grids = 1
"""

STREET_ITEM = """
[[items]]
code = "0205001100"
name = "最低生活保障"
level = "street"
item_type = "05"
department = "civil_affairs"
legal_basis = "《社会救助暂行办法》"
legal_days = 30
promised_days = 20
visits = 1
online = true
fee = 0
conditions = "人均收入低于低保标准"
steps = ["申请", "审核"]
version = 1
status = "published"
valid_from = 2023-01-01
keywords = ["低保"]

[[items.materials]]
key = "resident_id_card"
name = "居民身份证"
required = true
form = "electronic"
source = "certificate"
certificate_type = "resident_id_card"

[[items.materials]]
key = "application_form"
name = "申请书"
required = true
form = "paper"
source = "applicant"
"""

COMMUNITY_ITEM = """
[[items]]
code = "0205001201"
name = "最低生活保障申请受理"
level = "community"
item_type = "05"
department = "civil_affairs"
legal_basis = "《社会救助暂行办法》"
legal_days = 15
promised_days = 10
visits = 1
online = false
fee = 0
conditions = "同街道事项"
steps = ["受理", "上报"]
version = 1
status = "concept"
valid_from = 2023-01-01
on_behalf_of = "0205001100"

[[items.materials]]
key = "household_register"
name = "居民户口簿"
required = false
form = "electronic"
source = "certificate"
certificate_type = "household_register"
condition = "户籍在本社区的提供"
"""


def write_config(
    root: Path, catalog_files: dict[str, str], *, counts: str | None = "street = 1\ncommunity = 1"
) -> Path:
    """A small config dir: the real department and certificate registries, 3 grids, and the given catalog files."""
    (root / "registry").mkdir(parents=True, exist_ok=True)
    for name in ("departments.toml", "certificate_types.toml"):
        shutil.copy(DEFAULT_CONFIG_DIR / "registry" / name, root / "registry" / name)
    (root / "registry" / "units.toml").write_text(UNITS, encoding="utf-8")
    (root / "catalog").mkdir(exist_ok=True)
    if counts is not None:
        (root / "catalog" / "manifest.toml").write_text(f"[counts]\n{counts}\n", encoding="utf-8")
    for name, text in catalog_files.items():
        path = root / "catalog" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def small_config(root: Path) -> Path:
    return write_config(
        root, {"street/civil_affairs.toml": STREET_ITEM, "community/civil_affairs.toml": COMMUNITY_ITEM}
    )


def test_small_catalog_loads(tmp_path: Path) -> None:
    catalog = load_catalog(small_config(tmp_path))
    assert [i.code for i in catalog.items] == ["0205001100", "0205001201"]  # street first
    street = catalog.item("0205001100")
    assert street is not None and street.materials[0].certificate_type == "resident_id_card"
    assert catalog.item("nope") is None
    assert catalog.counts() == {"street": 1, "community": 1}
    assert catalog.department("civil_affairs") is not None
    assert catalog.certificate_type("resident_id_card") is not None
    grids = catalog.units_at("grid")
    assert [(g.code, g.name, g.parent) for g in grids] == [
        ("430302006001001", "洗脚桥一网格", "430302006001"),
        ("430302006001002", "洗脚桥社区第2网格", "430302006001"),
        ("430302006002001", "罗祖殿社区第1网格", "430302006002"),
    ]
    district = catalog.unit("430302")  # the 6-digit division code reads as its 12-digit form
    assert district is not None and district.name == "雨湖区" and district.level == "district"
    assert [u.name for u in catalog.children("430302006000")] == ["洗脚桥社区", "罗祖殿社区"]
    # The concept community item is in the catalog but not offered.
    assert [i.code for i in catalog.offered(dt.date(2025, 6, 1))] == ["0205001100"]


def test_etag_is_stable_and_follows_content(tmp_path: Path) -> None:
    a = load_catalog(small_config(tmp_path / "a"))
    b = load_catalog(small_config(tmp_path / "b"))
    assert a.etag == b.etag
    path = tmp_path / "b" / "catalog" / "street" / "civil_affairs.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("promised_days = 20", "promised_days = 19"), "utf-8")
    assert load_catalog(tmp_path / "b").etag != a.etag


def test_cached_catalog_reloads_when_a_file_changes(tmp_path: Path) -> None:
    root = small_config(tmp_path)
    first = cached_catalog(root)
    assert cached_catalog(root) is first
    path = root / "catalog" / "street" / "civil_affairs.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("promised_days = 20", "promised_days = 5"), "utf-8")
    second = cached_catalog(root)
    assert second is not first
    item = second.item("0205001100")
    assert item is not None and item.promised_days == 5


# --- a broken catalog -----------------------------------------------------------------------------------------
TYPE_ERRORS = """
[[items]]
code = "0205009100"
name = "类型错误的事项"
level = "street"
item_type = "05"
department = "civil_affairs"
legal_basis = "某条例"
legal_days = "ten"
promised_days = 5
visits = 1
online = true
fee = 0
steps = ["申请"]
version = 1
status = "published"
valid_from = 2023-01-01
colour = "red"

[[items.materials]]
key = "resident_id_card"
name = "居民身份证"
required = "yes"
form = "paper"
source = "certificate"
certificate_type = "resident_id_card"
"""

RULE_ERRORS = """
[[items]]
code = "0205008100"
name = "规则错误的事项"
level = "street"
item_type = "99"
department = "planning"
legal_basis = "某条例"
legal_days = 10
promised_days = 12
visits = 3
online = true
fee = 0
conditions = "条件"
steps = ["申请"]
version = 1
status = "published"
valid_from = 2023-01-01
on_behalf_of = "0205001100"

[[items.materials]]
key = "id"
name = "居民身份证"
required = true
form = "electronic"
source = "certificate"

[[items.materials]]
key = "id"
name = "户口簿"
required = true
form = "electronic"
source = "certificate"
certificate_type = "hukou_book"

[[items.materials]]
key = "form"
name = "申请表"
required = true
form = "paper"
source = "applicant"
certificate_type = "resident_id_card"
"""

COMMUNITY_ERRORS = """
[[items]]
code = "0205001201"
name = "代办不存在的事项"
level = "community"
item_type = "05"
department = "civil_affairs"
legal_basis = "某条例"
legal_days = 5
promised_days = 3
visits = 1
online = false
fee = 0
conditions = "条件"
steps = ["受理"]
version = 1
status = "published"
valid_from = 2023-01-01
on_behalf_of = "9999999100"

[[items.materials]]
key = "resident_id_card"
name = "居民身份证"
required = true
form = "electronic"
source = "certificate"
certificate_type = "resident_id_card"

[[items]]
code = "0205001202"
name = "代办社区事项"
level = "community"
item_type = "05"
department = "civil_affairs"
legal_basis = "某条例"
legal_days = 5
promised_days = 3
visits = 1
online = false
fee = 0
conditions = "条件"
steps = ["受理"]
version = 1
status = "published"
valid_from = 2023-01-01
on_behalf_of = "0205001201"

[[items.materials]]
key = "resident_id_card"
name = "居民身份证"
required = true
form = "electronic"
source = "certificate"
certificate_type = "resident_id_card"
"""


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = write_config(
        tmp_path,
        {
            "street/civil_affairs.toml": STREET_ITEM + TYPE_ERRORS + RULE_ERRORS,
            "street/copy.toml": STREET_ITEM,  # duplicate code across files
            "community/civil_affairs.toml": COMMUNITY_ERRORS,
            "street/syntax.toml": "[[items]]\ncode = \n",
        },
        counts="street = 59\ncommunity = 45",
    )
    departments = root / "registry" / "departments.toml"
    text = departments.read_text(encoding="utf-8")
    departments.write_text(text.replace("1143030256889651QK", "1143030256889651QA"), encoding="utf-8")
    return root


EXPECTED = [
    "registry/departments.toml:civil_affairs:uscc: invalid unified social credit code: check character does not match",
    "catalog/community/civil_affairs.toml:0205001201:on_behalf_of: no item with code '9999999100'",
    "catalog/community/civil_affairs.toml:0205001202:on_behalf_of: 0205001201 (代办不存在的事项) is not a street item",
    "catalog/street/civil_affairs.toml:0205009100:colour: unknown field (check the spelling)",
    "catalog/street/civil_affairs.toml:0205009100:conditions: missing required field",
    "catalog/street/civil_affairs.toml:0205009100:legal_days: Expected `int`, got `str`",
    "catalog/street/civil_affairs.toml:0205009100:materials[0].required: Expected `bool`, got `str`",
    "catalog/street/civil_affairs.toml:0205008100:item_type: unknown item type '99' "
    "(one of 01 行政许可, 05 行政给付, 07 行政确认, 10 其他行政权力, 20 公共服务)",
    "catalog/street/civil_affairs.toml:0205008100:department: unknown department 'planning'",
    "catalog/street/civil_affairs.toml:0205008100:promised_days: promised 12 working days exceeds legal 10",
    "catalog/street/civil_affairs.toml:0205008100:visits: must be 0, 1 or 2, got 3",
    "catalog/street/civil_affairs.toml:0205008100:on_behalf_of: only community items accept on behalf of a street item",
    "catalog/street/civil_affairs.toml:0205008100:materials[0].certificate_type: "
    "source is certificate but no certificate_type is named",
    "catalog/street/civil_affairs.toml:0205008100:materials[1].key: duplicate material key 'id'",
    "catalog/street/civil_affairs.toml:0205008100:materials[1].certificate_type: unknown certificate type 'hukou_book'",
    "catalog/street/civil_affairs.toml:0205008100:materials[2].certificate_type: "
    "only materials with source = certificate name a certificate_type",
    "catalog/street/copy.toml:0205001100:code: duplicate item code (also in catalog/street/civil_affairs.toml)",
    "catalog:-:level: expected 59 street items, found 2",
    "catalog:-:level: expected 45 community items, found 2",
]


def test_broken_catalog_reports_every_problem(broken: Path) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(broken)
    problems = info.value.problems
    for line in EXPECTED:
        assert line in problems, f"missing: {line}\n got:\n" + "\n".join(problems)
    syntax = [p for p in problems if p.startswith("catalog/street/syntax.toml:-:-: invalid TOML: ")]
    assert len(syntax) == 1
    assert len(problems) == len(EXPECTED) + 1, "\n".join(problems)
    # One problem per line, each `file:item:field: message`; str() lists them all for `serve` to print.
    for line in problems:
        assert "\n" not in line
        file, item, field, message = line.split(":", 3)
        assert file and item and field and message.startswith(" ")
    text = str(info.value)
    assert text.startswith(f"catalog invalid: {len(problems)} problems")
    assert all(p in text for p in problems)


def test_expected_counts_parameter_overrides_manifest(broken: Path, tmp_path: Path) -> None:
    _, problems = check_catalog(broken, expected_counts={})
    assert not any(p.startswith("catalog:-:level:") for p in problems)
    root = small_config(tmp_path / "ok")
    with pytest.raises(CatalogError) as info:
        load_catalog(root, expected_counts={"street": 2})
    assert info.value.problems == ["catalog:-:level: expected 2 street items, found 1"]


def test_without_manifest_the_district_counts_apply(tmp_path: Path) -> None:
    root = write_config(tmp_path, {"street/civil_affairs.toml": STREET_ITEM}, counts=None)
    _, problems = check_catalog(root)
    assert problems == [
        "catalog:-:level: expected 59 street items, found 1",
        "catalog:-:level: expected 45 community items, found 0",
    ]


def test_registry_problems(tmp_path: Path) -> None:
    root = small_config(tmp_path)
    types = root / "registry" / "certificate_types.toml"
    text = types.read_text(encoding="utf-8")
    text = text.replace('issuing_department = "veterans"', 'issuing_department = "army"')
    text = text.replace('type_code = "1110000034147425UL003"', 'type_code = "1110000034147425UL03"')
    types.write_text(text, encoding="utf-8")
    units = root / "registry" / "units.toml"
    units.write_text(UNITS.replace("grids = 3", "grids = 473").replace('code = "430302006002"', 'code = "43030200600"'))
    _, problems = check_catalog(root)
    assert problems == [
        "registry/certificate_types.toml:residence_permit:type_code: "
        "must be the defining authority's USCC followed by a 3-digit sequence",
        "registry/certificate_types.toml:veteran_preferential_card:issuing_department: unknown department 'army'",
        "registry/units.toml:43030200600:code: a community code is 12 digits: 430302006 + 3 digits (not 000)",
        "registry/units.toml:430302000000:grids: communities declare 3 grids in total, the district declares 473",
    ]


def test_missing_directories_are_problems_not_crashes(tmp_path: Path) -> None:
    _, problems = check_catalog(tmp_path)
    assert "registry/departments.toml:-:-: file is missing" in problems
    assert "catalog:-:-: catalog directory is missing" in problems


EVIDENCE_ERRORS = """
[[items]]
code = "0205007100"
name = "证据规则错误"
level = "street"
item_type = "05"
department = "civil_affairs"
legal_basis = "《社会救助暂行办法》"
legal_days = 10
promised_days = 5
visits = 1
online = false
fee = 0
conditions = "示例"
steps = ["受理"]
version = 1
status = "published"
valid_from = 2023-01-01
result_certificate = "hukou_book"
commitment_check_days = 0

[[items.materials]]
key = "statement"
name = "声明"
required = true
form = "paper"
source = "applicant"
min_level = "D"

[[items.materials]]
key = "form"
name = "申请书"
required = true
form = "paper"
source = "applicant"
min_level = "A"
"""


def test_evidence_rules_are_checked(tmp_path: Path) -> None:
    root = write_config(tmp_path, {"street/civil_affairs.toml": STREET_ITEM + EVIDENCE_ERRORS}, counts=None)
    _, problems = check_catalog(root, expected_counts={})
    where = "catalog/street/civil_affairs.toml:0205007100:"
    expected = [
        f"{where}materials[0].min_level: D (a commitment) needs the commitment text in `commitment`",
        f"{where}materials[1].min_level: A (an e-certificate) needs source = certificate and a certificate_type",
        f"{where}result_certificate: unknown certificate type 'hukou_book'",
        f"{where}commitment_check_days: must be at least 1 working day",
    ]
    for line in expected:
        assert line in problems, f"missing: {line}\n got:\n" + "\n".join(problems)
    unknown = write_config(
        tmp_path / "unknown",
        {"street/civil_affairs.toml": EVIDENCE_ERRORS.replace('min_level = "A"', 'min_level = "E"')},
    )
    _, problems = check_catalog(unknown, expected_counts={})
    assert any(p.startswith(f"{where}materials[1].min_level: Invalid enum value 'E'") for p in problems), problems
