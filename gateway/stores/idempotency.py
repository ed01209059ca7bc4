"""``Idempotency-Key`` for every POST (docs/api.md#idempotency): a double click, a client retry or a retry after the
gateway crashed never files twice.

A POST carrying ``Idempotency-Key: <1-255 visible ASCII characters>``:

* first time — the key is claimed, the request runs, and its response is kept for ``Settings.idempotency_ttl_seconds``;
* same key, same request, response kept — the kept response is replayed (status, body, content type and other
  headers) with ``Idempotent-Replayed: true``; the handler does not run;
* same key, different request — 422 problem+json (``errors[0].field == "Idempotency-Key"``);
* same key while the first request is still running — 409 problem+json with ``Retry-After: 1``.

"Same request" means the same method, path, query string, media type and body bytes (a multipart body's
random boundary is ignored, so a browser re-sending the same form matches). Keys are scoped by caller, method and
path. The caller is the authenticated principal — ``token:<token id>`` of ``request.user`` — never the text of the
``Authorization`` header: ``bearer  T`` and ``Bearer T`` are one caller with one set of keys. Requests without a
principal (the public routes) share the caller ``anonymous``. Two callers never see each other's responses.

Two copies of a key, and which one counts
-----------------------------------------
The *fast store* (`AtomicStore`: memory for one process, Redis shared by several) holds the in-flight lease and a
cached copy of each kept answer. It is not durable — memory dies with the process, Redis may lose or flush keys — so
it never is the only copy of an answer to a request that changed something. The *durable record* is a row of
``idempotency_records`` (`gateway.stores.records`), written so that it exists exactly when the change it protects
exists:

1. The middleware claims the key in the fast store: an atomic set-if-absent lease (Redis: one Lua script, so two
   gateway processes cannot both claim it). Someone else's lease → 409; a kept answer there → replay or 422.
2. Holding the lease, it reads the durable record (one short indexed read). Found → replay it (or 422), and copy it
   into the fast store. This is the path of every retry after a crash: the lease died with the process, the record
   did not.
3. Otherwise it hands the request an `IdempotentRequest` (the ``idempotency`` dependency, `provide_idempotency`) and
   runs the handler. A service that changes something calls ``await idempotency.record(conn, result)`` *inside its
   write transaction*, as its last statement: the answer the route will send (the route's status, ``result`` as
   JSON the way Litestar renders it, ``Location`` if given) is sealed and inserted on the service's own connection.
   So the record commits with the case, the acceptance or the upload — or rolls back with them: there is no moment
   in which the change is stored and its key is not.
4. After the handler the middleware compares the answer actually sent with the recorded one (they agree on every
   route that records; when they do not, the sent one replaces it with `IdempotencyRecords.save`). A 2xx/3xx answer
   of a route whose services do not record is saved the same way, in a transaction of its own right after the
   handler: durable too, but a crash in the milliseconds between the change's commit and the record's commit runs
   the request again on retry. Routes that create things record in their transaction (intake's create, accept and
   upload do). 4xx answers change nothing, so they are kept in the fast store only; after a crash such a request
   runs again and answers the same. Finally the fast store's lease becomes the kept answer, as before.

The database, not the fast store, has the last word: the primary key (caller, key) admits one live record, so when
two requests with one key both get past the fast store (a lease that ran out, two processes without a shared
Redis), the later one's insert fails with `KeyTaken`, its transaction — its duplicate change — rolls back, and the
middleware answers it with the first one's record. A lease found in the fast store whose durable record exists
belongs to a request that committed and then died before marking the key done (a killed process whose lease
lives on in Redis): the record is replayed at once rather than answering 409 until the lease runs out.

What is kept: 2xx, 3xx and 4xx responses, except the ones that depend on the moment rather than the request —
401, 403 (credentials may change), 408, 409, 412, 423, 425, 429 (retry later). For those, for 5xx, and when the
handler fails, the fast store's lease is released so the client can retry with the key (a durable record the
handler's transaction committed stays: the change happened, and the retry replays it). Kept bodies are sealed with
the data key (AES-GCM, bound to the record's key) when a cipher is given — in Redis and in the database alike —
because responses can hold personal data (and the query code shown once); the request fingerprint is a keyed HMAC
for the same reason. Both copies expire after the TTL; `gateway.stores.lifespan` purges expired rows.

A claim is a lease (`DEFAULT_LEASE_SECONDS`): a process that dies mid-request frees the key when it runs out.
When the fast store or the database cannot be reached, a POST *with* a key answers 503 (we cannot promise
idempotency); POSTs without one are unaffected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

import anyio
import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.serialization import encode_json, get_serializer

from gateway.problems import (
    PROBLEM_JSON,
    BadRequest,
    Conflict,
    FieldError,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
    Unprocessable,
    problem_body,
)
from gateway.storage.metadata import utcnow
from gateway.stores.backends import AtomicStore
from gateway.stores.records import IdempotencyRecords, KeyTaken, StoredRecord

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ASGIApp, Receive, Send
    from litestar.types import Scope as ASGIScope
    from sqlalchemy.ext.asyncio import AsyncConnection

    from gateway.privacy.fields import FieldCipher

log = logging.getLogger("onewindow.idempotency")

#: The HTTP scope and messages, handled as plain dicts (only ``http`` scopes reach this middleware).
Scope = dict[str, Any]
Message = dict[str, Any]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
DEFAULT_LEASE_SECONDS = 120
#: Kept responses larger than this are not kept (the key is released); POST answers are small.
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
#: Statuses that describe the moment, not the request: never replayed.
NOT_KEPT_STATUSES = frozenset({401, 403, 408, 409, 412, 423, 425, 429})
#: Response headers never replayed (they describe the original exchange, not the result).
_DROPPED_HEADERS = frozenset({b"date", b"server", b"set-cookie", b"connection", b"transfer-encoding"})
#: The caller of a request without an authenticated principal.
ANONYMOUS = "anonymous"
#: Where the request's `IdempotentRequest` sits in the ASGI scope.
SCOPE_KEY = "onewindow.idempotency"

_HEADER_BYTES = HEADER.lower().encode()
_PENDING = b"P"
_DONE_PLAIN = b"D"
_DONE_SEALED = b"E"
_FP_BYTES = 32

#: Where the middleware finds the durable records (``None``: fast store only, e.g. an app without a database).
RecordSource = Callable[[], "IdempotencyRecords | None"]


class _Kept(msgspec.Struct, array_like=True):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


_encode_kept = msgspec.msgpack.Encoder().encode
_decode_kept = msgspec.msgpack.Decoder(_Kept).decode


def _frame(*parts: bytes) -> bytes:
    out = bytearray()
    for part in parts:
        out += len(part).to_bytes(4, "big") + part
    return bytes(out)


def is_kept(status: int) -> bool:
    """Whether a response with this status is kept and replayed for its key."""
    return status < 500 and status not in NOT_KEPT_STATUSES


def _header(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope["headers"] if key.lower() == name]


def _media_type_and_boundary(scope: Scope) -> tuple[bytes, bytes | None]:
    values = _header(scope, b"content-type")
    if not values:
        return b"", None
    media, *params = values[0].split(b";")
    boundary = None
    for param in params:
        name, _, value = param.strip().partition(b"=")
        if name.lower() == b"boundary":
            boundary = value.strip().strip(b'"')
    return media.strip().lower(), boundary


def principal_of(scope: Mapping[str, Any]) -> str:
    """The caller a key belongs to: ``token:<id>`` of the authenticated principal, else `ANONYMOUS`."""
    token_id = getattr(scope.get("user"), "token_id", None)
    return f"token:{token_id}" if isinstance(token_id, str) and token_id else ANONYMOUS


def _kept_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(bytes(k).lower(), bytes(v)) for k, v in headers if bytes(k).lower() not in _DROPPED_HEADERS]


def _same_answer(a: _Kept, b: _Kept) -> bool:
    return a.status == b.status and a.body == b.body and sorted(a.headers) == sorted(b.headers)


class IdempotentRequest:
    """The current request's ``Idempotency-Key``, for the services that change something.

    A service calls `record` in its write transaction, once, with what its route answers; the durable record then
    commits with the service's change (see the module docstring). Services get it from the ``idempotency``
    dependency (`provide_idempotency`), ``None`` when the request carries no key.
    """

    __slots__ = ("_middleware", "fingerprint", "media_type", "principal", "record_key", "recorded", "status", "taken")

    def __init__(
        self,
        middleware: IdempotencyMiddleware,
        *,
        principal: str,
        record_key: str,
        fingerprint: bytes,
        status: int,
        media_type: str,
    ) -> None:
        self._middleware = middleware
        self.principal = principal
        self.record_key = record_key
        self.fingerprint = fingerprint
        #: The route's status and media type: what `record` renders unless told otherwise.
        self.status = status
        self.media_type = media_type
        #: The answer `record` wrote (its transaction may still roll back).
        self.recorded: _Kept | None = None
        #: `record` found the key taken by another request's record (`KeyTaken`).
        self.taken = False

    async def record(
        self,
        conn: AsyncConnection,
        result: Any,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Write the durable record of this request in ``conn``'s transaction: ``result`` (a Struct, dict, …) is
        the body the route answers, rendered as JSON the way Litestar renders it, with the route's status (or
        ``status``) and ``headers`` (e.g. ``Location``). Call it last in the transaction, after every check that may
        still refuse. Raises `KeyTaken` (409) — roll back — when another request's record holds the key."""
        if self.recorded is not None:
            raise RuntimeError("an idempotent request is recorded once")
        records = self._middleware.records()
        if records is None:
            return
        body = encode_json(result, self._middleware.serializer)
        answer = _Kept(
            status=status or self.status,
            headers=_kept_headers(
                [
                    (b"content-type", self.media_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *((k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
                ]
            ),
            body=body,
        )
        try:
            await records.insert(conn, self._middleware.stored(self, answer))
        except KeyTaken:
            self.taken = True
            raise
        self.recorded = answer


def provide_idempotency(request: Request[Any, Any, Any]) -> IdempotentRequest | None:
    """The ``idempotency`` dependency: the request's `IdempotentRequest`, or ``None`` without a key."""
    hold = request.scope.get(SCOPE_KEY)
    return hold if isinstance(hold, IdempotentRequest) else None


class IdempotencyMiddleware(ASGIMiddleware):
    """ASGI middleware (Litestar `ASGIMiddleware`) implementing ``Idempotency-Key`` on POST routes."""

    scopes = (ScopeType.HTTP,)
    #: A route with ``opt={"exclude_idempotency": True}`` handles repeated POSTs itself.
    exclude_opt_key = "exclude_idempotency"

    def __init__(
        self,
        store: AtomicStore,
        *,
        ttl_seconds: int,
        max_body_bytes: int,
        cipher: FieldCipher | None = None,
        records: RecordSource | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        methods: Iterable[str] = ("POST",),
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.ttl_ms = int(ttl_seconds * 1000)
        self.lease_ms = int(min(lease_seconds, ttl_seconds) * 1000)
        self.max_body_bytes = max_body_bytes
        self.max_record_bytes = max_record_bytes
        self.cipher = cipher
        self.records: RecordSource = records or (lambda: None)
        self.methods = frozenset(m.upper() for m in methods)
        self.serializer = get_serializer()

    async def handle(self, scope: ASGIScope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        await self._handle(cast("Scope", scope), receive, send, next_app)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["method"] not in self.methods:
            await next_app(cast("ASGIScope", scope), receive, send)
            return
        keys = _header(scope, _HEADER_BYTES)
        if not keys:
            await next_app(cast("ASGIScope", scope), receive, send)
            return
        try:
            key = self._valid_key(keys)
            body = await self._read_body(scope, receive)
        except ProblemError as exc:
            await _send_problem(scope, send, exc)
            return
        except _ClientGone:
            return
        await self._run_once(scope, receive, send, next_app, key, body)

    # --- steps -------------------------------------------------------------------------------------------

    @staticmethod
    def _valid_key(values: list[bytes]) -> bytes:
        def bad(message: str) -> BadRequest:
            return BadRequest(f"{HEADER}: {message}", errors=[FieldError(HEADER, message)])

        if len(values) > 1:
            raise bad("send the header once")
        key = values[0].strip()
        if not key:
            raise bad("must not be empty")
        if len(key) > MAX_KEY_LENGTH:
            raise bad(f"must be at most {MAX_KEY_LENGTH} characters")
        if any(b < 0x21 or b > 0x7E for b in key):
            raise bad("must be visible ASCII characters (a UUID is a good key)")
        return key

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        too_large = PayloadTooLarge(
            f"request body is larger than {self.max_body_bytes} bytes",
            errors=[FieldError("body", f"at most {self.max_body_bytes} bytes")],
        )
        for declared in _header(scope, b"content-length"):
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = cast("Message", await receive())
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _record_key(scope: Scope, principal: str, key: bytes) -> str:
        path = scope["path"].encode("utf-8", "surrogateescape")
        return hashlib.sha256(
            _frame(b"idempotency", principal.encode(), scope["method"].encode(), path, key)
        ).hexdigest()

    def _fingerprint(self, scope: Scope, body: bytes) -> bytes:
        media, boundary = _media_type_and_boundary(scope)
        if boundary:
            body = body.replace(b"--" + boundary, b"--<boundary>")
        material = _frame(
            scope["method"].encode(),
            scope["path"].encode("utf-8", "surrogateescape"),
            scope.get("query_string", b""),
            media,
            body,
        )
        if self.cipher is not None:
            return self.cipher.keyed_digest(material, purpose="idempotency")
        return hashlib.sha256(material).digest()

    async def _run_once(
        self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp, key: bytes, body: bytes
    ) -> None:
        principal = principal_of(scope)
        record_key = self._record_key(scope, principal, key)
        fingerprint = self._fingerprint(scope, body)
        pending = _PENDING + fingerprint + secrets.token_bytes(16)
        records = self.records()
        try:
            existing = await self._claim(record_key, pending)
        except Exception as exc:
            await self._unavailable(scope, send, "store", exc)
            return
        if existing is not None:
            record, kept = existing
            if kept is None and records is not None and record[1 : 1 + _FP_BYTES] == fingerprint:
                # Someone's lease: a request still running — or one that committed and died before marking its key
                # done (its lease outlives it in Redis). Its durable record tells which.
                durable = await self._find(records, principal, record_key)
                if durable is not None:
                    await self._answer_durable(scope, send, durable, fingerprint)
                    return
            await self._answer_existing(scope, send, record, kept, fingerprint)
            return

        # We hold the lease. A durable record means the request already ran (the usual case after a crash).
        if records is not None:
            try:
                durable = await records.find(principal, record_key)
            except Exception as exc:
                await self._release(record_key, pending)
                await self._unavailable(scope, send, "database", exc)
                return
            if durable is not None:
                await self._answer_durable(scope, send, durable, fingerprint, pending=pending)
                return

        hold = self._hold(scope, principal, record_key, fingerprint)
        start: Message | None = None
        chunks: list[bytes] = []
        body_sent = False

        async def replay_body() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return cast("Message", await receive())

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        scope[SCOPE_KEY] = hold
        try:
            await next_app(cast("ASGIScope", scope), cast("Receive", replay_body), cast("Send", capture))
        except BaseException:
            await self._release(record_key, pending)
            raise
        finally:
            scope.pop(SCOPE_KEY, None)
        if hold.taken and records is not None:
            # Another request with this key committed first; this one's change rolled back. Answer with the first's.
            durable = await self._find(records, principal, record_key)
            if durable is not None:
                await self._answer_durable(scope, send, durable, fingerprint, pending=pending)
                return
        if start is None:
            await self._release(record_key, pending)
            return
        status = int(start["status"])
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
        response_body = b"".join(chunks)
        if is_kept(status) and len(response_body) <= self.max_record_bytes:
            answer = _Kept(status=status, headers=_kept_headers(headers), body=response_body)
            # Recorded in the handler's transaction: saved again only if the answer sent differs. Not recorded: a
            # 2xx/3xx may have changed something, so it is saved now; a 4xx changed nothing (fast store only).
            unrecorded = status < 400 if hold.recorded is None else not _same_answer(hold.recorded, answer)
            if records is not None and unrecorded:
                await self._save(records, hold, answer)
            await self._keep(record_key, pending, fingerprint, answer)
        else:
            await self._release(record_key, pending)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": response_body, "more_body": False})

    def _hold(self, scope: Scope, principal: str, record_key: str, fingerprint: bytes) -> IdempotentRequest:
        handler = scope.get("route_handler")
        status = getattr(handler, "status_code", None)
        media_type = getattr(handler, "media_type", None)
        if isinstance(media_type, Enum):  # Litestar's MediaType
            media_type = media_type.value
        return IdempotentRequest(
            self,
            principal=principal,
            record_key=record_key,
            fingerprint=fingerprint,
            status=status if isinstance(status, int) else 201,
            media_type=str(media_type) if media_type else "application/json",
        )

    # --- the fast store ----------------------------------------------------------------------------------

    async def _claim(self, record_key: str, pending: bytes) -> tuple[bytes, _Kept | None] | None:
        """``None`` when we hold the key now; else the record already there and its kept response (``None`` while
        that request is still running)."""
        existing = await self.store.claim(record_key, pending, self.lease_ms)
        if existing is None:
            return None
        try:
            return existing, self._kept(record_key, existing)
        except ValueError:
            # A record we cannot read (its data key was retired, or it is damaged): drop it and claim afresh.
            log.warning("idempotency record unreadable; discarding it")
            await self.store.delete_if(record_key, existing)
        existing = await self.store.claim(record_key, pending, self.lease_ms)
        return None if existing is None else (existing, self._kept(record_key, existing))

    def _kept(self, record_key: str, record: bytes) -> _Kept | None:
        """The kept response of a finished record, ``None`` for a pending one; `ValueError` if unreadable."""
        if len(record) < 1 + _FP_BYTES:
            raise ValueError("short record")
        if record[:1] == _PENDING:
            return None
        return self._unpack(record_key, record[:1] + record[1 + _FP_BYTES :])

    def _pack(self, record_key: str, answer: _Kept) -> bytes:
        """The kept answer as stored: a kind byte, then the msgpack (sealed, bound to the key, with a cipher)."""
        payload = _encode_kept(answer)
        if self.cipher is not None:
            return _DONE_SEALED + self.cipher.seal(payload, context=record_key.encode())
        return _DONE_PLAIN + payload

    def _unpack(self, record_key: str, packed: bytes) -> _Kept:
        """What `_pack` made; `ValueError` when it cannot be read."""
        tag, payload = packed[:1], packed[1:]
        if tag == _DONE_SEALED:
            if self.cipher is None:
                raise ValueError("sealed record without a cipher")
            payload = self.cipher.unseal(payload, context=record_key.encode())
        elif tag != _DONE_PLAIN:
            raise ValueError("unknown record kind")
        try:
            return _decode_kept(payload)
        except msgspec.DecodeError as exc:
            raise ValueError("undecodable record") from exc

    async def _keep(self, record_key: str, pending: bytes, fingerprint: bytes, answer: _Kept, ttl_ms: int = 0) -> None:
        packed = self._pack(record_key, answer)
        record = packed[:1] + fingerprint + packed[1:]
        try:
            with anyio.CancelScope(shield=True):
                kept = await self.store.replace_if(record_key, pending, record, ttl_ms or self.ttl_ms)
        except Exception as exc:
            log.error("idempotency record not kept (store error %s); the key frees when its lease ends",
                      type(exc).__name__)  # fmt: skip
            return
        if not kept:
            log.warning("idempotency lease ran out before the response was kept")

    async def _release(self, record_key: str, pending: bytes) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await self.store.delete_if(record_key, pending)
        except Exception as exc:
            log.error("idempotency key not released (store error %s); it frees when its lease ends",
                      type(exc).__name__)  # fmt: skip

    # --- the durable records ----------------------------------------------------------------------------

    def stored(self, hold: IdempotentRequest, answer: _Kept) -> StoredRecord:
        """The durable record of ``hold``'s request answered with ``answer``."""
        now = utcnow()
        return StoredRecord(
            principal=hold.principal,
            key=hold.record_key,
            fingerprint=hold.fingerprint,
            status=answer.status,
            response=self._pack(hold.record_key, answer),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=self.ttl_seconds),
        )

    @staticmethod
    async def _find(records: IdempotencyRecords, principal: str, record_key: str) -> StoredRecord | None:
        try:
            return await records.find(principal, record_key)
        except Exception as exc:
            log.error("idempotency record not read (database error %s)", type(exc).__name__)
            return None

    async def _save(self, records: IdempotencyRecords, hold: IdempotentRequest, answer: _Kept) -> None:
        try:
            with anyio.CancelScope(shield=True):
                saved = await records.save(self.stored(hold, answer))
        except Exception as exc:
            log.error("idempotency record not saved (database error %s)", type(exc).__name__)
            return
        if not saved:
            log.warning("idempotency record not saved: another request's record holds the key")

    async def _answer_durable(
        self, scope: Scope, send: Send, durable: StoredRecord, fingerprint: bytes, *, pending: bytes | None = None
    ) -> None:
        """Replay a durable record (and copy it into the fast store when we hold the lease), or 422."""
        record_key = durable.key
        if durable.fingerprint != fingerprint:
            if pending is not None:
                await self._release(record_key, pending)
            await _send_problem(scope, send, _other_request())
            return
        try:
            answer = self._unpack(record_key, durable.response)
        except ValueError:
            log.warning("durable idempotency record unreadable (its data key is gone?)")
            if pending is not None:
                await self._release(record_key, pending)
            message = "was used for a request that completed, whose answer can no longer be read; use a new key"
            await _send_problem(scope, send, Unprocessable(f"{HEADER} {message}", errors=[FieldError(HEADER, message)]))
            return
        if pending is not None:
            ttl_ms = int((durable.expires_at - utcnow()).total_seconds() * 1000)
            if ttl_ms > 0:
                await self._keep(record_key, pending, fingerprint, answer, ttl_ms)
            else:
                await self._release(record_key, pending)
        await _replay(send, answer)

    # --- answers -----------------------------------------------------------------------------------------

    @staticmethod
    async def _answer_existing(scope: Scope, send: Send, record: bytes, kept: _Kept | None, fingerprint: bytes) -> None:
        if record[1 : 1 + _FP_BYTES] != fingerprint:
            await _send_problem(scope, send, _other_request())
            return
        if kept is None:
            conflict = Conflict(
                f"a request with this {HEADER} is still in progress; retry shortly", headers={"Retry-After": "1"}
            )
            await _send_problem(scope, send, conflict)
            return
        await _replay(send, kept)

    @staticmethod
    async def _unavailable(scope: Scope, send: Send, what: str, exc: Exception) -> None:
        log.error("idempotency %s unavailable: %s", what, type(exc).__name__)
        unavailable = ServiceUnavailable(f"cannot check {HEADER} now; retry shortly", headers={"Retry-After": "1"})
        await _send_problem(scope, send, unavailable)


def _other_request() -> Unprocessable:
    message = "was already used with a different request; use a new key for a new request"
    return Unprocessable(f"{HEADER} {message}", errors=[FieldError(HEADER, message)])


async def _replay(send: Send, kept: _Kept) -> None:
    headers = [*kept.headers, (REPLAYED_HEADER.lower().encode(), b"true")]
    await send({"type": "http.response.start", "status": kept.status, "headers": headers})
    await send({"type": "http.response.body", "body": kept.body, "more_body": False})


class _ClientGone(Exception):
    """The client disconnected while sending its body: nothing to answer."""


async def _send_problem(scope: Scope, send: Send, exc: ProblemError) -> None:
    payload = problem_body(exc.to_problem(scope["path"]), exc.extra)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in exc.headers.items()),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def idempotency_middleware(
    store: AtomicStore,
    *,
    ttl_seconds: int,
    upload_max_bytes: int,
    cipher: FieldCipher | None = None,
    records: RecordSource | None = None,
    **options: Any,
) -> IdempotencyMiddleware:
    """The middleware as `create_app` configures it: bodies up to the upload cap plus room for multipart framing;
    ``records`` gives the durable records once the database is open."""
    return IdempotencyMiddleware(
        store,
        ttl_seconds=ttl_seconds,
        max_body_bytes=upload_max_bytes + 64 * 1024,
        cipher=cipher,
        records=records,
        **options,
    )


__all__ = [
    "ANONYMOUS",
    "DEFAULT_LEASE_SECONDS",
    "HEADER",
    "MAX_KEY_LENGTH",
    "NOT_KEPT_STATUSES",
    "REPLAYED_HEADER",
    "SCOPE_KEY",
    "IdempotencyMiddleware",
    "IdempotentRequest",
    "RecordSource",
    "idempotency_middleware",
    "is_kept",
    "principal_of",
    "provide_idempotency",
]
