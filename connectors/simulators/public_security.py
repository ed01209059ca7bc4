"""湘潭市公安局雨湖分局 — JSON over HTTP, API key, keyset cursor (docs/simulators.md §1).

Types: 居民身份证, 居民户口簿, 居住证. The cursor is opaque to clients; inside it is the position
``(updated_at, identifier)`` of the last record served, so paging stays exact while records change.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
from typing import Any

import msgspec
from aiohttp import web

from connectors.model import Certificate
from connectors.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    citizen_id_param,
    datetime_param,
    int_param,
    iso_date,
    iso_datetime,
    json_response,
    list_param,
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


def license_record(certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    signature = certificate.signature
    return {
        "licenseId": certificate.identifier,
        "licenseNo": certificate.number,
        "licenseTypeCode": certificate.type_code,
        "licenseName": certificate.name,
        "holderName": certificate.holder_name,
        "holderIdNo": certificate.holder_code,
        "holderIdType": certificate.holder_code_type,
        "issuerName": certificate.issuer_name,
        "issuerCode": certificate.issuer_code,
        "issueDate": certificate.issue_date.isoformat(),
        "validFrom": certificate.valid_from.isoformat(),
        "validTo": iso_date(certificate.valid_until),
        "statusCode": certificate.status,
        "regionCode": certificate.division_code,
        "ext": certificate.attributes,
        "updatedAt": iso_datetime(updated_at),
        "sign": None
        if signature is None
        else {"alg": signature.alg, "keyId": signature.key_id, "value": signature.value},
    }


class PublicSecuritySimulator(DepartmentSimulator):
    code = "public_security"
    bulk_path = "/api/v2/licenses"

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
            holder = citizen_id_param(request, "holderIdNo")
            entries = self.store.of_holder(holder, list_param(request, "types"))
            return json_response({"data": [license_record(*r) for r in self.present(entries)], "nextCursor": None})
        limit = int_param(request, "limit", default=DEFAULT_LIMIT, low=1, high=500)
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
        return json_response({"data": [license_record(*r) for r in self.present(page)], "nextCursor": next_cursor})
