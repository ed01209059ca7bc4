"""What every simulated department system shares: health, test control under ``/__sim__/``, statistics, faults,
query parameters, paging through the certificate table, holder lookups and the encoding of records.

A department module subclasses `DepartmentSimulator`, declares how its records name the unified certificate fields
(`RecordLayout`), adds its own routes in `add_routes` and answers errors in its own style (`error_response`).
Handlers raise `ApiError` for bad input or failed authentication; the middleware turns it into that style.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http
import random
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
from aiohttp import web

from catalog.calendar import DISTRICT_TZ
from catalog.codes import citizen_id_problem, normalise_citizen_id
from connectors.model import Certificate
from demokit.simulators.faults import NO_FAULTS, Faults, FaultSpecError, faults_from_mapping, parse_fault_list
from demokit.simulators.registry import DEPARTMENTS, DepartmentInfo
from demokit.simulators.store import CertificateStore, StoredCertificate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_PAGE_SIZE = 500
_JSON = msgspec.json.Encoder()
_DECODE_JSON = msgspec.json.Decoder()
#: Prefix of the route names of certificate endpoints (``data:…``): only their answers are truncated by the
#: ``malformed`` fault.
DATA_ROUTE = "data"


class ApiError(Exception):
    """Bad input or failed authentication; answered in the department's own error style."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


# --- parameters --------------------------------------------------------------------------------------------------


def int_param(request: web.Request, name: str, *, default: int | None, low: int, high: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(400, f"{name}: required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: must be a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"{low} or more"
        raise ApiError(400, f"{name}: must be {bounds}, got {value}")
    return value


def page_size_param(request: web.Request, name: str, *, default: int) -> int:
    """A page size (``limit``, ``size``, ``count``, ``take`` …): 1..500, 400 naming the parameter otherwise."""
    return int_param(request, name, default=default, low=1, high=MAX_PAGE_SIZE)


def parse_iso_datetime(raw: str) -> dt.datetime:
    """ISO 8601 date-time; without an offset it is Asia/Shanghai time."""
    text = raw.strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        # an unencoded "+" in a query string arrives as a space: "…T08:00:00 08:00"
        value = dt.datetime.fromisoformat(text.replace(" ", "+"))
    return value if value.tzinfo is not None else value.replace(tzinfo=DISTRICT_TZ)


def datetime_param(request: web.Request, name: str) -> dt.datetime | None:
    raw = request.query.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_iso_datetime(raw)
    except ValueError:
        raise ApiError(400, f"{name}: must be an ISO 8601 date-time such as 2025-06-30T08:00:00+08:00") from None


def citizen_id_param(request: web.Request, name: str, raw: str | None = None) -> str:
    value = request.query.get(name) if raw is None else raw
    if value is None or value.strip() == "":
        raise ApiError(400, f"{name}: required")
    problem = citizen_id_problem(value)
    if problem is not None:  # the message names the field, never echoes the number
        raise ApiError(400, f"{name}: not a valid citizen ID number ({problem.message})")
    return normalise_citizen_id(value)


def list_param(request: web.Request, name: str) -> list[str]:
    raw = request.query.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def iso_datetime(value: dt.datetime) -> str:
    return value.astimezone(DISTRICT_TZ).isoformat()


def json_response(
    payload: Any,
    status: int = 200,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(body=_JSON.encode(payload), status=status, content_type=content_type, headers=headers)


def is_loopback(request: web.Request) -> bool:
    remote = request.remote
    if remote is None or remote == "":  # unix socket or test transport
        return True
    return remote == "::1" or remote.startswith("127.") or remote.startswith("::ffff:127.")


# --- records -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordLayout:
    """How one department writes a unified certificate: its own name for each field, and its conventions.

    Every department lists the fields in the same order (docs/simulators.md), so a record is these names in the order
    declared here. The signature is either one object field (``signature`` names it; null when unsigned) holding
    ``signature_parts`` = names of (algorithm, key id, value), or those three fields flat in the record.
    """

    identifier: str
    number: str
    type_code: str
    name: str
    holder_name: str
    holder_code: str
    holder_code_type: str
    issuer_name: str
    issuer_code: str
    issue_date: str
    valid_from: str
    valid_until: str
    status: str
    division_code: str
    #: The field holding the attributes object, or attribute name -> field of its own ("" when absent).
    attributes: str | Mapping[str, str]
    updated_at: str
    signature: str | None
    signature_parts: tuple[str, str, str]
    #: What ``valid_until`` of a long-term (长期) certificate is written as.
    long_term: str | None = None
    #: What flat signature fields of an unsigned record are written as.
    unsigned: str | None = None
    #: How the change time is written.
    time_format: Callable[[dt.datetime], str] = iso_datetime

    def encode(self, certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
        c = certificate
        record: dict[str, Any] = {
            self.identifier: c.identifier,
            self.number: c.number,
            self.type_code: c.type_code,
            self.name: c.name,
            self.holder_name: c.holder_name,
            self.holder_code: c.holder_code,
            self.holder_code_type: c.holder_code_type,
            self.issuer_name: c.issuer_name,
            self.issuer_code: c.issuer_code,
            self.issue_date: c.issue_date.isoformat(),
            self.valid_from: c.valid_from.isoformat(),
            self.valid_until: c.valid_until.isoformat() if c.valid_until is not None else self.long_term,
            self.status: c.status,
            self.division_code: c.division_code,
        }
        if isinstance(self.attributes, str):
            record[self.attributes] = c.attributes
        else:
            for attribute, field in self.attributes.items():
                record[field] = c.attributes.get(attribute, "")
        record[self.updated_at] = self.time_format(updated_at)
        alg, key_id, value = self.signature_parts
        sig = c.signature
        if self.signature is not None:
            record[self.signature] = None if sig is None else {alg: sig.alg, key_id: sig.key_id, value: sig.value}
        elif sig is None:
            record.update(dict.fromkeys(self.signature_parts, self.unsigned))
        else:
            record.update({alg: sig.alg, key_id: sig.key_id, value: sig.value})
        return record


# --- the simulator -----------------------------------------------------------------------------------------------


class DepartmentSimulator:
    """One department system: its certificate table, faults, statistics and aiohttp application."""

    code: ClassVar[str]
    #: Path of the bulk list, for the control page.
    bulk_path: ClassVar[str] = "/"
    #: How this department writes its records.
    layout: ClassVar[RecordLayout]

    def __init__(
        self,
        store: CertificateStore,
        *,
        citizens_json: Callable[[], bytes],
        faults: Faults = NO_FAULTS,
        seed: int = 0,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.info: DepartmentInfo = DEPARTMENTS[self.code]
        self.store = store
        self.faults = faults
        self._citizens_json = citizens_json
        # one generator per department, from the run's seed, so a fault sequence can be replayed
        self.rng = random.Random(f"{seed}:{self.code}")
        self.stopping = stopping or asyncio.Event()
        self.ssl_context: ssl.SSLContext | None = None
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self._revoked_copies: dict[str, Certificate] = {}
        #: identifier -> how its record is served broken (``POST /__sim__/corrupt``): field overrides, or the
        #: whole record replaced (under ``None``).
        self.corruptions: dict[str, dict[str | None, Any]] = {}

    # to be provided by each department --------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_response(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        """RFC 9457 problem details unless the department speaks another dialect."""
        body = {"type": "about:blank", "title": _phrase(status), "status": status, "detail": message}
        return json_response(body, status, content_type="application/problem+json", headers=headers)

    def extra_stats(self) -> dict[str, Any]:
        return {}

    # application ------------------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/__sim__/citizens", self._sim_citizens)
        app.router.add_get("/__sim__/faults", self._sim_get_faults)
        app.router.add_post("/__sim__/faults", self._sim_set_faults)
        app.router.add_post("/__sim__/touch", self._sim_touch)
        app.router.add_post("/__sim__/revoke", self._sim_revoke)
        app.router.add_get("/__sim__/stats", self._sim_stats)
        app.router.add_post("/__sim__/corrupt", self._sim_corrupt)
        self.add_routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__sim__/"):
            if not is_loopback(request):
                return self.error_response(403, "test control is served to loopback clients only")
            try:
                return await handler(request)
            except ApiError as exc:
                return json_response({"error": exc.message}, exc.status)
        route = request.match_info.route
        path = route.resource.canonical if route.resource is not None else "(unmatched)"
        status = 500
        try:
            data_route = route.name is not None and route.name.startswith(f"{DATA_ROUTE}:")
            response = await self._serve(request, handler, data_route)
            status = response.status
        finally:
            self.requests[(request.method, path, status)] += 1
        request_id = request.headers.get("X-Request-Id")
        if request_id and len(request_id) <= 200:
            response.headers["X-Request-Id"] = request_id
        return response

    async def _serve(self, request: web.Request, handler: Handler, data_route: bool) -> web.StreamResponse:
        faults = self.faults
        delay = faults.latency + (self.rng.random() * faults.jitter if faults.jitter else 0.0)
        if delay > 0:
            await self.pause(request, delay / 1000)
        if faults.hang and self.draw("hang", faults.hang):
            await self.pause(request, None)
        if faults.rate_limit and self.draw("rate_limit", faults.rate_limit):
            return self.error_response(429, "rate limit exceeded, retry later", headers={"Retry-After": "1"})
        if faults.error_rate and self.draw("error_rate", faults.error_rate):
            return self.error_response(503, "the department system is temporarily unavailable")
        try:
            response = await handler(request)
        except ApiError as exc:
            return self.error_response(exc.status, exc.message, headers=exc.headers)
        except web.HTTPException as exc:  # the router's 404 / 405, in the department's own style
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return self.error_response(exc.status, exc.reason, headers=headers)
        if (
            data_route
            and faults.malformed
            and isinstance(response, web.Response)
            and response.status == 200
            and self.draw("malformed", faults.malformed)
        ):
            body = response.body
            if isinstance(body, bytes) and len(body) > 1:
                response.body = body[: len(body) // 2]  # a well-framed response whose document stops half way
        return response

    def draw(self, fault: str, probability: float) -> bool:
        hit = self.rng.random() < probability
        if hit:
            self.fault_counts[fault] += 1
        return hit

    async def pause(self, request: web.Request, seconds: float | None) -> None:
        """Wait ``seconds`` (None: forever). At shutdown the connection is dropped without an answer.

        Waiting on the simulator's own ``stopping`` event matters: a client that gave up has already closed its
        connection, and aiohttp no longer tracks a handler whose connection is gone.
        """
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        except TimeoutError:
            return
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp treats it as a dropped connection: nothing is written

    # records ----------------------------------------------------------------------------------------------------
    def present(self, entries: Iterable[StoredCertificate]) -> list[tuple[Certificate, dt.datetime]]:
        """The records as served, after the ``revoked`` and ``tampered`` faults."""
        faults = self.faults
        if not (faults.revoked or faults.tampered):
            return [(e.certificate, e.updated_at) for e in entries]
        served = []
        for entry in entries:
            certificate = entry.certificate
            if faults.revoked and self.draw("revoked", faults.revoked):
                certificate = self._revoked_copy(certificate)
            if faults.tampered and self.draw("tampered", faults.tampered):
                certificate = msgspec.structs.replace(certificate, holder_name=_tampered_name(certificate.holder_name))
            served.append((certificate, entry.updated_at))
        return served

    def encode(self, certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
        """One record in this department's layout."""
        return self.layout.encode(certificate, updated_at)

    def records(self, entries: Iterable[StoredCertificate]) -> list[Any]:
        """The records as served (`present`), in this department's layout (and broken where asked)."""
        encode = self.encode
        presented = self.present(entries)
        served: list[Any] = [encode(certificate, updated_at) for certificate, updated_at in presented]
        if self.corruptions:
            for index, (certificate, _) in enumerate(presented):
                change = self.corruptions.get(certificate.identifier)
                if change is not None:
                    served[index] = change[None] if None in change else {**served[index], **change}
        return served

    def changed_page(self, since: dt.datetime | None, offset: int, count: int) -> tuple[list[StoredCertificate], int]:
        """Up to ``count`` records from ``offset`` among those changed strictly after ``since`` (all when None), and
        how many changed: what offset and page-number paging both serve."""
        first = self.store.start_after(since)
        return self.store.slice(first + offset, first + offset + count), len(self.store) - first

    def holder_entries(
        self, request: web.Request, name: str, *, raw: str | None = None, types: str | None = None
    ) -> list[StoredCertificate]:
        """The certificates of the holder named by query parameter ``name`` (or ``raw``, from the path), optionally
        only the type codes listed in query parameter ``types``."""
        holder = citizen_id_param(request, name, raw)
        return self.store.of_holder(holder, list_param(request, types) if types else ())

    def _revoked_copy(self, certificate: Certificate) -> Certificate:
        key = f"{certificate.identifier}|{certificate.signature.value if certificate.signature else ''}"
        copy = self._revoked_copies.get(key)
        if copy is None:
            copy = self.store.sign(msgspec.structs.replace(certificate, status="03"))
            self._revoked_copies[key] = copy
        return copy

    # common endpoints -------------------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return json_response(
            {"status": "UP", "department": self.code, "name": self.info.name, "certificates": len(self.store)}
        )

    async def _sim_citizens(self, request: web.Request) -> web.Response:
        return web.Response(body=self._citizens_json(), content_type="application/json")

    async def _sim_get_faults(self, request: web.Request) -> web.Response:
        return json_response({"department": self.code, "faults": self.faults.to_dict(), "spec": self.faults.describe()})

    async def _sim_set_faults(self, request: web.Request) -> web.Response:
        try:
            payload = _DECODE_JSON.decode(await request.read() or b"{}")
        except msgspec.DecodeError:
            raise ApiError(400, 'body: expected a JSON object such as {"latency": 100, "error_rate": 0.5}') from None
        try:
            if isinstance(payload, str):
                self.faults = parse_fault_list(payload)
            elif isinstance(payload, dict):
                self.faults = faults_from_mapping(payload)
            else:
                raise FaultSpecError("expected a JSON object of fault names to values")
        except FaultSpecError as exc:
            raise ApiError(400, f"body: {exc}") from None
        return await self._sim_get_faults(request)

    async def _sim_touch(self, request: web.Request) -> web.Response:
        count = int_param(request, "count", default=1, low=0, high=len(self.store) or 1)
        identifiers = request.query.getall("identifier", [])
        touched = self.store.touch(count, identifiers)
        return json_response(
            {
                "department": self.code,
                "touched": [
                    {"identifier": e.certificate.identifier, "updated_at": iso_datetime(e.updated_at)} for e in touched
                ],
            }
        )

    async def _sim_corrupt(self, request: web.Request) -> web.Response:
        """Serve one record broken: ``{"identifier", "fields": {name: value}}`` overrides fields as written on the
        wire, ``{"identifier", "record": value}`` replaces the whole record; ``{}`` serves every record intact."""
        try:
            payload = _DECODE_JSON.decode(await request.read() or b"{}")
        except msgspec.DecodeError:
            raise ApiError(400, "body: expected a JSON object") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "body: expected a JSON object")
        if not payload:
            self.corruptions.clear()
            return json_response({"department": self.code, "corrupted": 0})
        identifier = payload.get("identifier")
        if not isinstance(identifier, str) or self.store.get(identifier) is None:
            raise ApiError(404, "identifier: no such certificate in this department")
        if "record" in payload:
            self.corruptions[identifier] = {None: payload["record"]}
        elif isinstance(payload.get("fields"), dict) and payload["fields"]:
            self.corruptions[identifier] = dict(payload["fields"])
        else:
            raise ApiError(400, 'body: give "fields" (an object of field overrides) or "record"')
        return json_response({"department": self.code, "corrupted": len(self.corruptions)})

    async def _sim_revoke(self, request: web.Request) -> web.Response:
        identifier = request.query.get("identifier", "")
        if not identifier:
            raise ApiError(400, "identifier: required")
        entry = self.store.set_status(identifier, "03")
        if entry is None:
            raise ApiError(404, "identifier: no such certificate in this department")
        return json_response(
            {
                "identifier": entry.certificate.identifier,
                "status": entry.certificate.status,
                "updated_at": iso_datetime(entry.updated_at),
            }
        )

    async def _sim_stats(self, request: web.Request) -> web.Response:
        by_path: dict[str, dict[str, int]] = {}
        for (method, path, status), count in sorted(self.requests.items()):
            by_path.setdefault(f"{method} {path}", {})[str(status)] = count
        return json_response(
            {
                "department": self.code,
                "requests": sum(self.requests.values()),
                "by_path": by_path,
                "faults": dict(self.fault_counts),
                "certificates": len(self.store),
                **self.extra_stats(),
            }
        )


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _tampered_name(name: str) -> str:
    """The same name with its last character swapped: what a forger or a buggy export would produce."""
    replacement = "伟" if not name.endswith("伟") else "强"
    return name[:-1] + replacement if name else replacement


def page_count(total: int, size: int) -> int:
    return (total + size - 1) // size
