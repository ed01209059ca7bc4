"""Who is pushing: the department's system, authenticated as its connector file's ``[push]`` section says.

- ``hmac``: the connectors' signing scheme (`connectors.auth.hmac_string_to_sign`) with the department's own key:
  key id, millisecond timestamp (at most `MAX_SKEW_SECONDS` away from our clock), nonce and signature headers over
  method, path, sorted query, timestamp, nonce and the body's SHA-256. A replayed request is harmless: events are
  idempotent by the department's event id.
- ``mutual_tls``: the TLS-terminating proxy (one of ``trusted_proxies``) verified the client certificate and
  forwards it URL-encoded; we check again that the configured CA issued it, that it is valid now and that its
  subject common name is the configured one. The same header from anyone else is ignored.
- ``token``: ``Authorization: Bearer`` with a token of role ``department`` bound to this department.

Every failure is 401, except a valid department token of another department (403).
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from connectors.auth import encode_query, hmac_signature, hmac_string_to_sign
from connectors.spec import DepartmentSpec, HmacAuth, PushMutualTls, PushToken
from gateway.clients import TrustedProxies, parse_address
from gateway.identity.authenticator import TokenAuthenticator
from gateway.identity.principal import Principal, Role
from gateway.problems import Forbidden, Unauthorized

#: An HMAC-signed request older or newer than this (seconds) is refused.
MAX_SKEW_SECONDS = 300.0
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="onewindow-departments"'}


class PushRequest:
    """What authentication looks at, taken from the HTTP request."""

    __slots__ = ("body", "headers", "method", "path", "peer", "query")

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        peer: str | None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.peer = peer


def _refuse(message: str) -> Unauthorized:
    return Unauthorized(message, headers=_CHALLENGE)


def department_principal(code: str, via: str) -> Principal:
    """The department as an actor: history shows ``department:<code>``; the audit log ``token:push-<via>:<code>``."""
    return Principal(token_id=f"push-{via}:{code}", role=Role.DEPARTMENT, department=code, label=f"{code} ({via})")


def verify_hmac(
    spec: HmacAuth, code: str, request: PushRequest, *, clock: Callable[[], float] = time.time
) -> Principal:
    headers = request.headers
    key_id = headers.get(spec.key_id_header)
    timestamp = headers.get(spec.timestamp_header)
    nonce = headers.get(spec.nonce_header)
    signature = headers.get(spec.signature_header)
    if not (key_id and timestamp and nonce and signature):
        raise _refuse(
            f"Sign the request: {spec.key_id_header}, {spec.timestamp_header}, {spec.nonce_header} and "
            f"{spec.signature_header} are required."
        )
    if not hmac.compare_digest(key_id.encode(), spec.key_id.encode()):
        raise _refuse(f"Unknown key id in {spec.key_id_header}.")
    try:
        sent_at = int(timestamp) / 1000
    except ValueError:
        raise _refuse(f"{spec.timestamp_header} must be milliseconds since the epoch.") from None
    if abs(clock() - sent_at) > MAX_SKEW_SECONDS:
        raise _refuse(f"{spec.timestamp_header} is more than {MAX_SKEW_SECONDS:g} seconds away from our clock.")
    to_sign = hmac_string_to_sign(
        request.method, request.path, encode_query(request.query), timestamp, nonce, request.body
    )
    expected = hmac_signature(spec.resolved_secret(), to_sign)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _refuse("The signature does not match the request.")
    return department_principal(code, "hmac")


def verify_client_certificate(
    spec: PushMutualTls,
    code: str,
    request: PushRequest,
    *,
    trusted_proxies: TrustedProxies,
    data_dir: Path,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Principal:
    peer = parse_address(request.peer or "")
    if peer is None or not trusted_proxies.trusts(peer):
        raise _refuse("A client certificate is taken only through the gateway's TLS proxy.")
    forwarded = request.headers.get(spec.header)
    if not forwarded:
        raise _refuse("No client certificate was presented.")
    try:
        certificate = x509.load_pem_x509_certificate(unquote(forwarded).encode())
        authority = x509.load_pem_x509_certificate((data_dir / spec.ca_file).read_bytes())
    except (ValueError, OSError):
        raise _refuse("The client certificate cannot be read.") from None
    try:
        certificate.verify_directly_issued_by(authority)
    except (InvalidSignature, ValueError, TypeError):
        raise _refuse("The client certificate was not issued by the department's CA.") from None
    moment = now()
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise _refuse("The client certificate is not valid now.")
    names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [spec.subject]:
        raise _refuse("The client certificate belongs to someone else.")
    return department_principal(code, "mtls")


async def verify_token(code: str, request: PushRequest, authenticator: TokenAuthenticator) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refuse("This department pushes with 'Authorization: Bearer <token>'.")
    principal = await authenticator.authenticate(token.strip())
    if principal is None:
        raise _refuse("The bearer token is unknown or revoked.")
    if principal.role is not Role.DEPARTMENT:
        raise Forbidden(f"Events are pushed with a department token; this token's role is {principal.role.value}.")
    if principal.department != code:
        raise Forbidden(f"This token is bound to another department, not {code}.")
    return principal


async def authenticate_push(
    spec: DepartmentSpec,
    request: PushRequest,
    *,
    authenticator: TokenAuthenticator,
    trusted_proxies: TrustedProxies,
    data_dir: Path,
) -> Principal:
    """The department as a `Principal` of role ``department``; `Unauthorized` / `Forbidden` otherwise."""
    push = spec.push
    if isinstance(push, HmacAuth):
        return verify_hmac(push, spec.code, request)
    if isinstance(push, PushMutualTls):
        return verify_client_certificate(push, spec.code, request, trusted_proxies=trusted_proxies, data_dir=data_dir)
    if isinstance(push, PushToken):
        return await verify_token(spec.code, request, authenticator)
    raise _refuse(f"Department {spec.code} has no [push] section: it cannot push events.")


__all__ = [
    "MAX_SKEW_SECONDS",
    "PushRequest",
    "authenticate_push",
    "department_principal",
    "verify_client_certificate",
    "verify_hmac",
    "verify_token",
]
