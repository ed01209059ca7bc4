"""The typed fast path for JSON pages (`TypedJsonPages` + `RecordMapper.map_row`) against the general path (`parse` +
`RecordMapper.map`): the same certificates for every JSON department file, and whatever the fast path refuses is
judged by the general path, so the errors a client reports are the general path's."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from connectors.client import ConnectorPool
from connectors.formats import FormatError, TypedJsonPages, parse
from connectors.mapping import MappingError, RecordMapper
from connectors.model import Certificate
from connectors.registry import load_departments
from connectors.spec import DepartmentSpec, JsonFormat
from connectors.trust import TrustStore
from demokit.simulators.natural_resources import encode_record
from tests.connectors.helpers import CONFIG_DIR, SHANGHAI, make_certificate, public_security_spec

SPECS = {s.code: s for s in load_departments(CONFIG_DIR)}
JSON_DEPARTMENTS = sorted(code for code, spec in SPECS.items() if isinstance(spec.format, JsonFormat))
UPDATED = dt.datetime(2025, 3, 1, 9, 30, tzinfo=SHANGHAI)


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        record = record.setdefault(part, {})
    record[leaf] = value


def department_record(spec: DepartmentSpec, certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    """``certificate`` under the department's own names, as its file maps them (dates ISO, long-term as null or
    as "" where the file turns "" into null)."""
    mapping = spec.mapping
    assert mapping is not None
    if spec.code == "natural_resources":  # its values need its value rules: written as its simulator writes them
        return encode_record(certificate, updated_at)
    record: dict[str, Any] = {}
    unified = msgspec.to_builtins(certificate)
    for name, value in unified.items():
        path = getattr(mapping, name, "") if name not in ("signature", "type_key") else ""
        if not path:
            continue
        if value is None and "empty_as_none" in mapping.transforms.get(name, []):
            value = ""
        _put(record, path, value)
    signature = certificate.signature
    for name, value in (
        ("signature_alg", signature.alg if signature else None),
        ("signature_key_id", signature.key_id if signature else None),
        ("signature_value", signature.value if signature else None),
    ):
        _put(record, getattr(mapping, name), value)
    _put(record, mapping.updated_at, updated_at.isoformat())
    return record


def page_body(spec: DepartmentSpec, records: list[Any], **top: Any) -> bytes:
    assert isinstance(spec.format, JsonFormat)
    document: dict[str, Any] = dict(top)
    if spec.format.result_code:
        _put(document, spec.format.result_code, 0)
    _put(document, spec.format.items, records)
    return msgspec.json.encode(document)


def both_paths(spec: DepartmentSpec, body: bytes, paths: list[str]) -> tuple[Any, Any]:
    mapper = RecordMapper(spec)
    assert mapper.row_type is not None
    assert isinstance(spec.format, JsonFormat)
    document = TypedJsonPages(spec.format, mapper.row_type, paths).decode(body)
    general = parse(body, spec.format)
    assert [document.value(p) for p in paths] == [general.value(p) for p in paths]
    return [mapper.map_row(r) for r in document.records], [mapper.map(r) for r in general.records]


@pytest.mark.parametrize("code", JSON_DEPARTMENTS)
def test_typed_records_map_exactly_like_the_general_path(code: str) -> None:
    spec = SPECS[code]
    certificates = [
        make_certificate(1, department=code),
        make_certificate(2, department=code, valid_until=None),  # long-term
        make_certificate(3, department=code, status="03"),
        make_certificate(4, department=code, sign=False),
        make_certificate(5, department=code, attributes={}),
        make_certificate(6, department=code, attributes={"category": "视力", "grade": "二级"}),
    ]
    records = [department_record(spec, c, UPDATED + dt.timedelta(seconds=i)) for i, c in enumerate(certificates)]
    assert spec.mapping is not None
    unknown_type = dict(records[0])
    _put(unknown_type, spec.mapping.type_code, "11100000942518256Y999")
    coded = "type_code" in spec.mapping.rules  # a code table: a kind not in it is a rejection, not an unknown type
    if not coded:
        records.append(unknown_type)
    fast, general = both_paths(spec, page_body(spec, records, total=7, nextCursor="abc"), ["total", "nextCursor"])
    assert fast == general
    assert [r.certificate for r in fast[:6]] == certificates
    if coded:
        with pytest.raises(MappingError, match="type_code"):
            RecordMapper(spec).map(unknown_type)
    else:
        assert fast[-1].certificate.type_key == ""
    assert all(r.updated_at is not None and r.updated_at.utcoffset() == dt.timedelta(hours=8) for r in fast)


def test_nulls_and_missing_fields_take_the_defaults_on_both_paths() -> None:
    spec = SPECS["public_security"]
    record = department_record(spec, make_certificate(1), UPDATED)
    record["statusCode"] = None  # null: the unified default (01) applies, as on the general path
    del record["regionCode"]  # absent: default division
    record["validTo"] = None
    record["sign"] = None
    del record["updatedAt"]
    fast, general = both_paths(spec, page_body(spec, [record]), [])
    assert fast == general
    certificate = fast[0].certificate
    assert (certificate.status, certificate.division_code, certificate.valid_until) == ("01", "430302", None)
    assert certificate.signature is None and fast[0].updated_at is None
    # A signature with an empty part is no signature (the certificate is then judged unsigned), on both paths.
    for empty in ({"alg": "ed25519", "keyId": "", "value": "c2ln"}, {"alg": "", "keyId": "k", "value": "c2ln"}, {}):
        record["sign"] = empty
        fast, general = both_paths(spec, page_body(spec, [record]), [])
        assert fast == general and fast[0].certificate.signature is None
    # An empty items array, or none at all, is an empty page on both paths.
    assert both_paths(spec, b'{"data": []}', []) == ([], [])
    assert both_paths(spec, b"{}", []) == ([], [])


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("issueDate", "01/02/2020", "issue_date (issueDate)"),
        ("holderIdType", "999", "holder_code_type (holderIdType)"),
        ("licenseId", None, "identifier (licenseId)"),
        ("updatedAt", "yesterday", "updated_at (updatedAt)"),
        ("sign", {"alg": "rsa", "keyId": "k", "value": "v"}, "signature_alg (sign.alg)"),
        ("ext", {"grade": 2}, "attributes"),
    ],
)
def test_what_the_typed_path_refuses_the_general_path_reports(field: str, value: Any, expected: str) -> None:
    spec = SPECS["public_security"]
    mapper = RecordMapper(spec)
    assert mapper.row_type is not None and isinstance(spec.format, JsonFormat)
    record = department_record(spec, make_certificate(1), UPDATED)
    record[field] = value
    body = page_body(spec, [record])
    with pytest.raises((msgspec.DecodeError, ValueError)):
        document = TypedJsonPages(spec.format, mapper.row_type).decode(body)
        [mapper.map_row(r) for r in document.records]
    with pytest.raises(MappingError) as info:
        mapper.map(parse(body, spec.format).records[0])
    assert str(info.value).startswith(expected), str(info.value)


def test_bodies_the_typed_path_refuses_are_format_errors_on_the_general_path() -> None:
    spec = SPECS["civil_affairs"]
    mapper = RecordMapper(spec)
    assert mapper.row_type is not None and isinstance(spec.format, JsonFormat)
    typed = TypedJsonPages(spec.format, mapper.row_type, ["total"])
    for body, message in [
        (b'{"code": 0, "rows": [', "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"code": 0, "rows": {}}', "expected an array"),
    ]:
        with pytest.raises((msgspec.DecodeError, FormatError)):
            typed.decode(body)
        with pytest.raises(FormatError, match=message):
            parse(body, spec.format)
    # A record that is not an object: the typed path refuses the page, the general path keeps it for the mapping
    # to reject alone.
    with pytest.raises(msgspec.DecodeError):
        typed.decode(b'{"code": 0, "rows": [3]}')
    assert parse(b'{"code": 0, "rows": [3]}', spec.format).records == [3]
    # A result code other than result_ok decodes on both paths; the client judges it (format.result_rules).
    assert typed.decode(b'{"code": 7, "rows": []}').value("code") == 7


def test_departments_the_typed_path_cannot_express_use_the_general_path() -> None:
    # The legacy XML system sends attributes as fields of their own: no typed record.
    assert RecordMapper(SPECS["disabled_persons"]).row_type is None
    # A key used for two unified fields cannot be one Struct field.
    spec = SPECS["health"]
    assert spec.mapping is not None
    twice = msgspec.structs.replace(spec, mapping=msgspec.structs.replace(spec.mapping, valid_from="issued"))
    assert RecordMapper(twice).row_type is None
    assert all(RecordMapper(SPECS[code]).row_type is not None for code in JSON_DEPARTMENTS)


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """public_security's bulk path answering the bodies a test queues, one per request."""
    bodies: list[bytes] = []

    async def licenses(request: web.Request) -> web.Response:
        return web.Response(body=bodies.pop(0), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v2/licenses", licenses)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", bodies
    finally:
        await runner.cleanup()


async def test_a_record_the_general_path_cannot_map_is_quarantined_with_its_index(
    raw_server: tuple[str, list[bytes]], tmp_path: Path, trust: TrustStore
) -> None:
    url, bodies = raw_server
    spec = public_security_spec(url)
    good = department_record(spec, make_certificate(1), UPDATED)
    bad = department_record(spec, make_certificate(2), UPDATED)
    bad["issueDate"] = "01/02/2020"
    bodies += [page_body(spec, [good], nextCursor=None), page_body(spec, [good, bad], nextCursor=None)]
    async with ConnectorPool([spec], data_dir=tmp_path, trust=trust) as pool:
        pages = [page async for page in pool.client("public_security").pages()]
        assert [r.certificate for r in pages[0].records] == [make_certificate(1)]
        (page,) = [page async for page in pool.client("public_security").pages()]
    assert [r.certificate for r in page.records] == [make_certificate(1)]
    (rejected,) = page.quarantined
    assert (rejected.position, rejected.page, rejected.field, rejected.source) == (1, 1, "issue_date", "issueDate")
    assert rejected.value_kind == "text(10)" and rejected.rule == "type date"
    assert "01/02/2020" not in msgspec.json.encode(rejected).decode()
