"""Formats and mapping: JSON and XML records become unified certificates; hostile or broken bodies are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.formats import FormatError, parse, result_code
from connectors.mapping import MappingError, RecordMapper, format_since
from connectors.registry import load_departments
from connectors.spec import DepartmentSpec, JsonFormat, XmlFormat
from connectors.trust import TrustStore
from tests.connectors.helpers import CONFIG_DIR, SHANGHAI, make_certificate, public_security_record

SPECS = {s.code: s for s in load_departments(CONFIG_DIR)}


def xml_record(
    spec: DepartmentSpec, n: int, *, valid_until: str = "", attributes: dict[str, str] | None = None
) -> bytes:
    until = dt.date.fromisoformat(valid_until) if valid_until else None
    certificate = make_certificate(n, department="disabled_persons", valid_until=until, attributes=attributes or {})
    assert certificate.signature is not None
    fields = {
        "ZZBS": certificate.identifier,
        "ZZBH": certificate.number,
        "ZZLXDM": certificate.type_code,
        "ZZMC": certificate.name,
        "CZZT": certificate.holder_name,
        "CZZTDM": certificate.holder_code,
        "CZZTDMLX": "111",
        "FZJG": certificate.issuer_name,
        "FZJGDM": certificate.issuer_code,
        "FZRQ": "2020-01-01",
        "YXQQ": "2020-01-01",
        "YXQZ": valid_until,
        "ZZZT": "01",
        "XZQH": "430302",
        "GXSJ": "20250301083000",
        "QMSF": certificate.signature.alg,
        "QMKID": certificate.signature.key_id,
        "QM": certificate.signature.value,
    }
    return "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()).encode()


def xml_document(*records: bytes, total_pages: int = 1, code: str = "0") -> bytes:
    inner = b"".join(b"<Record>" + r + b"</Record>" for r in records)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?><Response><ResultCode>' + code.encode() + b"</ResultCode>"
        b"<TotalPage>"
        + str(total_pages).encode()
        + b"</TotalPage><PageNo>1</PageNo><Records>"
        + inner
        + b"</Records></Response>"
    )


def test_xml_records_map_with_transforms() -> None:
    spec = SPECS["disabled_persons"]
    assert isinstance(spec.format, XmlFormat)
    document = parse(xml_document(xml_record(spec, 1), xml_record(spec, 2, valid_until="2030-12-31")), spec.format)
    assert document.value("TotalPage") == "1"
    mapper = RecordMapper(spec)
    first, second = (mapper.map(r) for r in document.records)
    assert first.certificate.valid_until is None  # empty YXQZ = long-term
    assert second.certificate.valid_until == dt.date(2030, 12, 31)
    assert first.updated_at == dt.datetime(2025, 3, 1, 8, 30, tzinfo=SHANGHAI)
    assert first.certificate.type_key == "disability_certificate"
    # The XML signature still verifies: the unified fields are what was signed.
    verdict = TrustStore.load(CONFIG_DIR / "trust").verify(first.certificate, department="disabled_persons")
    assert verdict.ok, verdict


def test_xml_attribute_fields() -> None:
    spec = SPECS["disabled_persons"]
    assert isinstance(spec.format, XmlFormat)
    attributes = {"category": "肢体", "grade": "二级"}
    record = xml_record(spec, 3, attributes=attributes) + "<CJLB>肢体</CJLB><CJDJ>二级</CJDJ>".encode()
    mapped = RecordMapper(spec).map(parse(xml_document(record), spec.format).records[0])
    assert mapped.certificate.attributes == attributes
    assert TrustStore.load(CONFIG_DIR / "trust").verify(mapped.certificate, department="disabled_persons").ok


@pytest.mark.parametrize(
    "body",
    [
        # billion laughs
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><Response>&b;</Response>',
        # external entity
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response>&x;</Response>',
        # a bare DTD
        b'<?xml version="1.0"?><!DOCTYPE Response SYSTEM "http://evil.invalid/x.dtd"><Response/>',
    ],
)
def test_xml_with_dtd_or_entities_is_refused(body: bytes) -> None:
    with pytest.raises(FormatError, match="DTD or entities"):
        parse(body, XmlFormat(records="Records/Record"))


def test_broken_bodies() -> None:
    with pytest.raises(FormatError, match="not well-formed XML"):
        parse(b"<Response><Records>", XmlFormat(records="Records/Record"))
    xml = XmlFormat(records="Records/Record", result_code="ResultCode")
    assert result_code(parse(xml_document(code="401"), xml), xml) == ("401", "")
    with pytest.raises(FormatError, match="result code missing"):
        parse(b"<Response><Records/></Response>", xml)
    with pytest.raises(FormatError, match="not valid JSON"):
        parse(b'{"data": [', JsonFormat(items="data"))
    with pytest.raises(FormatError, match="expected an array"):
        parse(b'{"data": {}}', JsonFormat(items="data"))
    # a record that is not an object is the mapping's to reject, alone: the page still parses
    assert parse(b'{"data": [{}, 3]}', JsonFormat(items="data")).records == [{}, 3]
    envelope = JsonFormat(items="rows", result_code="code", result_message="msg")
    assert result_code(parse(b'{"code": 7, "msg": "busy", "rows": []}', envelope), envelope) == ("7", "busy")
    ok = parse(b'{"code": 0}', JsonFormat(items="rows", result_code="code"))
    assert ok.records == [] and result_code(ok, envelope) is None


def test_mapping_errors_name_unified_and_department_fields_never_values() -> None:
    spec = SPECS["public_security"]
    mapper = RecordMapper(spec)
    good = public_security_record(make_certificate(1), dt.datetime(2025, 1, 1, tzinfo=SHANGHAI))
    assert mapper.map(good).certificate.holder_code == good["holderIdNo"]
    for field, value, expected in [
        ("issueDate", "01/02/2020", "issue_date (issueDate)"),
        ("holderIdType", "999", "holder_code_type (holderIdType)"),
        ("licenseId", None, "identifier (licenseId)"),
        ("updatedAt", "yesterday", "updated_at (updatedAt)"),
    ]:
        broken = dict(good, **{field: value})
        with pytest.raises(MappingError) as info:
            mapper.map(broken)
        assert str(info.value).startswith(expected), str(info.value)
        assert good["holderIdNo"] not in str(info.value)


def test_unknown_type_code_maps_without_a_type_key() -> None:
    record = public_security_record(make_certificate(1), dt.datetime(2025, 1, 1, tzinfo=SHANGHAI))
    record["licenseTypeCode"] = "11100000942518256Y001"
    assert RecordMapper(SPECS["public_security"]).map(record).certificate.type_key == ""


def test_format_since() -> None:
    at = dt.datetime(2025, 3, 1, 0, 30, tzinfo=dt.UTC)
    assert format_since(at, "iso", SHANGHAI) == "2025-03-01T00:30:00+00:00"
    assert format_since(at, "%Y%m%d%H%M%S", SHANGHAI) == "20250301083000"
