"""湘潭市公安局雨湖分局 — JSON over HTTP, API key, keyset cursor (docs/simulators.md §1).

Types: 居民身份证, 居民户口簿, 居住证. The cursor is opaque to clients; inside it is the position
``(updated_at, identifier)`` of the last record served, so paging stays exact while records change.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac

import msgspec
from aiohttp import web

from demokit.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    RecordLayout,
    datetime_param,
    json_response,
    page_size_param,
)

API_KEY = "demo-public-security-key"
DEFAULT_LIMIT = 200


class _Cursor(msgspec.Struct, frozen=True):
    t: dt.datetime
    i: str


def encode_cursor(updated_at: dt.datetime, identifier: str) -> str:
    raw = msgspec.json.encode(_Cursor(t=updated_at, i=identifier))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(value: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        cursor = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ApiError(400, "cursor: not a cursor this system issued; start again without one") from None
    if cursor.t.tzinfo is None:
        raise ApiError(400, "cursor: not a cursor this system issued; start again without one")
    return cursor


LICENSE = RecordLayout(
    identifier="licenseId",
    number="licenseNo",
    type_code="licenseTypeCode",
    name="licenseName",
    holder_name="holderName",
    holder_code="holderIdNo",
    holder_code_type="holderIdType",
    issuer_name="issuerName",
    issuer_code="issuerCode",
    issue_date="issueDate",
    valid_from="validFrom",
    valid_until="validTo",
    status="statusCode",
    division_code="regionCode",
    attributes="ext",
    updated_at="updatedAt",
    signature="sign",
    signature_parts=("alg", "keyId", "value"),
)


class PublicSecuritySimulator(DepartmentSimulator):
    code = "public_security"
    bulk_path = "/api/v2/licenses"
    layout = LICENSE

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2/licenses", self.licenses, name=f"{DATA_ROUTE}:licenses")

    def authenticate(self, request: web.Request) -> None:
        given = request.headers.get("X-Api-Key", "")
        if not given:
            raise ApiError(401, "X-Api-Key header is required")
        if not hmac.compare_digest(given.encode(), API_KEY.encode()):
            raise ApiError(401, "X-Api-Key is not valid")

    async def licenses(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        if "holderIdNo" in request.query:
            entries = self.holder_entries(request, "holderIdNo", types="types")
            return json_response({"data": self.records(entries), "nextCursor": None})
        limit = page_size_param(request, "limit", default=DEFAULT_LIMIT)
        raw_cursor = request.query.get("cursor", "")
        if raw_cursor:
            # the cursor already lies after updatedSince: the first page honoured it
            cursor = decode_cursor(raw_cursor)
            start = self.store.start_after_key(cursor.t, cursor.i)
        else:
            start = self.store.start_after(datetime_param(request, "updatedSince"))
        page = self.store.slice(start, start + limit)
        more = start + len(page) < len(self.store)
        next_cursor = encode_cursor(page[-1].updated_at, page[-1].certificate.identifier) if page and more else None
        return json_response({"data": self.records(page), "nextCursor": next_cursor})
