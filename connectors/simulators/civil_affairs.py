"""湘潭市雨湖区民政局 — JSON, HMAC-SHA256 signed requests, offset/limit (docs/simulators.md §2).

Types: 结婚证, 离婚证, 最低生活保障证, 特困人员救助供养证. Every API request is signed with a shared secret over the
method, the path, the sorted raw query, a millisecond timestamp, a one-time nonce and the SHA-256 of the body; the
system refuses stale timestamps and nonces it has seen, so a captured request cannot be replayed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from connectors.model import Certificate
from connectors.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    citizen_id_param,
    datetime_param,
    int_param,
    iso_datetime,
    json_response,
    list_param,
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


def cert_record(certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    sig = certificate.signature
    return {
        "zzbs": certificate.identifier,
        "zzbh": certificate.number,
        "zzlxdm": certificate.type_code,
        "zzmc": certificate.name,
        "czzt": certificate.holder_name,
        "czztdm": certificate.holder_code,
        "czztdmlx": certificate.holder_code_type,
        "fzjg": certificate.issuer_name,
        "fzjgdm": certificate.issuer_code,
        "fzrq": certificate.issue_date.isoformat(),
        "yxqq": certificate.valid_from.isoformat(),
        "yxqz": certificate.valid_until.isoformat() if certificate.valid_until else "",
        "zzzt": certificate.status,
        "xzqh": certificate.division_code,
        "kzxx": certificate.attributes,
        "gxsj": iso_datetime(updated_at),
        "qmsf": sig.alg if sig else "",
        "qmkid": sig.key_id if sig else "",
        "qm": sig.value if sig else "",
    }


class CivilAffairsSimulator(DepartmentSimulator):
    code = "civil_affairs"
    bulk_path = "/mca/certs"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: nonce -> wall-clock ms after which it may be forgotten (its timestamp can no longer pass the window)
        self._nonces: dict[str, int] = {}
        self.secrets = {KEY_ID: SECRET}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/mca/certs", self.certs, name=f"{DATA_ROUTE}:certs")
        app.router.add_get("/mca/certs/holder", self.holder, name=f"{DATA_ROUTE}:holder")

    def error_response(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        response = json_response({"code": status, "message": message}, status)
        response.headers.update(headers or {})
        return response

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
        limit = int_param(request, "limit", default=DEFAULT_LIMIT, low=1, high=500)
        first = self.store.start_after(datetime_param(request, "modified_after"))
        page = self.store.slice(first + offset, first + offset + limit)
        rows = [cert_record(*r) for r in self.present(page)]
        return json_response({"code": 0, "total": len(self.store) - first, "rows": rows})

    async def holder(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        holder = citizen_id_param(request, "sfzh")
        entries = self.store.of_holder(holder, list_param(request, "zzlx"))
        return json_response({"code": 0, "rows": [cert_record(*r) for r in self.present(entries)]})
