"""湘潭市雨湖区残疾人联合会 — a legacy XML system with an API key and page numbers (docs/simulators.md §4).

Types: 中华人民共和国残疾人证. Everything is XML, errors included; change times are compact ``yyyyMMddHHmmss`` in
Asia/Shanghai time, as such systems store them.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from catalog.calendar import DISTRICT_TZ
from demokit.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    RecordLayout,
    int_param,
    page_count,
    page_size_param,
)

APP_KEY = "demo-disabled-persons-key"
DEFAULT_PAGE_SIZE = 100
COMPACT_TIME = "%Y%m%d%H%M%S"
XML_CONTENT_TYPE = "text/xml"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def compact_time(value: dt.datetime) -> str:
    return value.astimezone(DISTRICT_TZ).strftime(COMPACT_TIME)


def parse_compact_time(raw: str) -> dt.datetime:
    if len(raw) != 14 or not raw.isdigit():
        raise ValueError(raw)
    return dt.datetime.strptime(raw, COMPACT_TIME).replace(tzinfo=DISTRICT_TZ)


def _element(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


#: Child elements of ``<Record>``: every value is text, empty where JSON systems send null.
RECORD = RecordLayout(
    identifier="ZZBS",
    number="ZZBH",
    type_code="ZZLXDM",
    name="ZZMC",
    holder_name="CZZT",
    holder_code="CZZTDM",
    holder_code_type="CZZTDMLX",
    issuer_name="FZJG",
    issuer_code="FZJGDM",
    issue_date="FZRQ",
    valid_from="YXQQ",
    valid_until="YXQZ",
    status="ZZZT",
    division_code="XZQH",
    attributes={"category": "CJLB", "grade": "CJDJ"},
    updated_at="GXSJ",
    signature=None,
    signature_parts=("QMSF", "QMKID", "QM"),
    long_term="",
    unsigned="",
    time_format=compact_time,
)


def record_xml(record: dict[str, Any]) -> str:
    return "<Record>" + "".join(_element(name, value) for name, value in record.items()) + "</Record>"


def xml_response(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    response = web.Response(body=body.encode("utf-8"), status=status, content_type=XML_CONTENT_TYPE, charset="utf-8")
    response.headers.update(headers or {})
    return response


class DisabledPersonsSimulator(DepartmentSimulator):
    code = "disabled_persons"
    bulk_path = "/cdpf/services/CertQuery"
    layout = RECORD

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/cdpf/services/CertQuery", self.cert_query, name=f"{DATA_ROUTE}:query")

    def error_response(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        body = f"{_DECLARATION}<Response>{_element('ResultCode', str(status))}{_element('Message', message)}</Response>"
        return xml_response(body, status, headers)

    def authenticate(self, request: web.Request) -> None:
        given = request.headers.get("AppKey", "")
        if not given or not hmac.compare_digest(given.encode(), APP_KEY.encode()):
            raise ApiError(401, "AppKey 无效或缺失 (invalid or missing AppKey)")

    def _document(self, records: list[dict[str, Any]], total_pages: int, page_no: int) -> web.Response:
        body = (
            f"{_DECLARATION}<Response><ResultCode>0</ResultCode><TotalPage>{total_pages}</TotalPage>"
            f"<PageNo>{page_no}</PageNo><Records>{''.join(map(record_xml, records))}</Records></Response>"
        )
        return xml_response(body)

    async def cert_query(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        if "sfzh" in request.query:
            return self._document(self.records(self.holder_entries(request, "sfzh")), 1, 1)
        page_no = int_param(request, "pageNo", default=1, low=1)
        page_size = page_size_param(request, "pageSize", default=DEFAULT_PAGE_SIZE)
        raw_begin = request.query.get("beginTime", "").strip()
        begin = None
        if raw_begin:
            try:
                begin = parse_compact_time(raw_begin)
            except ValueError:
                raise ApiError(400, "beginTime: must be yyyyMMddHHmmss (Asia/Shanghai), e.g. 20250630083000") from None
        page, changed = self.changed_page(begin, (page_no - 1) * page_size, page_size)
        return self._document(self.records(page), page_count(changed, page_size), page_no)
