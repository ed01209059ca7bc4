"""湘潭市自然资源和规划局雨湖分局 — a provincial-platform style JSON API (docs/simulators.md §7).

Types: 不动产权证书. What sets it apart from the other six: every answer is HTTP 200 with a business envelope
``{"code", "msg", "data"}`` (errors too: ``code`` says what went wrong), page-number paging that reports the number
of *records* (``data.total``), its own code tables (status ``"1"`` / ``"2"`` / ``"注销"``, certificate kind
``"BDCQZS"``, ID type ``"身份证"``, signature algorithm ``"ED25519"``), dates in three styles (``yyyy年M月d日``,
``yyyy-MM-dd HH:mm:ss`` Beijing time, ``yyyy-MM-dd``), long-term validity written as one of several sentinel
texts, and the change time as epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from catalog.calendar import DISTRICT_TZ
from connectors.model import Certificate
from demokit.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    citizen_id_param,
    int_param,
    json_response,
    page_size_param,
)

APP_KEY = "demo-natural-resources-key"
DEFAULT_PAGE_SIZE = 100

#: Our status codes -> this platform's (its code table, as the department file declares it the other way round).
STATUS_OUT = {"01": "1", "02": "3", "03": "2", "04": "注销", "05": "4", "06": "5", "07": "6", "99": "9"}
KIND_OUT = {"1110000078603166X8001": "BDCQZS"}
ID_TYPE_OUT = {"111": "身份证", "001": "统一社会信用代码"}
ALG_OUT = {"ed25519": "ED25519", "ecdsa-p256-sha256": "ECDSA_P256"}
#: How a long-term (长期) certificate's end date is written: the platform's exports mix these.
LONG_TERM = ("长期", "9999-12-31", "永久", "", "长期有效")

#: Business result codes (HTTP status is always 200).
OK = 0
_CODES = {400: 40001, 401: 40101, 403: 40301, 404: 40400, 405: 40500, 429: 42901, 503: 50301}
#: A holder with no certificates here.
NOT_FOUND = 40401
#: A bulk page this platform will not share (``POST /__sim__/refuse``).
REFUSED = 40302


def chinese_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def parse_local_time(raw: str) -> dt.datetime:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time (a ``+`` for the space, as some clients send it, is accepted)."""
    return dt.datetime.strptime(raw.strip().replace("+", " "), "%Y-%m-%d %H:%M:%S").replace(tzinfo=DISTRICT_TZ)


def encode_record(certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    """One certificate as this platform writes it."""
    c = certificate
    pick = sum(map(ord, c.identifier)) % len(LONG_TERM)  # deterministic per certificate
    valid_until = c.valid_until.isoformat() if c.valid_until is not None else LONG_TERM[pick]
    sig = c.signature
    return {
        "dzzzbs": c.identifier,
        "bdcqzh": c.number,
        "zzlx": KIND_OUT.get(c.type_code, c.type_code),
        "zzmc": c.name,
        "qlr": c.holder_name,
        "qlrzjhm": c.holder_code,
        "qlrzjlx": ID_TYPE_OUT[c.holder_code_type],
        "djjg": c.issuer_name,
        "djjgdm": c.issuer_code,
        "fzrq": chinese_date(c.issue_date),
        "qlqssj": f"{c.valid_from.isoformat()} 00:00:00",
        "qljssj": valid_until,
        "zt": STATUS_OUT[c.status],
        "xzqdm": c.division_code,
        "fj": c.attributes,
        "gxsj": int(updated_at.timestamp() * 1000),
        "qm": None if sig is None else {"sf": ALG_OUT[sig.alg], "kid": sig.key_id, "z": sig.value},
    }


class NaturalResourcesSimulator(DepartmentSimulator):
    code = "natural_resources"
    bulk_path = "/bdc/api/zzxx/list"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Bulk page numbers answered with the REFUSED business code.
        self.refused_pages: set[int] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/bdc/api/zzxx/list", self.listing, name=f"{DATA_ROUTE}:list")
        app.router.add_get("/bdc/api/zzxx/holder", self.holder, name=f"{DATA_ROUTE}:holder")
        app.router.add_post("/__sim__/refuse", self.refuse)

    def extra_stats(self) -> dict[str, Any]:
        return {"refused_pages": sorted(self.refused_pages)}

    def error_response(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        """Every error is a business code in an HTTP 200 envelope, as on the provincial platforms."""
        code = _CODES.get(status, 50000 if status >= 500 else 40000)
        return json_response({"code": code, "msg": message, "data": None}, 200, headers=headers)

    def authenticate(self, request: web.Request) -> None:
        given = request.headers.get("appKey", "")
        if not given or not hmac.compare_digest(given.encode(), APP_KEY.encode()):
            raise ApiError(401, "appKey无效或缺失")

    def encode(self, certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
        return encode_record(certificate, updated_at)

    def _envelope(self, data: Any, code: int = OK, msg: str = "成功") -> web.Response:
        return json_response({"code": code, "msg": msg, "data": data})

    async def listing(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        page = int_param(request, "pageNum", default=1, low=1)
        size = page_size_param(request, "pageSize", default=DEFAULT_PAGE_SIZE)
        raw = request.query.get("updateTimeStart", "").strip()
        since = None
        if raw:
            try:
                since = parse_local_time(raw)
            except ValueError:
                raise ApiError(400, "updateTimeStart: 格式应为 yyyy-MM-dd HH:mm:ss") from None
        if page in self.refused_pages:
            return self._envelope(None, REFUSED, "该页数据暂停共享")
        entries, changed = self.changed_page(since, (page - 1) * size, size)
        return self._envelope({"total": changed, "pageNum": page, "pageSize": size, "list": self.records(entries)})

    async def holder(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        holder = citizen_id_param(request, "zjhm")
        entries = self.store.of_holder(holder)
        if not entries:
            return self._envelope(None, NOT_FOUND, "未查询到证照信息")
        return self._envelope(
            {"total": len(entries), "pageNum": 1, "pageSize": len(entries), "list": self.records(entries)}
        )

    async def refuse(self, request: web.Request) -> web.Response:
        """``?page=N`` (repeatable): those bulk pages answer the REFUSED code; no ``page``: none do."""
        pages = request.query.getall("page", [])
        try:
            self.refused_pages = {int(p) for p in pages}
        except ValueError:
            raise ApiError(400, "page: must be a whole number") from None
        return json_response({"department": self.code, "refused_pages": sorted(self.refused_pages)})
