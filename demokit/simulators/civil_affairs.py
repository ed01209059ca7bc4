"""湘潭市雨湖区民政局 — JSON, HMAC-SHA256 signed requests, offset/limit (docs/simulators.md §2).

Types: 结婚证, 离婚证, 最低生活保障证, 特困人员救助供养证. Every API request is signed with a shared secret over the
method, the path, the sorted raw query, a millisecond timestamp, a one-time nonce and the SHA-256 of the body; the
system refuses stale timestamps and nonces it has seen, so a captured request cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from demokit.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    RecordLayout,
    datetime_param,
    int_param,
    json_response,
    page_size_param,
)

KEY_ID = "onewindow"
SECRET = "demo-civil-affairs-secret"  # noqa: S105 - published demo credential (docs/simulators.md)
#: Accepted clock difference between caller and system, both ways.
TIMESTAMP_WINDOW_MS = 300_000
DEFAULT_LIMIT = 100
_MAX_NONCE_LENGTH = 128


def sorted_query(raw_query: str) -> str:
    """SORTED_QUERY of the string to sign: ``k=v`` pieces exactly as sent (no decoding), sorted by name then value."""
    pieces = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pieces.append((name, value))
    pieces.sort()
    return "&".join(f"{name}={value}" for name, value in pieces)


def string_to_sign(method: str, path: str, raw_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join(
        (method.upper(), path, sorted_query(raw_query), timestamp, nonce, hashlib.sha256(body).hexdigest())
    )


def signature(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode("ascii")


#: Pinyin abbreviations, as such systems name their columns; empty strings where others send null.
CERT = RecordLayout(
    identifier="zzbs",
    number="zzbh",
    type_code="zzlxdm",
    name="zzmc",
    holder_name="czzt",
    holder_code="czztdm",
    holder_code_type="czztdmlx",
    issuer_name="fzjg",
    issuer_code="fzjgdm",
    issue_date="fzrq",
    valid_from="yxqq",
    valid_until="yxqz",
    status="zzzt",
    division_code="xzqh",
    attributes="kzxx",
    updated_at="gxsj",
    signature=None,
    signature_parts=("qmsf", "qmkid", "qm"),
    long_term="",
    unsigned="",
)


class CivilAffairsSimulator(DepartmentSimulator):
    code = "civil_affairs"
    bulk_path = "/mca/certs"
    layout = CERT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: nonce -> wall-clock ms after which it may be forgotten (its timestamp can no longer pass the window)
        self._nonces: dict[str, int] = {}
        self.secrets = {KEY_ID: SECRET}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/mca/certs", self.certs, name=f"{DATA_ROUTE}:certs")
        app.router.add_get("/mca/certs/holder", self.holder, name=f"{DATA_ROUTE}:holder")

    def error_response(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        return json_response({"code": status, "message": message}, status, headers=headers)

    async def authenticate(self, request: web.Request) -> None:
        key_id = request.headers.get("X-Ca-Key", "")
        timestamp = request.headers.get("X-Ca-Timestamp", "")
        nonce = request.headers.get("X-Ca-Nonce", "")
        given = request.headers.get("X-Ca-Signature", "")
        missing = [h for h, v in (("X-Ca-Key", key_id), ("X-Ca-Timestamp", timestamp), ("X-Ca-Nonce", nonce),
                                  ("X-Ca-Signature", given)) if not v]  # fmt: skip
        if missing:
            raise ApiError(401, f"missing header(s): {', '.join(missing)}")
        secret = self.secrets.get(key_id)
        if secret is None:
            raise ApiError(401, "X-Ca-Key: unknown key id")
        if not timestamp.isdigit():
            raise ApiError(401, "X-Ca-Timestamp: must be Unix time in milliseconds")
        now_ms = int(time.time() * 1000)
        if abs(now_ms - int(timestamp)) > TIMESTAMP_WINDOW_MS:
            raise ApiError(401, "X-Ca-Timestamp: outside the accepted window of ±300 s; check the clock")
        if len(nonce) > _MAX_NONCE_LENGTH:
            raise ApiError(401, f"X-Ca-Nonce: at most {_MAX_NONCE_LENGTH} characters")
        body = await request.read()
        expected = signature(
            secret,
            string_to_sign(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string, timestamp,
                           nonce, body),
        )  # fmt: skip
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise ApiError(401, "X-Ca-Signature: signature mismatch")
        self._forget_old_nonces(now_ms)
        if nonce in self._nonces:
            raise ApiError(401, "X-Ca-Nonce: nonce already used")
        self._nonces[nonce] = int(timestamp) + TIMESTAMP_WINDOW_MS

    def _forget_old_nonces(self, now_ms: int) -> None:
        if len(self._nonces) < 4096:
            return
        for nonce, forget_after in list(self._nonces.items()):
            if forget_after < now_ms:
                del self._nonces[nonce]

    async def certs(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        offset = int_param(request, "offset", default=0, low=0)
        limit = page_size_param(request, "limit", default=DEFAULT_LIMIT)
        page, changed = self.changed_page(datetime_param(request, "modified_after"), offset, limit)
        return json_response({"code": 0, "total": changed, "rows": self.records(page)})

    async def holder(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        entries = self.holder_entries(request, "sfzh", types="zzlx")
        return json_response({"code": 0, "rows": self.records(entries)})
