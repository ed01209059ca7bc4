"""The connector runtime: one aiohttp session per department, owned by `ConnectorPool` (an async context manager
that the gateway's lifespan and the CLI enter once).

A call goes: breaker (fail fast while open) -> retry policy (tenacity, retriable errors only, overall deadline)
-> per-attempt: fresh request id and auth headers -> department semaphore -> one HTTP exchange with explicit
connect/read/total timeouts -> classification into the `connectors.errors` tree -> format parsing -> the business
result code inside a 2xx answer, classified by the format's ``result_rules`` (so a declared-retriable code is
retried and counted by the breaker like a 503) -> mapping, record by record: a record that cannot be mapped is
quarantined (`QuarantinedRecord`), the rest of its page goes on.

`DepartmentClient` is the protocol every connector implements: the declarative `HttpDepartmentClient` built from a
department file, or a class named by the file's ``[custom] class`` (constructed with the same keyword arguments).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import importlib
import os
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from connectors.auth import (
    OAuth2RequestAuth,
    RequestAuth,
    build_request_auth,
    client_ssl_context,
    encode_query,
)
from connectors.breaker import Breaker, BreakerState, BreakerStore, MemoryBreakerStore
from connectors.errors import (
    AuthenticationFailed,
    BadRequest,
    BusinessError,
    CircuitOpen,
    ConfigurationError,
    ConnectionFailed,
    ConnectorError,
    DepartmentBusy,
    MalformedResponse,
    RateLimited,
    RejectedResponse,
    RetriableError,
    ServerError,
    Timeout,
)
from connectors.formats import Document, FormatError, TypedJsonPages, parse, result_code, xml_error_message
from connectors.mapping import MappedRecord, MappingError, QuarantinedRecord, RecordMapper, format_since
from connectors.paging import Pager, minimal_params
from connectors.retry import Sleep, call_with_retry
from connectors.spec import (
    CursorPaging,
    DepartmentSpec,
    Format,
    JsonFormat,
    MutualTlsAuth,
    OAuth2ClientCredentials,
    OffsetPaging,
    Paging,
)
from connectors.trust import TrustStore
from connectors.verifier import InlineVerifier, ProcessVerifier, Verifier

_JSON = msgspec.json.Decoder()
T = TypeVar("T")


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """One fully decoded and mapped page of a bulk listing: its mapped records and its rejected ones."""

    number: int
    records: list[MappedRecord]
    request_id: str = ""
    #: Records that could not be decoded or mapped (or, for a page the department refused, one entry for it).
    quarantined: list[QuarantinedRecord] = []


class ListSample(msgspec.Struct, frozen=True, kw_only=True):
    """What ``connectors check``'s one-record list call brought: the record mapped, or why it could not be."""

    record: MappedRecord | None = None
    quarantined: QuarantinedRecord | None = None


@runtime_checkable
class PageStream(Protocol):
    """Pages of one listing; after iteration ``stop_reason`` is ``"end"`` or says why it stopped early."""

    stop_reason: str

    def __aiter__(self) -> AsyncIterator[Page]: ...


@runtime_checkable
class DepartmentClient(Protocol):
    """What sync, lookup and check need from a department connector.

    Implementations are constructed as ``cls(spec, data_dir=..., breaker=..., environ=..., sleep=...)``.
    """

    spec: DepartmentSpec

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def check_health(self) -> None:
        """Raise a `ConnectorError` unless the department's health endpoint answers 2xx."""

    async def check_list(self) -> ListSample | None:
        """One authenticated, minimal bulk-list call (its first record, if any); raise a `ConnectorError` on
        failure."""

    def pages(self, *, since: dt.datetime | None = None, page_size: int | None = None) -> PageStream: ...

    async def holder(self, holder_id: str, type_codes: Sequence[str] = ()) -> list[MappedRecord]: ...

    async def breaker_state(self) -> BreakerState: ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_URL_TAIL = re.compile(r"(https?://[^/\s?#]+)[^\s]*")
_LONG_NUMBER = re.compile(r"\d{8,}[\dXx]?")


def scrub(text: str) -> str:
    """Error text safe for logs: URLs cut to their origin (paths and queries may carry an ID number) and long
    digit runs (ID numbers, phone numbers) masked."""
    return _LONG_NUMBER.sub("…", _URL_TAIL.sub(r"\1", text))


def _reason(body: bytes) -> str:
    """A short reason from an error body (JSON ``reason``/``message``/``detail``/``title`` or XML ``Message``)."""
    text = ""
    if body[:1] in (b"{", b"["):
        try:
            doc = _JSON.decode(body)
        except msgspec.DecodeError:
            doc = None
        if isinstance(doc, dict):
            for key in ("reason", "message", "detail", "title", "error_description", "error"):
                if isinstance(doc.get(key), str) and doc[key]:
                    text = doc[key]
                    break
    elif body[:1] == b"<":
        text = xml_error_message(body)
    return scrub(" ".join(text.split()))[:200]


class _Stream:
    def __init__(self, pager: Pager, mapper: RecordMapper, department: str, endpoint: str) -> None:
        self._pager = pager
        self._mapper = mapper
        self._department = department
        self._endpoint = endpoint
        self.stop_reason = ""

    def __aiter__(self) -> AsyncIterator[Page]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Page]:
        async for document in self._pager:
            number = self._pager.pages
            if document.refused is not None:
                yield Page(
                    number=number,
                    records=[],
                    request_id=document.request_id,
                    quarantined=[_refused_page(self._department, document.refused, number)],
                )
                continue
            records = document.mapped
            quarantined = document.quarantined
            if records is None:
                records, quarantined = _map_all(self._mapper, document)
            if quarantined:
                quarantined = [msgspec.structs.replace(q, page=number) for q in quarantined]
            yield Page(number=number, records=records, request_id=document.request_id, quarantined=quarantined)
        self.stop_reason = self._pager.stop_reason


def _refused_page(department: str, refused: Exception, number: int) -> QuarantinedRecord:
    code = getattr(refused, "code", "")
    return QuarantinedRecord(
        department=department,
        position=-1,
        page=number,
        field="(page)",
        value_kind="page",
        rule=f"result_code {code}".strip(),
        message=scrub(getattr(refused, "message", str(refused)))[:300],
        request_id=getattr(refused, "request_id", ""),
    )


def _paging_paths(paging: Paging) -> list[str]:
    """The top-level values the pager reads from each page."""
    if isinstance(paging, CursorPaging):
        return [paging.next_cursor]
    if isinstance(paging, OffsetPaging):
        return [paging.total, paging.has_more]
    return [paging.total_pages, paging.total]


def _typed_pages(spec: DepartmentSpec, fmt: Any, paging: Paging, mapper: RecordMapper) -> TypedJsonPages | None:
    """The fast path for a JSON department whose mapping yields a typed record (else None: the general path)."""
    if not isinstance(fmt, JsonFormat) or mapper.row_type is None:
        return None
    try:
        return TypedJsonPages(fmt, mapper.row_type, _paging_paths(paging))
    except ValueError:
        return None


def _map_all(mapper: RecordMapper, document: Document) -> tuple[list[MappedRecord], list[QuarantinedRecord]]:
    """Every record mapped, or quarantined with why: one bad record never costs its page."""
    records: list[MappedRecord] = []
    quarantined: list[QuarantinedRecord] = []
    for index, record in enumerate(document.records):
        try:
            records.append(mapper.map(record))
        except MappingError as exc:
            quarantined.append(mapper.quarantine(record, exc, position=index, request_id=document.request_id))
    return records, quarantined


def _judge_result(fmt: Format, document: Document, context: dict[str, str]) -> None:
    """A business result code other than ``result_ok``, classified by the format's ``result_rules``."""
    found = result_code(document, fmt)
    if found is None:
        return
    code, words = found
    outcome = fmt.result_default
    for rule in fmt.result_rules:
        if code in rule.codes:
            outcome = rule.outcome
            break
    detail = f"result code {code[:40]}" + (f": {scrub(' '.join(words.split()))[:200]}" if words else "")
    if outcome == "retriable":
        raise DepartmentBusy(detail, code=code, **context)
    if outcome == "rejected":
        raise RejectedResponse(detail, code=code, **context)
    raise BusinessError(detail, code=code, **context)


#: Told of every department call (one call with its retries): department code, outcome (`call_outcome`), seconds.
CallObserver = Callable[[str, str, float], None]


def call_outcome(exc: BaseException) -> str:
    """How a failed call is counted: circuit_open, rate_limited, unavailable (timeouts, connection failures,
    5xx), misconfigured (our side), rejected (a 4xx or an odd answer: the department is up)."""
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, RetriableError):
        return "unavailable"
    if isinstance(exc, ConfigurationError):
        return "misconfigured"
    return "rejected"


class HttpDepartmentClient:
    """The declarative connector: everything it does comes from the department file."""

    def __init__(
        self,
        spec: DepartmentSpec,
        *,
        data_dir: Path,
        breaker: Breaker,
        environ: Mapping[str, str] | None = None,
        sleep: Sleep | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.spec = spec
        self._observer = observer
        self.format, self.paging, self.endpoints, mapping = spec.declared()
        self._mapper = RecordMapper(spec)
        self._typed = _typed_pages(spec, self.format, self.paging, self._mapper)
        self._tz = mapping.tzinfo()
        self._data_dir = data_dir
        self._breaker = breaker
        self._sleep = sleep
        self._base = URL(spec.base_url)
        self._base_path = self._base.path.rstrip("/")
        self._origin = str(self._base.origin())
        self._semaphore = asyncio.Semaphore(spec.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._accept = "application/json" if isinstance(self.format, JsonFormat) else "application/xml, text/xml"
        self._auth: RequestAuth = build_request_auth(
            spec.auth, environ=environ, fetch_token=self._fetch_token if self._is_oauth2 else None
        )
        self._environ = environ

    @property
    def _is_oauth2(self) -> bool:
        return isinstance(self.spec.auth, OAuth2ClientCredentials)

    @property
    def tokens_fetched(self) -> int:
        return self._auth.fetched if isinstance(self._auth, OAuth2RequestAuth) else 0

    def _context(self, endpoint: str, request_id: str = "") -> dict[str, str]:
        return {"department": self.spec.code, "endpoint": endpoint, "request_id": request_id}

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def open(self) -> None:
        # Mutual TLS material may appear later (simulators write it at start-up); each call reports it until then.
        with contextlib.suppress(ConfigurationError):
            self._ensure_session()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        ssl_context: ssl.SSLContext | bool = True
        if isinstance(self.spec.auth, MutualTlsAuth):
            try:
                ssl_context = client_ssl_context(self.spec.auth, self._data_dir)
            except ConfigurationError as exc:
                exc.department = self.spec.code
                raise
        t = self.spec.timeouts
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.read),
            connector=aiohttp.TCPConnector(limit=self.spec.concurrency, ssl=ssl_context),
            raise_for_status=False,
            # The department is untrusted: no cookies kept, no redirects followed (a redirect could carry our
            # credentials to another host).
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def breaker_state(self) -> BreakerState:
        return await self._breaker.state()

    # -- one HTTP exchange ---------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        context: dict[str, str],
        data: Any = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = self._ensure_session()
        try:
            async with session.request(method, url, headers=headers, data=data, allow_redirects=False) as response:
                body = await response.read()
                return response.status, response.headers, body
        except aiohttp.ConnectionTimeoutError:
            raise Timeout(f"connect timeout ({self.spec.timeouts.connect:g} s)", **context) from None
        except aiohttp.SocketTimeoutError:
            raise Timeout(f"read timeout ({self.spec.timeouts.read:g} s)", **context) from None
        except TimeoutError:  # aiohttp's total timeout
            raise Timeout(f"no complete answer within {self.spec.timeouts.total:g} s", **context) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ConfigurationError(
                f"the department's TLS certificate is not trusted: {scrub(str(exc))}", **context
            ) from None
        except aiohttp.ClientResponseError as exc:
            raise MalformedResponse(f"invalid HTTP response: {exc.message}", **context) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {scrub(str(exc))}", **context) from None

    def _classify(self, status: int, headers: Mapping[str, str], body: bytes, context: dict[str, str]) -> None:
        if 200 <= status < 300:
            return
        reason = _reason(body)
        detail = f"HTTP {status}" + (f": {reason}" if reason else "")
        if status in (401, 403):
            raise AuthenticationFailed(detail, status=status, **context)
        if status == 429:
            raise RateLimited(detail, retry_after=parse_retry_after(headers.get("Retry-After")), **context)
        if status >= 500:
            raise ServerError(detail, status=status, **context)
        raise BadRequest(detail, status=status, **context)

    async def _fetch_token(self) -> tuple[str, float]:
        auth = self.spec.auth
        assert isinstance(auth, OAuth2ClientCredentials)
        token_url = (
            URL(auth.token_path) if "://" in auth.token_path else URL(self._origin + self._base_path + auth.token_path)
        )
        endpoint = f"POST {token_url.path}"
        context = self._context(endpoint, uuid.uuid4().hex)
        secret = auth.resolved_secret(self._environ)
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        headers = {"X-Request-Id": context["request_id"], "Accept": "application/json"}
        if auth.client_auth == "basic":  # RFC 6749 §2.3.1: form-urlencoded id and secret, then Basic
            credentials = f"{quote(auth.client_id, safe='')}:{quote(secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        else:
            form |= {"client_id": auth.client_id, "client_secret": secret}
        status, response_headers, body = await self._send("POST", token_url, headers, context, data=form)
        if status in (400, 401, 403):
            raise AuthenticationFailed(
                f"token endpoint refused the client credentials (HTTP {status}) {_reason(body)}".rstrip(),
                status=status,
                **context,
            )
        self._classify(status, response_headers, body, context)
        try:
            doc = _JSON.decode(body)
            token = doc["access_token"]
            expires_in = float(doc.get("expires_in", 300))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise MalformedResponse("token response lacks access_token/expires_in", **context) from None
        if not isinstance(token, str) or not token:
            raise MalformedResponse("token response has an empty access_token", **context)
        return token, expires_in

    async def _attempt(self, endpoint: str, path: str, query: str, authenticate: bool) -> tuple[bytes, str]:
        request_id = uuid.uuid4().hex
        context = self._context(endpoint, request_id)
        sign_path = self._base_path + path
        url = URL(self._origin + sign_path + (f"?{query}" if query else ""), encoded=True)
        for round_ in (1, 2):
            headers = {"X-Request-Id": request_id, "Accept": self._accept}
            if authenticate:
                await self._auth.apply("GET", sign_path, query, b"", headers)
            async with self._semaphore:
                status, response_headers, body = await self._send("GET", url, headers, context)
            # One more try with a fresh token when the department says ours is no longer good.
            if status == 401 and round_ == 1 and authenticate and await self._auth.on_unauthorized(headers):
                continue
            self._classify(status, response_headers, body, context)
            return body, request_id
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self,
        label: str,
        path: str,
        params: Iterable[tuple[str, str]],
        decode: Callable[[bytes, str], T],
        *,
        authenticate: bool = True,
    ) -> T:
        """One call with retries; ``decode(body, request_id)`` runs inside each attempt, so what it raises (a
        declared-retriable result code) is retried and counted like an HTTP failure."""
        endpoint = f"GET {self._base_path}{label}"
        query = encode_query(list(params))
        breaker = self._breaker

        async def attempt() -> T:
            await breaker.before_call()
            try:
                body, request_id = await self._attempt(endpoint, path, query, authenticate)
                result = decode(body, request_id)
            except RateLimited:
                await breaker.record_success()  # busy, not down
                raise
            except RetriableError:
                await breaker.record_failure()
                raise
            except ConfigurationError:
                await breaker.release()  # our side is broken; says nothing about the department
                raise
            except ConnectorError:
                await breaker.record_success()  # a 4xx or an odd body: the department is up and answering
                raise
            except BaseException:
                await breaker.release()
                raise
            await breaker.record_success()
            return result

        started = time.perf_counter()
        outcome = "cancelled"
        try:
            result = await call_with_retry(
                self.spec.retry, attempt, sleep=self._sleep, department=self.spec.code, endpoint=endpoint
            )
            outcome = "ok"
            return result
        except ConnectorError as exc:
            outcome = call_outcome(exc)
            exc.department = exc.department or self.spec.code
            exc.endpoint = exc.endpoint or endpoint
            raise
        finally:
            if self._observer is not None:
                self._observer(self.spec.code, outcome, time.perf_counter() - started)

    async def _document(self, label: str, path: str, params: Iterable[tuple[str, str]]) -> Document:
        """One call, its body decoded, its result code judged and its records mapped (``document.mapped``, and
        ``document.quarantined`` for those that could not be)."""
        endpoint = f"GET {self._base_path}{label}"

        def decode(body: bytes, request_id: str) -> Document:
            context = self._context(endpoint, request_id)
            document = self._typed_document(body, context)
            if document is None:
                try:
                    document = parse(body, self.format)
                except FormatError as exc:
                    raise MalformedResponse(str(exc), **context) from None
                _judge_result(self.format, document, context)
                document.request_id = request_id
                document.mapped, document.quarantined = _map_all(self._mapper, document)
            document.request_id = request_id
            return document

        return await self._call(label, path, params, decode)

    def _typed_document(self, body: bytes, context: dict[str, str]) -> Document | None:
        """The fast path: decoded into typed records and mapped, or None when the general path must judge the body
        (it then reports what is wrong, if anything)."""
        typed = self._typed
        if typed is None:
            return None
        map_row = self._mapper.map_row
        try:
            document = typed.decode(body)
        except (msgspec.DecodeError, ValueError, TypeError):  # FormatError too
            return None
        _judge_result(self.format, document, context)
        try:
            document.mapped = [map_row(row) for row in document.records]
        except (ValueError, TypeError):  # MappingError, FastPathRefused: the general path maps record by record
            return None
        return document

    # -- what callers use ----------------------------------------------------------------------------------

    async def check_health(self) -> None:
        health = self.endpoints.health
        await self._call(health.path, health.path, health.query.items(), _ignore_body, authenticate=False)

    async def check_list(self) -> ListSample:
        bulk = self.endpoints.bulk
        document = await self._document(bulk.path, bulk.path, [*bulk.query.items(), *minimal_params(self.paging)])
        if document.mapped:
            return ListSample(record=document.mapped[0])
        if document.quarantined:
            return ListSample(quarantined=document.quarantined[0])
        return ListSample()

    def pages(self, *, since: dt.datetime | None = None, page_size: int | None = None) -> PageStream:
        bulk = self.endpoints.bulk
        fixed = list(bulk.query.items())
        if since is not None and bulk.updated_since_param:
            fixed.append((bulk.updated_since_param, format_since(since, bulk.updated_since_format, self._tz)))

        async def fetch(params: list[tuple[str, str]]) -> Document:
            return await self._document(bulk.path, bulk.path, [*fixed, *params])

        pager = Pager(self.paging, fetch, page_size=page_size)
        return _Stream(pager, self._mapper, self.spec.code, f"GET {self._base_path}{bulk.path}")

    async def holder(self, holder_id: str, type_codes: Sequence[str] = ()) -> list[MappedRecord]:
        endpoint = self.endpoints.holder
        path = endpoint.path.replace("{holder_id}", quote(holder_id, safe=""))
        params = list(endpoint.query.items())
        if endpoint.holder_param:
            params.append((endpoint.holder_param, holder_id))
        if type_codes and endpoint.types_param:
            params.append((endpoint.types_param, endpoint.types_separator.join(type_codes)))
        # The label keeps the template, never the ID number: it ends up in errors and logs.
        try:
            document = await self._document(endpoint.path, path, params)
        except RejectedResponse:
            return []  # declared "rejected" (e.g. 查无此人): the department has nothing it will give for this holder
        # Records that could not be mapped are left out (a lookup offers what it can; sync records rejections).
        records = document.mapped
        assert records is not None
        if type_codes:
            wanted = set(type_codes)
            records = [r for r in records if r.certificate.type_code in wanted]
        return records


def _ignore_body(body: bytes, request_id: str) -> None:
    return None


def _custom_class(spec: DepartmentSpec) -> type[DepartmentClient]:
    assert spec.custom is not None
    module_name, _, class_name = spec.custom.class_.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"custom.class: cannot import {spec.custom.class_}: {exc}", department=spec.code
        ) from None
    if not isinstance(cls, type):
        raise ConfigurationError(f"custom.class: {spec.custom.class_} is not a class", department=spec.code)
    return cls


class ConnectorPool:
    """Every enabled department's client, opened and closed together.

    ``async with ConnectorPool(specs, data_dir=..., breaker_store=..., trust=...) as pool:`` — the gateway
    lifespan and each CLI command own one. ``breaker_store`` defaults to in-memory breakers; pass
    `connectors.breaker.breaker_store_for(redis_client)` to share breaker state between processes. ``trust``
    defaults to the trust store in the repository's ``config/trust``. ``verify_processes`` > 0 verifies bulk
    sync pages in that many worker processes (worth it on multi-core machines; they start, ~0.2–1 s, when the pool
    opens).
    """

    def __init__(
        self,
        specs: Iterable[DepartmentSpec],
        *,
        data_dir: Path,
        breaker_store: BreakerStore | None = None,
        trust: TrustStore | None = None,
        environ: Mapping[str, str] | None = None,
        sleep: Sleep | None = None,
        verify_processes: int = 0,
        observer: CallObserver | None = None,
    ) -> None:
        self.specs = {spec.code: spec for spec in specs if spec.enabled}
        #: Told of every call of the declarative clients (the gateway's metrics).
        self.observer = observer
        self.data_dir = Path(data_dir)
        self.breaker_store: BreakerStore = breaker_store or MemoryBreakerStore()
        self._owns_breaker_store = breaker_store is None
        if trust is None:
            from connectors.registry import DEFAULT_CONFIG_DIR, load_trust

            trust = load_trust(DEFAULT_CONFIG_DIR)
        self.trust = trust
        self._verify_processes = verify_processes
        #: How sync verifies pages: inline, or in worker processes when ``verify_processes`` > 0.
        self.verifier: Verifier = InlineVerifier(trust)
        self._environ = os.environ if environ is None else environ
        self._sleep = sleep
        self._clients: dict[str, DepartmentClient] = {}
        #: Departments whose client could not be built (custom class missing): the error each call raises.
        self.broken: dict[str, ConfigurationError] = {}

    @property
    def codes(self) -> list[str]:
        return list(self.specs)

    def spec(self, code: str) -> DepartmentSpec:
        try:
            return self.specs[code]
        except KeyError:
            raise ConfigurationError(f"no enabled department file for {code!r}", department=code) from None

    def client(self, code: str) -> DepartmentClient:
        if code in self.broken:
            raise self.broken[code]
        try:
            return self._clients[code]
        except KeyError:
            self.spec(code)
            raise ConfigurationError("connector pool is not open", department=code) from None

    async def __aenter__(self) -> ConnectorPool:
        try:
            if self._verify_processes > 0:
                self.verifier = ProcessVerifier(self.trust, self._verify_processes)
                await self.verifier.start()
            for code, spec in self.specs.items():
                kwargs: dict[str, Any] = {
                    "data_dir": self.data_dir,
                    "breaker": self.breaker_store.breaker(code, spec.breaker),
                    "environ": self._environ,
                    "sleep": self._sleep,
                }
                if not spec.custom and self.observer is not None:
                    kwargs["observer"] = self.observer
                try:
                    cls: Any = _custom_class(spec) if spec.custom else HttpDepartmentClient
                    client: DepartmentClient = cls(spec, **kwargs)
                except ConfigurationError as exc:
                    self.broken[code] = exc
                    continue
                await client.open()
                self._clients[code] = client
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
        verifier, self.verifier = self.verifier, InlineVerifier(self.trust)
        await verifier.aclose()
        if self._owns_breaker_store:
            await self.breaker_store.aclose()
