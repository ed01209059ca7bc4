"""``Idempotency-Key`` for every POST (docs/api.md#idempotency): a double click or a client retry never files twice.

A POST carrying ``Idempotency-Key: <1-255 visible ASCII characters>``:

* first time — the key is claimed atomically (Redis: one Lua ``GET``/``SET PX`` script, so two gateway processes
  cannot both claim it; memory: one process), the request runs, and its response is kept for
  ``Settings.idempotency_ttl_seconds``;
* same key, same request, response kept — the kept response is replayed (status, body, content type and other
  headers) with ``Idempotent-Replayed: true``; the handler does not run;
* same key, different request — 422 problem+json (``errors[0].field == "Idempotency-Key"``);
* same key while the first request is still running — 409 problem+json with ``Retry-After: 1``.

"Same request" means the same method, path, query string, media type and body bytes (a multipart body's
random boundary is ignored, so a browser re-sending the same form matches). Keys are scoped by caller
(a digest of the ``Authorization`` header), method and path: two callers never see each other's responses.

What is kept: 2xx, 3xx and 4xx responses, except the ones that depend on the moment rather than the request —
401, 403 (credentials may change), 408, 409, 412, 423, 425, 429 (retry later). For those, for 5xx, and when the
handler fails, the key is released so the client can retry with it. Kept bodies are sealed with the data key
(AES-GCM, bound to the record's key) when a cipher is given, because responses can hold personal data and Redis
is not encrypted at rest; the request fingerprint is a keyed HMAC for the same reason.

A claim is a lease (`DEFAULT_LEASE_SECONDS`): a process that dies mid-request frees the key when it runs out.
When the store cannot be reached, a POST *with* a key answers 503 (we cannot promise idempotency), POSTs without
one are unaffected.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import anyio
import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

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
from gateway.stores.backends import AtomicStore

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Send
    from litestar.types import Scope as ASGIScope

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

_HEADER_BYTES = HEADER.lower().encode()
_AUTH_BYTES = b"authorization"
_PENDING = b"P"
_DONE_PLAIN = b"D"
_DONE_SEALED = b"E"
_FP_BYTES = 32


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
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        methods: Iterable[str] = ("POST",),
    ) -> None:
        self.store = store
        self.ttl_ms = int(ttl_seconds * 1000)
        self.lease_ms = int(min(lease_seconds, ttl_seconds) * 1000)
        self.max_body_bytes = max_body_bytes
        self.max_record_bytes = max_record_bytes
        self.cipher = cipher
        self.methods = frozenset(m.upper() for m in methods)

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

    def _record_key(self, scope: Scope, key: bytes) -> str:
        auth = _header(scope, _AUTH_BYTES)
        principal = hashlib.sha256(auth[0]).digest() if auth else b"anonymous"
        path = scope["path"].encode("utf-8", "surrogateescape")
        return hashlib.sha256(_frame(b"idempotency", principal, scope["method"].encode(), path, key)).hexdigest()

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
        record_key = self._record_key(scope, key)
        fingerprint = self._fingerprint(scope, body)
        pending = _PENDING + fingerprint + secrets.token_bytes(16)
        try:
            existing = await self._claim(record_key, pending)
        except Exception as exc:
            log.error("idempotency store unavailable: %s", type(exc).__name__)
            unavailable = ServiceUnavailable(f"cannot check {HEADER} now; retry shortly", headers={"Retry-After": "1"})
            await _send_problem(scope, send, unavailable)
            return
        if existing is not None:
            await self._answer_existing(scope, send, existing[0], existing[1], fingerprint)
            return

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

        try:
            await next_app(cast("ASGIScope", scope), cast("Receive", replay_body), cast("Send", capture))
        except BaseException:
            await self._release(record_key, pending)
            raise
        if start is None:
            await self._release(record_key, pending)
            return
        status = int(start["status"])
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
        response_body = b"".join(chunks)
        if is_kept(status) and len(response_body) <= self.max_record_bytes:
            await self._keep(record_key, pending, status, headers, response_body)
        else:
            await self._release(record_key, pending)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": response_body, "more_body": False})

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
        tag, payload = record[:1], record[1 + _FP_BYTES :]
        if tag == _PENDING:
            return None
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

    @staticmethod
    async def _answer_existing(scope: Scope, send: Send, record: bytes, kept: _Kept | None, fingerprint: bytes) -> None:
        if record[1 : 1 + _FP_BYTES] != fingerprint:
            message = "was already used with a different request; use a new key for a new request"
            await _send_problem(scope, send, Unprocessable(f"{HEADER} {message}", errors=[FieldError(HEADER, message)]))
            return
        if kept is None:
            conflict = Conflict(
                f"a request with this {HEADER} is still in progress; retry shortly", headers={"Retry-After": "1"}
            )
            await _send_problem(scope, send, conflict)
            return
        headers = [*kept.headers, (REPLAYED_HEADER.lower().encode(), b"true")]
        await send({"type": "http.response.start", "status": kept.status, "headers": headers})
        await send({"type": "http.response.body", "body": kept.body, "more_body": False})

    async def _keep(
        self, record_key: str, pending: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        kept_headers = [(k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS]
        payload = _encode_kept(_Kept(status=status, headers=kept_headers, body=body))
        fingerprint = pending[1 : 1 + _FP_BYTES]
        if self.cipher is not None:
            record = _DONE_SEALED + fingerprint + self.cipher.seal(payload, context=record_key.encode())
        else:
            record = _DONE_PLAIN + fingerprint + payload
        try:
            with anyio.CancelScope(shield=True):
                kept = await self.store.replace_if(record_key, pending, record, self.ttl_ms)
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
    **options: Any,
) -> IdempotencyMiddleware:
    """The middleware as `create_app` configures it: bodies up to the upload cap plus room for multipart framing."""
    return IdempotencyMiddleware(
        store,
        ttl_seconds=ttl_seconds,
        max_body_bytes=upload_max_bytes + 64 * 1024,
        cipher=cipher,
        **options,
    )


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "HEADER",
    "MAX_KEY_LENGTH",
    "NOT_KEPT_STATUSES",
    "REPLAYED_HEADER",
    "IdempotencyMiddleware",
    "idempotency_middleware",
    "is_kept",
]
