"""Value rules (`connectors.rules`): every date format, sentinel, code table and text rule; and every way a rule can
be malformed, refused when the department file loads with the file, the field and the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
import pytest

from connectors.mapping import MappingError, RecordMapper
from connectors.rules import (
    CodeRule,
    DateRule,
    RuleError,
    TextRule,
    ValueRule,
    compile_rule,
    value_kind,
)
from connectors.spec import SpecError, decode_department, load_department_file
from demokit.simulators.natural_resources import encode_record
from tests.connectors.helpers import CONFIG_DIR, SHANGHAI, make_certificate

NATURAL_RESOURCES = CONFIG_DIR / "departments" / "natural_resources.toml"
TYPES = {"real_estate_certificate": "1110000078603166X8001"}


def run(field: str, rule: ValueRule, value: Any, *, required: bool = False) -> Any:
    return compile_rule(field, rule, required=required, types=TYPES)(value, SHANGHAI)


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("yyyyMMdd", "20240305", dt.date(2024, 3, 5)),
        ("yyyy-MM-dd", "2024-03-05", dt.date(2024, 3, 5)),
        ("yyyy/MM/dd", "2024/03/05", dt.date(2024, 3, 5)),
        ("yyyy.MM.dd", "2024.03.05", dt.date(2024, 3, 5)),
        ("yyyy年M月d日", "2024年3月5日", dt.date(2024, 3, 5)),
        ("yyyy年M月d日", "2024年03月05日", dt.date(2024, 3, 5)),
        # Beijing time: 23:30 on the 4th is the 4th, whatever the machine's zone
        ("yyyy-MM-dd HH:mm:ss", "2024-03-04 23:30:00", dt.date(2024, 3, 4)),
        ("yyyyMMddHHmmss", "20240304233000", dt.date(2024, 3, 4)),
        ("iso", "2024-03-04T16:30:00+00:00", dt.date(2024, 3, 5)),  # 00:30 on the 5th in Beijing
        ("iso", "2024-03-05", dt.date(2024, 3, 5)),
        ("epoch_ms", 1709569800000, dt.date(2024, 3, 5)),  # 2024-03-05 00:30 +08:00
        ("epoch_ms", "1709569800000", dt.date(2024, 3, 5)),
        ("epoch_s", 1709569800, dt.date(2024, 3, 5)),
    ],
)
def test_every_date_format_reads_a_date(fmt: str, text: Any, expected: dt.date) -> None:
    assert run("issue_date", DateRule(formats=[fmt]), text, required=True) == expected


def test_times_without_an_offset_are_beijing_time_for_a_datetime_field() -> None:
    rule = DateRule(formats=["yyyy-MM-dd HH:mm:ss", "epoch_ms"])
    moment = run("updated_at", rule, "2024-03-04 23:30:00")
    assert moment == dt.datetime(2024, 3, 4, 23, 30, tzinfo=SHANGHAI)
    assert moment.utcoffset() == dt.timedelta(hours=8)
    assert run("updated_at", rule, 1709566200000) == dt.datetime(2024, 3, 4, 23, 30, tzinfo=SHANGHAI)
    # a date-only format on a time field: the start of that day, Beijing time
    assert run("updated_at", DateRule(formats=["yyyyMMdd"]), "20240304") == dt.datetime(2024, 3, 4, tzinfo=SHANGHAI)


def test_formats_are_tried_in_order_and_a_misfit_names_the_rule_never_the_value() -> None:
    rule = DateRule(formats=["yyyy年M月d日", "yyyy-MM-dd"])
    assert run("issue_date", rule, "2024-03-05") == dt.date(2024, 3, 5)
    for bad in ("2024年13月5日", "2024-02-30", "05/03/2024", 20240305, {"y": 2024}):
        with pytest.raises(RuleError) as info:
            run("issue_date", rule, bad, required=True)
        assert info.value.rule == "date[yyyy年M月d日|yyyy-MM-dd]"
        assert info.value.value_kind == value_kind(bad)
        assert str(bad) not in str(info.value)


@pytest.mark.parametrize("text", ["长期", "永久", "长期有效", "9999-12-31", "", "-", " 长期 "])
def test_sentinels_for_no_expiry_and_unknown(text: str) -> None:
    rule = DateRule(
        formats=["yyyy-MM-dd"],
        sentinels={"长期": "no_expiry", "永久": "no_expiry", "长期有效": "no_expiry", "9999-12-31": "no_expiry",
                   "": "no_expiry", "-": "unknown"},
    )  # fmt: skip
    assert run("valid_until", rule, text) is None  # long-term, or not known: no end date either way
    assert run("valid_until", rule, "2030-01-01") == dt.date(2030, 1, 1)


def test_unknown_on_a_required_field_is_a_rejection() -> None:
    rule = DateRule(formats=["yyyy-MM-dd"], sentinels={"-": "unknown"})
    with pytest.raises(RuleError, match="does not know") as info:
        run("issue_date", rule, "-", required=True)
    assert info.value.value_kind == "sentinel"
    with pytest.raises(RuleError, match="missing or null"):
        run("issue_date", rule, None, required=True)
    assert run("division_code", TextRule(sentinels={"-": "unknown"}), "-") is None  # optional: its default applies


def test_code_tables_translate_names_and_codes_into_ours() -> None:
    status = CodeRule(table={"1": "valid", "2": "revoked", "注销": "cancelled", "7": "07"})
    codes: tuple[Any, ...] = ("1", 1, "2", " 注销 ", "7")
    assert [run("status", status, v) for v in codes] == ["01", "01", "03", "04", "07"]
    with pytest.raises(RuleError, match="not a code in the table") as info:
        run("status", status, "8")
    assert info.value.rule == "code" and info.value.value_kind == "text(1)"
    with pytest.raises(RuleError, match="text or a number"):
        run("status", status, ["1"])
    assert run("status", CodeRule(table={"1": "valid"}, default="other"), "8") == "99"
    kinds = CodeRule(table={"BDCQZS": "real_estate_certificate", "OLD": "1110000078603166X8001"})
    assert run("type_code", kinds, "BDCQZS") == run("type_code", kinds, "OLD") == "1110000078603166X8001"
    ids = CodeRule(table={"身份证": "citizen_id", "统一社会信用代码": "uscc"})
    assert (run("holder_code_type", ids, "身份证"), run("holder_code_type", ids, "统一社会信用代码")) == ("111", "001")
    free = CodeRule(table={"ED25519": "ed25519"})
    assert run("signature_alg", free, "ED25519") == "ed25519"  # a field with no closed set: any text


def test_text_rules_strip_and_take_numbers_as_text() -> None:
    assert run("number", TextRule(), "  No.1 ") == "No.1"
    assert run("number", TextRule(strip=False), " No.1 ") == " No.1 "
    assert run("number", TextRule(), 42) == "42"
    with pytest.raises(RuleError, match="expected text"):
        run("number", TextRule(), {"a": 1})


def test_value_kinds_describe_without_content() -> None:
    values: tuple[Any, ...] = (None, True, 3, 1.5, "", "abc", {}, [], dt.date(2024, 1, 1))
    kinds = [value_kind(v) for v in values]
    assert kinds == ["null", "boolean", "integer", "number", "empty text", "text(3)", "object", "array", "date"]


def test_a_mapping_error_carries_field_source_kind_and_rule() -> None:
    spec = load_department_file(NATURAL_RESOURCES)
    mapper = RecordMapper(spec)
    record = encode_record(
        make_certificate(1, department="natural_resources"), dt.datetime(2025, 1, 1, tzinfo=SHANGHAI)
    )
    assert mapper.map(record).certificate == make_certificate(1, department="natural_resources")
    with pytest.raises(MappingError) as info:
        mapper.map(dict(record, fzrq="2024年2月30日"))
    error = info.value
    assert (error.field, error.source, error.value_kind) == ("issue_date", "fzrq", "text(10)")
    assert error.rule == "date[yyyy年M月d日|yyyy-MM-dd]"
    assert "2024年2月30日" not in str(error)


# --- malformed rules are refused at load, naming file, field and fix ------------------------------------------


def with_rules(extra: str, *, replace: tuple[str, str] | None = None) -> str:
    text = NATURAL_RESOURCES.read_text(encoding="utf-8")
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    return text + "\n" + extra


@pytest.mark.parametrize(
    ("change", "where", "fix"),
    [
        ('[mapping.rules.holder_name]\nkind = "datum"\n', "mapping.rules.holder_name.kind",
         "use one of date, code, text"),
        ('[mapping.rules.holder_name]\nkind = "date"\nformats = ["yyyy-MM-dd"]\n', "mapping.rules.holder_name.kind",
         'a date rule applies to issue_date, valid_from, valid_until, updated_at; use kind = "code" or "text"'),
        ('[mapping.rules.number]\nkind = "text"\nsentinels = { "-" = "none" }\n', "mapping.rules.number.sentinels",
         'use "no_expiry" or "unknown"'),
        ('[mapping.rules.number]\nkind = "text"\nsentinels = { "-" = "no_expiry" }\n', "mapping.rules.number.sentinels",
         'no_expiry only means something for valid_until; use "unknown" here'),
        ('[mapping.rules.no_such_field]\nkind = "text"\n', "mapping.rules.no_such_field",
         "not a mapped field; use one of"),
        ('[mapping.rules.number]\nkind = "text"\nstrip = true\ncase = "upper"\n', "mapping.rules.number",
         "unknown field `case`"),
        ('[mapping.transforms]\nstatus = ["strip"]\n', "mapping.rules.status", "drop transforms.status"),
    ],
)  # fmt: skip
def test_malformed_rules_are_refused_with_file_field_and_fix(change: str, where: str, fix: str) -> None:
    with pytest.raises(SpecError) as info:
        decode_department(with_rules(change), source="natural_resources.toml")
    lines = info.value.problems
    assert any(line.startswith(f"natural_resources.toml: {where}") and fix in line for line in lines), lines


@pytest.mark.parametrize(
    ("old", "new", "where", "fix"),
    [
        ('formats = ["epoch_ms"]', 'formats = ["epoch_millis"]', "mapping.rules.updated_at.formats[0]",
         "unknown format 'epoch_millis'; use one of yyyyMMdd, yyyy-MM-dd"),
        ('formats = ["epoch_ms"]', "formats = []", "mapping.rules.updated_at.formats",
         'list at least one format, e.g. formats = ["yyyy-MM-dd"]'),
        ('"2" = "revoked"', '"2" = "revokd"', "mapping.rules.status.table.'2'",
         "'revokd' is not ours for status; use one of valid, suspended, revoked"),
        ('"BDCQZS" = "real_estate_certificate"', '"BDCQZS" = "business_license"',
         "mapping.rules.type_code.table.'BDCQZS'",
         "is not ours for type_code; use one of real_estate_certificate, 1110000078603166X8001"),
        ('"身份证" = "citizen_id"', '"身份证" = "passport"', "mapping.rules.holder_code_type.table.'身份证'",
         "use one of citizen_id, uscc, 111, 001"),
        ('table = { "BDCQZS" = "real_estate_certificate" }', "table = {}", "mapping.rules.type_code.table",
         "list the department's codes"),
        ('kind = "date"\nformats = ["yyyy年M月d日", "yyyy-MM-dd"]', 'kind = "code"\ntable = { "a" = "b" }',
         "mapping.rules.issue_date.kind", 'issue_date is a date: use kind = "date"'),
        ('kind = "date"\nformats = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd"]', 'kind = "text"',
         "mapping.rules.valid_from.kind", 'valid_from is a date: use kind = "date"'),
        ('identifier = "dzzzbs"\nnumber = "bdcqzh"', 'identifier = "dzzzbs"\nnumber = "bdcqzh"\nholder_code_type = ""',
         "mapping.holder_code_type", "(file)"),  # duplicate key: not TOML
        ('holder_code_type = "qlrzjlx"', 'holder_code_type = ""', "mapping.rules.holder_code_type",
         "mapping.holder_code_type is empty: name the department's field, or drop the rule"),
        ('outcome = "retriable"', 'outcome = "again"', "format.result_rules[0].outcome",
         "use retriable, fatal or rejected"),
        ('codes = ["40401", "40302"]', 'codes = ["40401", "50301"]', "format.result_rules[1].codes",
         "'50301' is listed by result_rules[0] too; keep it in one"),
        ('codes = ["40401", "40302"]', 'codes = ["0"]', "format.result_rules[1].codes",
         "'0' is result_ok (success); drop it from the rule"),
        ('codes = ["40401", "40302"]', "codes = []", "format.result_rules[1].codes", "list the result codes"),
        ('result_code = "code"', 'result_code = ""', "format.result_code",
         "result_rules and result_message need the path of the result code"),
    ],
)  # fmt: skip
def test_malformed_rule_values_are_refused_with_file_field_and_fix(old: str, new: str, where: str, fix: str) -> None:
    with pytest.raises(SpecError) as info:
        decode_department(with_rules("", replace=(old, new)), source="natural_resources.toml")
    lines = info.value.problems
    if fix == "(file)":
        assert lines[0].startswith("natural_resources.toml: (file): not valid TOML"), lines
        return
    assert any(line.startswith(f"natural_resources.toml: {where}") and fix in line for line in lines), lines


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "natural_resources.toml"
    text = with_rules("", replace=('formats = ["epoch_ms"]', 'formats = ["ms"]'))
    path.write_text(text.replace('"2" = "revoked"', '"2" = "gone"'), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_department_file(path)
    assert len(info.value.problems) == 2
    assert all(line.startswith(f"{path}: mapping.rules.") for line in info.value.problems)


def test_the_shipped_natural_resources_file_declares_every_kind_of_rule() -> None:
    spec = load_department_file(NATURAL_RESOURCES)
    assert spec.mapping is not None and spec.format is not None
    kinds = {type(rule) for rule in spec.mapping.rules.values()}
    assert kinds == {DateRule, CodeRule, TextRule}
    assert {r.outcome for r in spec.format.result_rules} == {"retriable", "rejected"}
    assert spec.format.result_default == "fatal"
    assert spec.quality.max_rejected_share == 0.02
    assert msgspec.json.encode(spec)  # plain data through and through
