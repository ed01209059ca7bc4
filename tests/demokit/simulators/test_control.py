"""Test control under /__sim__/: citizens, touch (incremental sync), revoke, stats; the Python API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.trust import TrustStore
from demokit.simulators import Simulators, run_simulators
from tests.demokit.simulators import wire
from tests.demokit.simulators.conftest import AS_OF, CITIZENS, SEED

PS_KEY = {"X-Api-Key": "demo-public-security-key"}


async def test_citizens_document(sims: Simulators, http: aiohttp.ClientSession) -> None:
    async with http.get(sims.url("veterans") + "/__sim__/citizens") as r:
        body = await r.json()
    assert body["seed"] == SEED and body["as_of"] == AS_OF.isoformat()
    assert len(body["citizens"]) == CITIZENS
    first = body["citizens"][0]
    assert first["id_number"] == sims.citizens[0].id_number
    assert {c["identifier"] for c in first["certificates"]} == {c.identifier for c in sims.citizens[0].certificates}
    assert "signature" not in first["certificates"][0]


async def test_touch_feeds_incremental_sync(sims: Simulators, http: aiohttp.ClientSession) -> None:
    url = sims.url("public_security") + "/api/v2/licenses"
    async with http.get(url, params={"limit": "500"}, headers=PS_KEY) as r:
        everything = (await r.json())["data"]
    high_water = max(dt.datetime.fromisoformat(x["updatedAt"]) for x in everything)
    async with http.post(sims.url("public_security") + "/__sim__/touch", params={"count": "3"}) as r:
        touched = [t["identifier"] for t in (await r.json())["touched"]]
    assert touched == [x["licenseId"] for x in everything[:3]]  # the least recently changed
    async with http.get(url, params={"updatedSince": high_water.isoformat()}, headers=PS_KEY) as r:
        changed = (await r.json())["data"]
    assert [x["licenseId"] for x in changed] == touched
    # a second touch in the same second is still strictly later than the first
    new_mark = dt.datetime.fromisoformat(changed[-1]["updatedAt"])
    async with http.post(
        sims.url("public_security") + "/__sim__/touch", params={"identifier": everything[10]["licenseId"]}
    ) as r:
        assert len((await r.json())["touched"]) == 1
    async with http.get(url, params={"updatedSince": new_mark.isoformat()}, headers=PS_KEY) as r:
        assert [x["licenseId"] for x in (await r.json())["data"]] == [everything[10]["licenseId"]]


async def test_revoke_resigns_with_status_03(
    sims: Simulators, http: aiohttp.ClientSession, trust_store: TrustStore
) -> None:
    target = sims.store("veterans").entries[0].certificate
    async with http.post(sims.url("veterans") + "/__sim__/revoke", params={"identifier": target.identifier}) as r:
        assert r.status == 200 and (await r.json())["status"] == "03"
    async with http.get(sims.url("veterans") + "/veterans/cards", params={"idNumber": target.holder_code}) as r:
        record: dict[str, Any] = next(c for c in (await r.json())["list"] if c["cardId"] == target.identifier)
    certificate = wire.from_veterans(record)
    assert certificate.status == "03"
    assert trust_store.verify(certificate, today=AS_OF, department="veterans").status == "revoked"
    async with http.post(sims.url("veterans") + "/__sim__/revoke", params={"identifier": "nope"}) as r:
        assert r.status == 404


async def test_stats_count_requests_by_route(sims: Simulators, http: aiohttp.ClientSession) -> None:
    holder = sims.store("veterans").entries[0].certificate.holder_code
    for _ in range(2):
        async with http.get(sims.url("veterans") + "/veterans/cards"):
            pass
    async with http.get(sims.url("veterans") + "/veterans/cards", params={"take": "0"}):
        pass
    async with http.get(sims.url("veterans") + "/veterans/cards", params={"idNumber": holder}):
        pass
    async with http.get(sims.url("veterans") + "/__sim__/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 4
    assert stats["by_path"] == {"GET /veterans/cards": {"200": 3, "400": 1}}
    assert holder not in str(stats)  # routes, never ID numbers


async def test_request_id_is_echoed(sims: Simulators, http: aiohttp.ClientSession) -> None:
    async with http.get(sims.url("veterans") + "/veterans/cards", headers={"X-Request-Id": "req-42"}) as r:
        assert r.headers["X-Request-Id"] == "req-42"


async def test_python_api(sims: Simulators) -> None:
    assert set(sims.urls) == {
        "public_security", "civil_affairs", "human_resources", "disabled_persons", "health", "veterans",
        "natural_resources",
    }  # fmt: skip
    assert sum(sims.certificate_counts().values()) == sum(len(c.certificates) for c in sims.citizens)
    assert sims.pki_dir.name == "pki" and sims.pki_dir.parent.name == "simulators"
    assert len(sims.demo_citizens(5)) == 5
    with pytest.raises(KeyError):
        sims.url("planet")
    with pytest.raises(KeyError):
        sims.set_faults("planet", "hang")


async def test_ports_are_base_plus_offset(tmp_path: Path) -> None:
    # find a free run of 8 ports (control + seven departments), then ask for it explicitly
    import socket

    for base in range(39100, 40000, 8):
        sockets = []
        try:
            for port in range(base, base + 8):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        if len(sockets) == 8:
            break
    async with run_simulators(base_port=base, citizens=10, data_dir=tmp_path, as_of=AS_OF) as sims:
        assert sims.control_url == f"http://127.0.0.1:{base}"
        assert sims.url("public_security") == f"http://127.0.0.1:{base + 1}"
        assert sims.url("health") == f"https://127.0.0.1:{base + 5}"
        assert sims.url("veterans") == f"http://127.0.0.1:{base + 6}"
        assert sims.url("natural_resources") == f"http://127.0.0.1:{base + 7}"
