"""Authentication styles against real servers: HMAC signing (with a hand-derived vector), OAuth2 client
credentials (cached, refreshed, one refresh in flight, one retry on 401) and mutual TLS."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors import auth as auth_module
from connectors.auth import encode_query, hmac_signature, hmac_string_to_sign
from connectors.client import ConnectorPool
from connectors.errors import AuthenticationFailed, ConfigurationError, ConnectionFailed
from connectors.spec import DepartmentSpec
from connectors.sync import probe, sync_department
from connectors.trust import TrustStore
from tests.connectors.helpers import SHANGHAI, FakeClock, InMemorySink, make_certificate

VETERANS_RECORD_FIELDS = {
    "identifier": "cardId",
    "number": "cardNo",
    "type_code": "typeCode",
    "name": "cardName",
    "holder_name": "name",
    "holder_code": "idNumber",
    "holder_code_type": "idType",
    "issuer_name": "issuerName",
    "issuer_code": "issuerCode",
    "issue_date": "issueDate",
    "valid_from": "validFrom",
    "valid_until": "validTo",
    "status": "status",
    "attributes": "ext",
    "updated_at": "modified",
    "signature_alg": "sign.alg",
    "signature_key_id": "sign.keyId",
    "signature_value": "sign.value",
}


def veterans_record(n: int) -> dict[str, Any]:
    c = make_certificate(n, department="veterans")
    assert c.signature is not None
    return {
        "cardId": c.identifier,
        "cardNo": c.number,
        "typeCode": c.type_code,
        "cardName": c.name,
        "name": c.holder_name,
        "idNumber": c.holder_code,
        "idType": c.holder_code_type,
        "issuerName": c.issuer_name,
        "issuerCode": c.issuer_code,
        "issueDate": c.issue_date.isoformat(),
        "validFrom": c.valid_from.isoformat(),
        "validTo": c.valid_until.isoformat() if c.valid_until else None,
        "status": c.status,
        "ext": c.attributes,
        "modified": dt.datetime(2025, 1, 1, 8, n, tzinfo=SHANGHAI).isoformat(),
        "sign": {"alg": c.signature.alg, "keyId": c.signature.key_id, "value": c.signature.value},
    }


def spec_for(base_url: str, auth: dict[str, Any], **extra: Any) -> DepartmentSpec:
    """A veterans-style JSON department with the given auth."""
    raw = {
        "code": "veterans",
        "name": "湘潭市雨湖区退役军人事务局",
        "base_url": base_url,
        "types": {"veteran_preferential_card": "1110000048348815WN001"},
        "auth": auth,
        "format": {"kind": "json", "items": "list"},
        "paging": {
            "kind": "offset",
            "offset_param": "skip",
            "limit_param": "take",
            "has_more": "hasMore",
            "page_size": 2,
        },
        "endpoints": {
            "health": {"path": "/health"},
            "bulk": {"path": "/veterans/cards", "updated_since_param": "since"},
            "holder": {"path": "/veterans/cards", "holder_param": "idNumber"},
        },
        "mapping": VETERANS_RECORD_FIELDS,
        "retry": {"attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.02, "deadline": 5},
        **extra,
    }
    return msgspec.convert(raw, DepartmentSpec)


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, runner.addresses[0][1]


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def listing(request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
    skip, take = int(request.query.get("skip", "0")), int(request.query.get("take", "2"))
    return web.json_response({"list": rows[skip : skip + take], "hasMore": skip + take < len(rows)})


# --- HMAC ---------------------------------------------------------------------------------------------------


def test_hmac_string_to_sign_fixed_vector() -> None:
    query = encode_query([("offset", "0"), ("modified_after", "2026-01-01T00:00:00+08:00"), ("limit", "2")])
    assert query == "limit=2&modified_after=2026-01-01T00%3A00%3A00%2B08%3A00&offset=0"
    to_sign = hmac_string_to_sign("get", "/mca/certs", query, "1700000000000", "abc123", b"")
    assert to_sign == (
        "GET\n/mca/certs\nlimit=2&modified_after=2026-01-01T00%3A00%3A00%2B08%3A00&offset=0\n1700000000000\nabc123\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    # Derived independently: printf '<string>' | openssl dgst -sha256 -hmac demo-civil-affairs-secret -binary | base64
    assert hmac_signature("demo-civil-affairs-secret", to_sign) == "53IdbS1o6egoEVoejwBadav6jzz8S0ig6PFyy6Qi/UQ="


async def test_hmac_signed_requests_are_accepted_by_a_verifying_server(tmp_path: Path) -> None:
    secret = "s3cret"
    nonces: set[str] = set()
    rows = [veterans_record(n) for n in range(5)]

    async def certs(request: web.Request) -> web.Response:
        h = request.headers
        raw = request.rel_url.raw_query_string  # as sent, still percent-encoded
        pairs = sorted(p.split("=", 1) for p in raw.split("&") if p)
        sorted_query = "&".join(f"{k}={v}" for k, v in pairs)
        to_sign = "\n".join(
            [
                request.method,
                request.path,
                sorted_query,
                h["X-Ca-Timestamp"],
                h["X-Ca-Nonce"],
                hashlib.sha256(await request.read()).hexdigest(),
            ]
        )
        expected = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
        if h.get("X-Ca-Key") != "onewindow" or h.get("X-Ca-Signature") != expected or h["X-Ca-Nonce"] in nonces:
            return web.json_response({"reason": "bad signature"}, status=401)
        nonces.add(h["X-Ca-Nonce"])
        return listing(request, rows)

    app = web.Application()
    app.router.add_get("/veterans/cards", certs)
    runner, port = await serve(app)
    try:
        auth = {"kind": "hmac", "key_id": "onewindow", "secret": "wrong", "secret_env": "TEST_HMAC_SECRET"}
        spec = spec_for(f"http://127.0.0.1:{port}", auth)
        async with ConnectorPool([spec], data_dir=tmp_path, environ={"TEST_HMAC_SECRET": secret}) as pool:
            report = await sync_department(
                pool, "veterans", InMemorySink(), since=dt.datetime(2024, 1, 1, tzinfo=SHANGHAI)
            )
        assert report.errors == [] and report.fetched == 5 and report.stored == 5
        assert len(nonces) == 3  # a fresh nonce per request
        async with ConnectorPool([spec], data_dir=tmp_path, environ={}) as pool:  # the inline (wrong) secret
            report = await sync_department(pool, "veterans", InMemorySink())
        assert len(report.errors) == 1 and "authentication_failed" in report.errors[0]
        assert "bad signature" in report.errors[0]
    finally:
        await runner.cleanup()


# --- OAuth2 -------------------------------------------------------------------------------------------------


class TokenServer:
    def __init__(self, expires_in: float = 300) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.token_delay = 0.0
        self.rows = [veterans_record(n) for n in range(4)]
        self.refuse_all = False

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        expected = "Basic " + base64.b64encode(b"onewindow:demo-secret").decode()
        if request.headers.get("Authorization") != expected or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        await asyncio.sleep(self.token_delay)
        token = f"t{len(self.issued)}"
        self.issued.append(token)
        self.valid.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in})

    async def cards(self, request: web.Request) -> web.Response:
        if self.refuse_all or request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid:
            return web.json_response({"reason": "token expired"}, status=401)
        return listing(request, self.rows)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self.token)
        app.router.add_get("/veterans/cards", self.cards)
        app.router.add_get("/health", health)
        return app


OAUTH = {
    "kind": "oauth2_client_credentials",
    "token_path": "/oauth/token",
    "client_id": "onewindow",
    "client_secret": "demo-secret",
}


@pytest.fixture
async def token_server() -> AsyncIterator[tuple[TokenServer, str]]:
    server = TokenServer()
    runner, port = await serve(server.app())
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_oauth2_token_is_cached_and_fetched_once_under_concurrency(
    token_server: tuple[TokenServer, str], tmp_path: Path
) -> None:
    server, url = token_server
    server.token_delay = 0.1  # long enough for every caller to arrive while the first fetch is in flight
    async with ConnectorPool([spec_for(url, OAUTH)], data_dir=tmp_path) as pool:
        client = pool.client("veterans")
        await asyncio.gather(*(client.check_list() for _ in range(8)))
        await sync_department(pool, "veterans", InMemorySink())
    assert server.issued == ["t0"]


async def test_oauth2_refreshes_before_expiry(
    token_server: tuple[TokenServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = token_server
    server.expires_in = 0.5  # refresh after 0.4 s (80 %)
    clock = FakeClock()  # the token's age, moved by hand: a busy machine cannot age it early
    monkeypatch.setattr(auth_module, "time", SimpleNamespace(monotonic=clock, time=time.time))
    async with ConnectorPool([spec_for(url, OAUTH)], data_dir=tmp_path) as pool:
        client = pool.client("veterans")
        await client.check_list()
        clock.now += 0.3
        await client.check_list()
        assert server.issued == ["t0"]
        clock.now += 0.15  # past 80 % but not expired: refreshed proactively
        await client.check_list()
        assert server.issued == ["t0", "t1"]


async def test_oauth2_retries_once_after_a_401_with_a_fresh_token(
    token_server: tuple[TokenServer, str], tmp_path: Path
) -> None:
    server, url = token_server
    async with ConnectorPool([spec_for(url, OAUTH)], data_dir=tmp_path) as pool:
        client = pool.client("veterans")
        await client.check_list()
        server.valid.clear()  # the department forgot our token (restart, revocation)
        await client.check_list()
        assert server.issued == ["t0", "t1"]
    # A department that refuses every token: one retry, then AuthenticationFailed (no loop).
    server.refuse_all = True
    async with ConnectorPool([spec_for(url, OAUTH)], data_dir=tmp_path) as pool:
        before = len(server.issued)
        with pytest.raises(AuthenticationFailed):
            await pool.client("veterans").check_list()
        assert len(server.issued) - before == 2


async def test_oauth2_wrong_client_secret_is_authentication_failed(
    token_server: tuple[TokenServer, str], tmp_path: Path
) -> None:
    _, url = token_server
    spec = spec_for(url, {**OAUTH, "client_secret": "nope"})
    async with ConnectorPool([spec], data_dir=tmp_path) as pool:
        result = await probe(pool, "veterans")
    assert result.health and not result.list and result.error_kind == "authentication_failed"
    assert result.error is not None and "token endpoint refused" in result.error and "nope" not in result.error


# --- mutual TLS ---------------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
async def mtls_server(tmp_path: Path) -> AsyncIterator[str]:
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _issue("test CA", ca_key, None, ca=True)
    server_cert = _issue("127.0.0.1", server_key, (ca.subject, ca_key), server=True)
    client_cert = _issue("onewindow", client_key, (ca.subject, ca_key))
    pki = tmp_path / "simulators" / "pki"
    pki.mkdir(parents=True)
    (pki / "ca.pem").write_bytes(_pem(ca))
    (pki / "client.pem").write_bytes(_pem(client_cert))
    (pki / "client-key.pem").write_bytes(_pem(client_key))
    (tmp_path / "server.pem").write_bytes(_pem(server_cert) + _pem(server_key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(tmp_path / "server.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    rows = [veterans_record(n) for n in range(3)]
    app = web.Application()

    async def cards(request: web.Request) -> web.Response:
        return listing(request, rows)

    app.router.add_get("/veterans/cards", cards)
    app.router.add_get("/health", health)
    runner, port = await serve(app, context)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


MTLS = {
    "kind": "mutual_tls",
    "ca_file": "simulators/pki/ca.pem",
    "cert_file": "simulators/pki/client.pem",
    "key_file": "simulators/pki/client-key.pem",
}


async def test_mutual_tls_with_client_certificate(mtls_server: str, tmp_path: Path, trust: TrustStore) -> None:
    async with ConnectorPool([spec_for(mtls_server, MTLS)], data_dir=tmp_path, trust=trust) as pool:
        report = await sync_department(pool, "veterans", InMemorySink())
        assert report.errors == [] and report.stored == 3
        assert (await probe(pool, "veterans")).ok


async def test_mutual_tls_without_client_certificate_is_refused(mtls_server: str, tmp_path: Path) -> None:
    # Same CA trusted, but no client certificate presented: the server ends the handshake.
    spec = spec_for(mtls_server, {"kind": "none"}, retry={"attempts": 1})
    async with ConnectorPool([spec], data_dir=tmp_path) as pool:
        with pytest.raises((ConnectionFailed, ConfigurationError)):
            await pool.client("veterans").check_list()


async def test_mutual_tls_missing_files_are_a_configuration_error(mtls_server: str, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    async with ConnectorPool([spec_for(mtls_server, MTLS)], data_dir=empty) as pool:
        result = await probe(pool, "veterans")
    assert not result.ok and result.error_kind == "configuration_error"
    assert result.error is not None and "auth.ca_file" in result.error
