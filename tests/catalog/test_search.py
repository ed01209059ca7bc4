"""Search by Chinese substring and by pinyin (full or initials), built once at load time."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.catalog import Catalog
from catalog.loader import cached_catalog
from catalog.models import Item, Material
from catalog.search import SearchIndex, normalise, pinyin_forms
from gateway.settings import DEFAULT_CONFIG_DIR


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return cached_catalog(DEFAULT_CONFIG_DIR)


def names(items: list[Item]) -> list[str]:
    return [i.name for i in items]


@pytest.mark.parametrize(
    "query",
    [
        "zdshbz",
        "ZDSHBZ",
        "zuidishenghuobaozhang",
        "Zui Di Sheng Huo Bao Zhang",
        "最低生活保障",
        "生活保障",
        "低保",
        "dibao",
    ],
)
def test_minimum_living_allowance_is_found_first(catalog: Catalog, query: str) -> None:
    found = names(catalog.search(query))
    assert found[0] == "最低生活保障", found
    assert "最低生活保障申请受理" in found


def test_initials_substring_and_full_pinyin_substring(catalog: Catalog) -> None:
    assert "最低生活保障" in names(catalog.search("shbz"))  # middle of the initials
    assert "最低生活保障" in names(catalog.search("shenghuobao"))  # middle of the full pinyin
    social_security = names(catalog.search("sbk"))  # keyword 社保卡 → initials
    assert "社会保障卡密码修改与重置" in social_security


def test_exact_and_prefix_rank_before_substring(catalog: Catalog) -> None:
    found = names(catalog.search("临时救助"))
    assert found[0] == "临时救助"  # exact
    assert found[1] == "临时救助申请受理"  # prefix
    found = names(catalog.search("残疾人证"))
    prefix = [n for n in found if n.startswith("残疾人证")]
    assert found[: len(prefix)] == prefix  # every prefix match before the first substring match
    assert "困难重度残疾人家庭无障碍改造申请" not in found  # 残疾人证 is not a substring of it


def test_digits_code_and_no_match(catalog: Catalog) -> None:
    assert names(catalog.search("80zs")) == ["80周岁以上老年人高龄津贴发放"]
    assert names(catalog.search("0205001100")) == ["最低生活保障"]
    assert catalog.search("qwxz") == []
    assert catalog.search("火星") == []
    assert len(catalog.search("")) == len(catalog.items)
    assert len(catalog.search("bz", limit=3)) == 3


def test_words_separated_by_spaces_must_all_match(catalog: Catalog) -> None:
    assert names(catalog.search("最低 保障"))[0] == "最低生活保障"


def _item(code: str, name: str, keywords: tuple[str, ...] = ()) -> Item:
    return Item(
        code=code,
        name=name,
        level="street",
        item_type="20",
        department="health",
        legal_basis="法",
        legal_days=5,
        promised_days=1,
        visits=1,
        online=True,
        fee=0,
        conditions="条件",
        steps=("申请",),
        materials=(Material(key="a", name="申请表", required=True, form="paper", source="applicant"),),
        version=1,
        status="published",
        valid_from=dt.date(2024, 1, 1),
        keywords=keywords,
    )


def test_polyphones_index_the_phrase_reading_and_the_common_reading() -> None:
    fulls, initials = pinyin_forms("重度残疾人")
    assert "zhongducanjiren" in fulls and "zdcjr" in initials
    index = SearchIndex([_item("A001", "长城乡便民服务"), _item("A002", "银行卡", ("储蓄卡",))])
    assert names(index.search("changcheng")) == ["长城乡便民服务"]
    assert names(index.search("yhk")) == ["银行卡"]  # 行 read hang in 银行
    assert names(index.search("cxk")) == ["银行卡"]  # via the keyword


def test_normalise_folds_width_case_and_punctuation() -> None:
    assert normalise("ＺＤ Sh-bz（）") == "zdshbz"
    assert normalise("《独生子女父母光荣证》") == "独生子女父母光荣证"
