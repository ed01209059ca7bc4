"""Each department system over real sockets, spoken to with hand-written requests (docs/simulators.md)."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from types import SimpleNamespace
from typing import Any
from xml.etree.ElementTree import Element

import aiohttp
import defusedxml.ElementTree as SafeXML
import pytest
from yarl import URL

from connectors.model import Certificate
from connectors.trust import TrustStore
from demokit.simulators import Simulators, human_resources
from tests.connectors.helpers import FakeClock
from tests.demokit.simulators import wire
from tests.demokit.simulators.conftest import AS_OF

PS_KEY = {"X-Api-Key": "demo-public-security-key"}
DP_KEY = {"AppKey": "demo-disabled-persons-key"}


def holder_with(sims: Simulators, department: str) -> str:
    """A citizen holding at least one certificate of ``department``."""
    return sims.store(department).entries[0].certificate.holder_code


def expected_identifiers(sims: Simulators, department: str, since: dt.datetime | None = None) -> list[str]:
    entries = sims.store(department).entries
    return [e.certificate.identifier for e in entries if since is None or e.updated_at > since]


def assert_verifies(certificates: list[Certificate], trust: TrustStore, department: str) -> None:
    assert certificates
    for certificate in certificates:
        result = trust.verify(certificate, today=AS_OF, department=department)
        assert result.status in {"valid", "expired", "revoked"}, (certificate.identifier, result)


async def test_every_department_answers_health(sims: Simulators, http: aiohttp.ClientSession) -> None:
    for code in ("public_security", "civil_affairs", "human_resources", "disabled_persons", "health", "veterans"):
        extra: dict[str, Any] = {"ssl": sims.client_ssl_context()} if code == "health" else {}
        async with http.get(sims.url(code) + "/health", **extra) as response:
            assert response.status == 200
            assert (await response.json())["department"] == code
    assert sims.url("health").startswith("https://127.0.0.1:")
    async with http.get(sims.control_url + "/") as response:
        index = await response.json()
    assert index["departments"][0]["code"] == "public_security"
    assert {d["url"] for d in index["departments"]} == set(sims.urls.values())


# --- public security: API key, cursor --------------------------------------------------------------------------


async def test_public_security_requires_the_api_key(sims: Simulators, http: aiohttp.ClientSession) -> None:
    url = sims.url("public_security") + "/api/v2/licenses"
    for headers in ({}, {"X-Api-Key": "wrong"}):
        async with http.get(url, headers=headers) as response:
            assert response.status == 401
            assert response.content_type == "application/problem+json"
            assert (await response.json())["status"] == 401


async def test_public_security_cursor_pages_cover_everything_once(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "37"} | ({"cursor": cursor} if cursor else {})
        async with http.get(sims.url("public_security") + "/api/v2/licenses", params=params, headers=PS_KEY) as r:
            assert r.status == 200
            body = await r.json()
        pages += 1
        assert len(body["data"]) <= 37
        seen.extend(body["data"])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == -(-len(sims.store("public_security")) // 37)
    identifiers = [r["licenseId"] for r in seen]
    assert identifiers == expected_identifiers(sims, "public_security")
    keys = [(dt.datetime.fromisoformat(r["updatedAt"]), r["licenseId"]) for r in seen]
    assert keys == sorted(keys)
    assert {r["licenseTypeCode"][-3:] for r in seen} <= {"001", "002", "003"}
    assert_verifies([wire.from_public_security(r) for r in seen], trust_store, "public_security")


async def test_public_security_updated_since_is_strictly_greater(sims: Simulators, http: aiohttp.ClientSession) -> None:
    entries = sims.store("public_security").entries
    pivot = entries[len(entries) // 2].updated_at
    params = {"updatedSince": pivot.isoformat(), "limit": "500"}
    async with http.get(sims.url("public_security") + "/api/v2/licenses", params=params, headers=PS_KEY) as r:
        body = await r.json()
    returned = [r["licenseId"] for r in body["data"]]
    assert returned == expected_identifiers(sims, "public_security", pivot)[:500]
    assert all(dt.datetime.fromisoformat(r["updatedAt"]) > pivot for r in body["data"])
    # the same instant in UTC means the same thing
    params["updatedSince"] = pivot.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    async with http.get(sims.url("public_security") + "/api/v2/licenses", params=params, headers=PS_KEY) as r:
        assert [x["licenseId"] for x in (await r.json())["data"]] == returned


async def test_public_security_holder_lookup_and_type_filter(sims: Simulators, http: aiohttp.ClientSession) -> None:
    holder = next(c for c in sims.citizens if "resident_id_card" in c.certificate_types)
    url = sims.url("public_security") + "/api/v2/licenses"
    async with http.get(url, params={"holderIdNo": holder.id_number}, headers=PS_KEY) as r:
        body = await r.json()
    assert body["nextCursor"] is None
    mine = {c.identifier for c in holder.certificates if c.type_key in {"resident_id_card", "household_register"}}
    assert {r["licenseId"] for r in body["data"]} >= mine
    assert {r["holderIdNo"] for r in body["data"]} == {holder.id_number}
    params = {"holderIdNo": holder.id_number, "types": "1110000034147425UL001"}
    async with http.get(url, params=params, headers=PS_KEY) as r:
        only_cards = (await r.json())["data"]
    assert [r["licenseTypeCode"] for r in only_cards] == ["1110000034147425UL001"]
    async with http.get(url, params={"holderIdNo": "430302199001011234"}, headers=PS_KEY) as r:
        assert r.status == 400  # wrong check digit: named, not echoed
        assert "holderIdNo" in (await r.json())["detail"]


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"updatedSince": "yesterday"}],
)
async def test_public_security_bad_parameters_are_400(
    sims: Simulators, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    async with http.get(sims.url("public_security") + "/api/v2/licenses", params=params, headers=PS_KEY) as r:
        assert r.status == 400
        assert next(iter(params)) in (await r.json())["detail"]


# --- civil affairs: HMAC-signed requests, offset/limit ---------------------------------------------------------


async def test_civil_affairs_signed_paging(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        url = URL(sims.url("civil_affairs") + "/mca/certs").with_query({"offset": offset, "limit": 25})
        async with http.get(url, headers=wire.ca_headers(url)) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert body["code"] == 0
        rows.extend(body["rows"])
        offset += 25
        if offset >= body["total"]:
            break
    assert [r["zzbs"] for r in rows] == expected_identifiers(sims, "civil_affairs")
    assert_verifies([wire.from_civil_affairs(r) for r in rows], trust_store, "civil_affairs")


async def test_civil_affairs_modified_after_with_a_plus_sign_in_the_query(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    entries = sims.store("civil_affairs").entries
    pivot = entries[len(entries) // 3].updated_at
    url = URL(sims.url("civil_affairs") + "/mca/certs").with_query({"modified_after": pivot.isoformat(), "limit": 500})
    assert "%2B08:00" in url.raw_query_string or "%2B08%3A00" in url.raw_query_string
    async with http.get(url, headers=wire.ca_headers(url)) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert [r["zzbs"] for r in body["rows"]] == expected_identifiers(sims, "civil_affairs", pivot)
    assert body["total"] == len(body["rows"])


async def test_civil_affairs_holder_lookup(sims: Simulators, http: aiohttp.ClientSession) -> None:
    holder = next(c for c in sims.citizens if "marriage_certificate" in c.certificate_types)
    url = URL(sims.url("civil_affairs") + "/mca/certs/holder").with_query(
        {"sfzh": holder.id_number, "zzlx": "11100000942518256Y001,11100000942518256Y002"}
    )
    async with http.get(url, headers=wire.ca_headers(url)) as r:
        body = await r.json()
    expected = {
        c.identifier for c in holder.certificates if c.type_key in {"marriage_certificate", "divorce_certificate"}
    }
    assert {r["zzbs"] for r in body["rows"]} == expected


async def test_civil_affairs_rejects_bad_signatures_replays_and_stale_times(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    url = URL(sims.url("civil_affairs") + "/mca/certs").with_query({"offset": 0, "limit": 1})

    async def status(headers: dict[str, str], target: URL = url) -> tuple[int, dict[str, Any]]:
        async with http.get(target, headers=headers) as r:
            return r.status, await r.json()

    assert (await status({}))[0] == 401
    code, body = await status(wire.ca_headers(url, secret="not-the-secret"))
    assert code == 401 and body["code"] == 401 and "signature" in body["message"]
    signed = wire.ca_headers(url, nonce="nonce-once")
    assert (await status(signed))[0] == 200
    code, body = await status(signed)  # the very same request again
    assert code == 401 and "nonce" in body["message"]
    stale = wire.ca_headers(url, timestamp_ms=int(time.time() * 1000) - 301_000)
    code, body = await status(stale)
    assert code == 401 and "Timestamp" in body["message"]
    # signed for one query, sent with another: the query is part of what is signed
    other = url.with_query({"offset": 0, "limit": 2})
    assert (await status(wire.ca_headers(url), other))[0] == 401
    code, _ = await status(wire.ca_headers(url) | {"X-Ca-Key": "someone-else"})
    assert code == 401


async def test_civil_affairs_query_order_does_not_matter(sims: Simulators, http: aiohttp.ClientSession) -> None:
    url = URL(sims.url("civil_affairs") + "/mca/certs?limit=3&offset=1", encoded=True)
    async with http.get(url, headers=wire.ca_headers(url)) as r:
        assert r.status == 200
        assert len((await r.json())["rows"]) == 3


# --- human resources: OAuth2 client credentials, page number ---------------------------------------------------


async def hr_token(sims: Simulators, http: aiohttp.ClientSession) -> str:
    async with http.post(
        sims.url("human_resources") + "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": wire.basic_auth("onewindow", "demo-human-resources-secret")},
    ) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        body = await r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 2  # the fixture's short lifetime
    token: str = body["access_token"]
    return token


async def test_human_resources_token_endpoint_refuses_bad_clients(
    sims: Simulators, http: aiohttp.ClientSession
) -> None:
    url = sims.url("human_resources") + "/oauth/token"
    wrong = {"Authorization": wire.basic_auth("onewindow", "guess")}
    async with http.post(url, data={"grant_type": "client_credentials"}, headers=wrong) as r:
        assert r.status == 401
        assert (await r.json())["error"] == "invalid_client"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    right = {"Authorization": wire.basic_auth("onewindow", "demo-human-resources-secret")}
    async with http.post(url, data={"grant_type": "password"}, headers=right) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "unsupported_grant_type"
    form = {
        "grant_type": "client_credentials",
        "client_id": "onewindow",
        "client_secret": "demo-human-resources-secret",
    }
    async with http.post(url, data=form) as r:
        assert r.status == 200


async def test_human_resources_bearer_token_and_expiry(
    sims: Simulators, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator's clock, moved by hand: tokens age only when the test says so.
    clock = FakeClock()
    monkeypatch.setattr(human_resources, "time", SimpleNamespace(monotonic=clock))
    url = sims.url("human_resources") + "/hrss/v1/cards"
    async with http.get(url) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    token = await hr_token(sims, http)
    auth = {"Authorization": f"Bearer {token}"}
    async with http.get(url, headers=auth) as r:
        assert r.status == 200
    async with http.get(url, headers={"Authorization": "Bearer made-up"}) as r:
        assert r.status == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    clock.now += 1.9
    async with http.get(url, headers=auth) as r:
        assert r.status == 200  # not yet expired
    clock.now += 0.1
    async with http.get(url, headers=auth) as r:
        assert r.status == 401  # expired
    fresh = {"Authorization": f"Bearer {await hr_token(sims, http)}"}
    async with http.post(sims.url("human_resources") + "/__sim__/expire-tokens") as r:
        assert (await r.json())["expired"] >= 1
    async with http.get(url, headers=fresh) as r:
        assert r.status == 401
    async with http.get(sims.url("human_resources") + "/__sim__/stats") as r:
        assert (await r.json())["tokens_issued"] == 2


async def test_human_resources_pages_and_holder(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    auth = {"Authorization": f"Bearer {await hr_token(sims, http)}"}
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        params = {"page": str(page), "size": "16"}
        async with http.get(sims.url("human_resources") + "/hrss/v1/cards", params=params, headers=auth) as r:
            body = await r.json()
        assert body["page"] == page and body["size"] == 16
        items.extend(body["items"])
        if page >= body["total_pages"]:
            break
        page += 1
    assert [i["cert_id"] for i in items] == expected_identifiers(sims, "human_resources")
    assert_verifies([wire.from_human_resources(i) for i in items], trust_store, "human_resources")
    holder = holder_with(sims, "human_resources")
    async with http.get(sims.url("human_resources") + f"/hrss/v1/persons/{holder}/cards", headers=auth) as r:
        body = await r.json()
    assert body["items"] and {i["person_id"] for i in body["items"]} == {holder}


# --- disabled persons: legacy XML ------------------------------------------------------------------------------


async def test_disabled_persons_xml_pages(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    records: list[Element] = []
    page = 1
    while True:
        params = {"pageNo": str(page), "pageSize": "4"}
        async with http.get(
            sims.url("disabled_persons") + "/cdpf/services/CertQuery", params=params, headers=DP_KEY
        ) as r:
            assert r.status == 200
            assert r.content_type == "text/xml"
            raw = await r.read()
        assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        root = SafeXML.fromstring(raw)  # well-formed, no DTD
        assert root.tag == "Response" and root.findtext("ResultCode") == "0"
        assert root.findtext("PageNo") == str(page)
        records.extend(root.iterfind("Records/Record"))
        if page >= int(root.findtext("TotalPage") or "0"):
            break
        page += 1
    assert [r.findtext("ZZBS") for r in records] == expected_identifiers(sims, "disabled_persons")
    times = [r.findtext("GXSJ") or "" for r in records]
    assert all(len(t) == 14 and t.isdigit() for t in times) and times == sorted(times)
    assert_verifies([wire.from_disabled_persons(r) for r in records], trust_store, "disabled_persons")


async def test_disabled_persons_begin_time_holder_and_xml_errors(sims: Simulators, http: aiohttp.ClientSession) -> None:
    url = sims.url("disabled_persons") + "/cdpf/services/CertQuery"
    entries = sims.store("disabled_persons").entries
    pivot = entries[len(entries) // 2].updated_at
    params = {"beginTime": pivot.strftime("%Y%m%d%H%M%S"), "pageSize": "500"}
    async with http.get(url, params=params, headers=DP_KEY) as r:
        root = SafeXML.fromstring(await r.read())
    assert [x.findtext("ZZBS") for x in root.iterfind("Records/Record")] == expected_identifiers(
        sims, "disabled_persons", pivot
    )
    holder = holder_with(sims, "disabled_persons")
    async with http.get(url, params={"sfzh": holder}, headers=DP_KEY) as r:
        root = SafeXML.fromstring(await r.read())
    assert {x.findtext("CZZTDM") for x in root.iterfind("Records/Record")} == {holder}
    assert root.findtext("TotalPage") == "1"
    async with http.get(url) as r:
        assert r.status == 401
        error = SafeXML.fromstring(await r.read())
    assert error.findtext("ResultCode") == "401" and error.findtext("Message")
    async with http.get(url, params={"beginTime": "2025-06-30"}, headers=DP_KEY) as r:
        assert r.status == 400
        assert "beginTime" in (SafeXML.fromstring(await r.read()).findtext("Message") or "")


# --- health: mutual TLS ----------------------------------------------------------------------------------------


async def test_health_requires_a_client_certificate(sims: Simulators, http: aiohttp.ClientSession) -> None:
    assert {p.name for p in sims.pki_dir.iterdir()} >= {"ca.pem", "client.pem", "client-key.pem"}
    assert (sims.pki_dir / "client-key.pem").stat().st_mode & 0o077 == 0
    no_client_cert = ssl.create_default_context(cafile=str(sims.pki_dir / "ca.pem"))
    with pytest.raises(aiohttp.ClientError):
        async with http.get(sims.url("health") + "/nhc/api/certificates", ssl=no_client_cert) as r:
            await r.read()
    with pytest.raises(aiohttp.ClientError):  # and the server is not trusted without the simulator's CA
        async with http.get(sims.url("health") + "/health") as r:
            await r.read()
    context = ssl.create_default_context(cafile=str(sims.pki_dir / "ca.pem"))
    context.load_cert_chain(sims.pki_dir / "client.pem", sims.pki_dir / "client-key.pem")
    async with http.get(sims.url("health") + "/health", ssl=context) as r:
        assert r.status == 200


async def test_health_start_count_paging_and_holder(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    tls = sims.client_ssl_context()
    found: list[dict[str, Any]] = []
    start = 0
    while True:
        params = {"start": str(start), "count": "9"}
        async with http.get(sims.url("health") + "/nhc/api/certificates", params=params, ssl=tls) as r:
            body = await r.json()
        assert body["start"] == start and body["count"] == len(body["certificates"])
        found.extend(body["certificates"])
        start += 9
        if start >= body["total"]:
            break
    assert [c["identifier"] for c in found] == expected_identifiers(sims, "health")
    assert_verifies([wire.from_health(c) for c in found], trust_store, "health")
    holder = holder_with(sims, "health")
    async with http.get(sims.url("health") + "/nhc/api/certificates", params={"holderIdCard": holder}, ssl=tls) as r:
        body = await r.json()
    assert body["total"] == len(body["certificates"]) >= 1


# --- veterans: plain JSON, skip/take ---------------------------------------------------------------------------


async def test_veterans_skip_take_and_holder(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    cards: list[dict[str, Any]] = []
    skip = 0
    while True:
        async with http.get(sims.url("veterans") + "/veterans/cards", params={"skip": str(skip), "take": "2"}) as r:
            body = await r.json()
        cards.extend(body["list"])
        skip += 2
        if not body["hasMore"]:
            break
    assert [c["cardId"] for c in cards] == expected_identifiers(sims, "veterans")
    assert_verifies([wire.from_veterans(c) for c in cards], trust_store, "veterans")
    holder = holder_with(sims, "veterans")
    async with http.get(sims.url("veterans") + "/veterans/cards", params={"idNumber": holder}) as r:
        body = await r.json()
    assert body["hasMore"] is False and {c["idNumber"] for c in body["list"]} == {holder}


async def test_unknown_paths_answer_in_the_department_dialect(sims: Simulators, http: aiohttp.ClientSession) -> None:
    async with http.get(sims.url("veterans") + "/nope") as r:
        assert r.status == 404 and r.content_type == "application/problem+json"
    async with http.get(sims.url("disabled_persons") + "/nope") as r:
        assert r.status == 404 and SafeXML.fromstring(await r.read()).findtext("ResultCode") == "404"
    async with http.post(sims.url("veterans") + "/veterans/cards") as r:
        assert r.status == 405
