"""Request authentication for the four styles departments use: API key, HMAC signing, OAuth2, mutual TLS.

`RequestAuth.apply` adds headers to one request; it is called per attempt (HMAC timestamps and nonces, and OAuth2
tokens, must be fresh on every retry). Mutual TLS lives in the session's `ssl.SSLContext` instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from connectors.errors import ConfigurationError
from connectors.spec import ApiKeyAuth, Auth, HmacAuth, MutualTlsAuth, OAuth2ClientCredentials


def encode_query(params: list[tuple[str, str]]) -> str:
    """Query string sorted by name, names and values percent-encoded (RFC 3986 unreserved kept).

    The request carries exactly this string, so it is also the SORTED_QUERY an HMAC department recomputes.
    """
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(params, key=lambda kv: kv[0]))


def hmac_string_to_sign(method: str, path: str, sorted_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """``METHOD\\nPATH\\nSORTED_QUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA-256(body))`` (docs/simulators.md §2)."""
    return "\n".join((method.upper(), path, sorted_query, timestamp, nonce, hashlib.sha256(body).hexdigest()))


def hmac_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class RequestAuth:
    """Adds nothing (no auth, mutual TLS)."""

    async def apply(self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]) -> None:
        return None

    async def on_unauthorized(self, headers: Mapping[str, str]) -> bool:
        """A 401 arrived; return True when the request is worth one more try (fresh token)."""
        return False


class ApiKeyRequestAuth(RequestAuth):
    def __init__(self, spec: ApiKeyAuth, environ: Mapping[str, str] | None) -> None:
        self._header = spec.header
        self._key = spec.resolved_key(environ)

    async def apply(self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]) -> None:
        headers[self._header] = self._key


class HmacRequestAuth(RequestAuth):
    def __init__(
        self, spec: HmacAuth, environ: Mapping[str, str] | None, clock: Callable[[], float] = time.time
    ) -> None:
        self._spec = spec
        self._secret = spec.resolved_secret(environ)
        self._clock = clock

    async def apply(self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]) -> None:
        spec = self._spec
        timestamp = str(int(self._clock() * 1000))
        nonce = secrets.token_hex(16)
        to_sign = hmac_string_to_sign(method, path, query, timestamp, nonce, body)
        headers[spec.key_id_header] = spec.key_id
        headers[spec.timestamp_header] = timestamp
        headers[spec.nonce_header] = nonce
        headers[spec.signature_header] = hmac_signature(self._secret, to_sign)


TokenFetcher = Callable[[], Awaitable[tuple[str, float]]]


class OAuth2RequestAuth(RequestAuth):
    """Bearer token from the client credentials grant: cached, refreshed at ``refresh_at`` of its lifetime, one
    refresh in flight at a time, and dropped when the department answers 401 (the caller then retries once)."""

    def __init__(
        self,
        spec: OAuth2ClientCredentials,
        fetch: TokenFetcher,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refresh_at = spec.refresh_at
        self._clock = clock
        self._token: str | None = None
        self._refresh_after = 0.0
        self._lock = asyncio.Lock()
        #: Tokens fetched so far (observability and tests).
        self.fetched = 0

    async def token(self) -> str:
        token = self._token
        if token is not None and self._clock() < self._refresh_after:
            return token
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            if self._token is not None and self._clock() < self._refresh_after:
                return self._token
            token, expires_in = await self._fetch()
            self.fetched += 1
            self._token = token
            self._refresh_after = self._clock() + max(expires_in, 0.0) * self._refresh_at
            return token

    async def apply(self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]) -> None:
        headers["Authorization"] = f"Bearer {await self.token()}"

    async def on_unauthorized(self, headers: Mapping[str, str]) -> bool:
        used = headers.get("Authorization", "").removeprefix("Bearer ")
        # Only drop the token this request used: a newer one fetched meanwhile is still good.
        if used and used == self._token:
            self._token = None
        return True


def client_ssl_context(spec: MutualTlsAuth, data_dir: Path) -> ssl.SSLContext:
    """TLS context trusting only the department's CA and presenting our client certificate."""
    ca, cert, key = (data_dir / spec.ca_file, data_dir / spec.cert_file, data_dir / spec.key_file)
    for label, path in (("ca_file", ca), ("cert_file", cert), ("key_file", key)):
        if not path.is_file():
            raise ConfigurationError(f"auth.{label}: {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"auth.cert_file/key_file: cannot load the client certificate: {exc}") from exc
    return context


def build_request_auth(
    auth: Auth,
    *,
    environ: Mapping[str, str] | None,
    fetch_token: TokenFetcher | None = None,
    clock: Callable[[], float] | None = None,
) -> RequestAuth:
    if isinstance(auth, ApiKeyAuth):
        return ApiKeyRequestAuth(auth, environ)
    if isinstance(auth, HmacAuth):
        return HmacRequestAuth(auth, environ)
    if isinstance(auth, OAuth2ClientCredentials):
        if fetch_token is None:
            raise ValueError("OAuth2 needs a token fetcher")
        return OAuth2RequestAuth(auth, fetch_token, clock or time.monotonic)
    return RequestAuth()
