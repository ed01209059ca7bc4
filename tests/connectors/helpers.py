"""Test helpers: signed demo certificates, an in-memory sink, and a small programmable department system.

`DepartmentServer` is a real aiohttp server on 127.0.0.1 speaking public_security's protocol (docs/simulators.md
§1: API key, cursor paging, ``updatedSince``, holder lookup). Tests script its misbehaviour through ``faults``
(consumed one per request) and flags such as ``repeat_cursor``; it exists so the runtime's edge cases (a cursor
repeated forever, a hang, a 429 storm) can be provoked exactly, which a random fault rate cannot do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from catalog.codes import certificate_identifier, citizen_id_check_char
from connectors.mapping import QuarantinedRecord
from connectors.model import Certificate, FetchedCertificate
from connectors.spec import DepartmentSpec, decode_department
from connectors.sync import DepartmentQuality, StoredCounts
from connectors.trust import DEMO_ISSUER_CODES, sign_as_department

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "config"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

TYPE_CODES = {
    "public_security": ("resident_id_card", "1110000034147425UL001"),
    "civil_affairs": ("marriage_certificate", "11100000942518256Y001"),
    "human_resources": ("social_security_card", "1110000056837233GB001"),
    "disabled_persons": ("disability_certificate", "11100000603527777W001"),
    "health": ("birth_medical_certificate", "1110000009874357D9001"),
    "veterans": ("veteran_preferential_card", "1110000048348815WN001"),
    "natural_resources": ("real_estate_certificate", "1110000078603166X8001"),
}


def citizen_id(n: int) -> str:
    """A valid GB 11643 number in Yuhu District (430302), distinct for each n < 1000 per birth day."""
    first17 = f"430302{1960 + n % 40:04d}0{1 + n % 9}{10 + n % 18:02d}{n % 1000:03d}"
    return first17 + citizen_id_check_char(first17)


def make_certificate(
    n: int,
    *,
    department: str = "public_security",
    holder: str | None = None,
    status: str = "01",
    valid_until: dt.date | None = dt.date(2040, 1, 1),
    sign: bool = True,
    attributes: dict[str, str] | None = None,
) -> Certificate:
    type_key, type_code = TYPE_CODES[department]
    issuer = DEMO_ISSUER_CODES[department]
    certificate = msgspec.convert(
        {
            "identifier": certificate_identifier(type_code, issuer, f"{2024000000 + n}"),
            "number": f"NO{n:08d}",
            "type_key": type_key,
            "type_code": type_code,
            "name": "居民身份证",
            "holder_name": f"测试{n}",
            "holder_code": holder or citizen_id(n),
            "holder_code_type": "111",
            "issuer_name": "湘潭市公安局雨湖分局",
            "issuer_code": issuer,
            "issue_date": "2020-01-01",
            "valid_from": "2020-01-01",
            "valid_until": valid_until,
            "status": status,
            "attributes": {"address": "窑湾街道"} if attributes is None else attributes,
        },
        Certificate,
    )
    return sign_as_department(certificate, department) if sign else certificate


def public_security_record(certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    """``certificate`` under public_security's wire names (docs/simulators.md §1)."""
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
        "validTo": certificate.valid_until.isoformat() if certificate.valid_until else None,
        "statusCode": certificate.status,
        "regionCode": certificate.division_code,
        "ext": certificate.attributes,
        "updatedAt": updated_at.isoformat(),
        "sign": None
        if signature is None
        else {"alg": signature.alg, "keyId": signature.key_id, "value": signature.value},
    }


class FakeClock:
    """A clock tests move by hand (breakers take any ``() -> float``)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class InMemorySink:
    """The `CertificateSink` a test needs: keeps every batch, valid ones upserted by identifier."""

    def __init__(self, *, fail_on_batch: int | None = None) -> None:
        self.batches: list[list[FetchedCertificate]] = []
        self.valid: dict[str, FetchedCertificate] = {}
        self.rejected: dict[str, FetchedCertificate] = {}
        self.cursors: dict[str, str] = {}
        self.quarantined: list[QuarantinedRecord] = []
        self.quality: dict[str, DepartmentQuality] = {}
        self._fail_on_batch = fail_on_batch

    async def accept(
        self, batch: Sequence[FetchedCertificate], quarantined: Sequence[QuarantinedRecord] = ()
    ) -> StoredCounts:
        if self._fail_on_batch is not None and len(self.batches) == self._fail_on_batch:
            raise RuntimeError("store is down")
        self.batches.append(list(batch))
        self.quarantined.extend(quarantined)
        stored = rejected = 0
        for fetched in batch:
            if fetched.verification.ok:
                self.valid[fetched.certificate.identifier] = fetched
                self.rejected.pop(fetched.certificate.identifier, None)
                stored += 1
            else:
                self.rejected[fetched.certificate.identifier] = fetched
                self.valid.pop(fetched.certificate.identifier, None)
                rejected += 1
        return StoredCounts(stored=stored, rejected=rejected)

    async def cursor(self, department: str) -> str | None:
        return self.cursors.get(department)

    async def save_cursor(self, department: str, cursor: str) -> None:
        self.cursors[department] = cursor

    async def record_quality(self, quality: DepartmentQuality) -> None:
        self.quality[quality.department] = quality


class DepartmentServer:
    """public_security's protocol over a real socket, with scripted faults.

    ``faults`` items, consumed one per API request (health excluded): ``503``/``500``/``400``/``401`` (that
    status), ``"429"`` (429 with ``Retry-After: <retry_after>``), ``"hang"`` (never answers), ``"malformed"``
    (a truncated JSON body), ``"slow"`` (answers after ``slow_seconds``).
    """

    API_KEY = "demo-public-security-key"

    def __init__(self, certificates: Sequence[Certificate] = (), *, start: dt.datetime | None = None) -> None:
        start = start or dt.datetime(2025, 1, 1, 8, 0, tzinfo=SHANGHAI)
        self.records: list[tuple[dt.datetime, Certificate]] = [
            (start + dt.timedelta(seconds=i), c) for i, c in enumerate(certificates)
        ]
        self.faults: list[str | int] = []
        self.retry_after = "1"
        self.slow_seconds = 0.5
        self.repeat_cursor = False
        self.requests: list[str] = []
        #: Set when the first API request arrives.
        self.requested = asyncio.Event()
        self.request_ids: list[str] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._hangs: list[asyncio.Future[None]] = []

    def touch(self, count: int, at: dt.datetime) -> list[str]:
        """Bump updated_at of the first ``count`` certificates (ordering is kept by sorting)."""
        touched = []
        for i in range(count):
            _, certificate = self.records[i]
            self.records[i] = (at + dt.timedelta(milliseconds=i), certificate)
            touched.append(certificate.identifier)
        self.records.sort(key=lambda r: (r[0], r[1].identifier))
        return touched

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/api/v2/licenses", self._licenses)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        for hang in self._hangs:
            if not hang.done():
                hang.set_result(None)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _licenses(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        self.requested.set()
        self.request_ids.append(request.headers.get("X-Request-Id", ""))
        if request.headers.get("X-Api-Key") != self.API_KEY:
            return web.json_response({"reason": "missing or wrong API key"}, status=401)
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "hang":
                hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._hangs.append(hang)
                await hang
            elif fault == "slow":
                await asyncio.sleep(self.slow_seconds)
            elif fault == "429":
                return web.json_response({"reason": "slow down"}, status=429, headers={"Retry-After": self.retry_after})
            elif fault == "malformed":
                return web.Response(body=b'{"data": [{"licenseId": "1.2', content_type="application/json")
            elif isinstance(fault, int) and fault >= 400:
                return web.json_response({"reason": f"fault {fault}"}, status=fault)
        holder = request.query.get("holderIdNo")
        if holder is not None:
            types = set(filter(None, request.query.get("types", "").split(",")))
            rows = [
                public_security_record(c, at)
                for at, c in self.records
                if c.holder_code == holder and (not types or c.type_code in types)
            ]
            return web.json_response({"data": rows, "nextCursor": None})
        limit = max(1, min(500, int(request.query.get("limit", "200"))))
        records = self.records
        since = request.query.get("updatedSince")
        if since:
            threshold = dt.datetime.fromisoformat(since)
            records = [r for r in records if r[0] > threshold]
        cursor = request.query.get("cursor")
        offset = int(cursor) if cursor else 0
        page = records[offset : offset + limit]
        next_offset = offset + len(page)
        if self.repeat_cursor:
            next_cursor: str | None = "1"  # a broken system: always the same cursor
        else:
            next_cursor = str(next_offset) if next_offset < len(records) else None
        body = {"data": [public_security_record(c, at) for at, c in page], "nextCursor": next_cursor}
        return web.json_response(body)


def public_security_spec(base_url: str, **overrides: Any) -> DepartmentSpec:
    """The shipped public_security file, rebased, with test-friendly policy overrides (fast retries)."""
    spec = decode_department((CONFIG_DIR / "departments" / "public_security.toml").read_bytes())
    spec = spec.rebased(base_url)
    retry = msgspec.structs.replace(
        spec.retry, initial_backoff=0.01, max_backoff=0.05, jitter=0.01, retry_after_cap=0.2, deadline=5.0
    )
    timeouts = msgspec.structs.replace(spec.timeouts, connect=1.0, read=1.0, total=2.0)
    spec = msgspec.structs.replace(spec, retry=retry, timeouts=timeouts)
    return msgspec.structs.replace(spec, **overrides) if overrides else spec
