"""The prefill rate on the demo population, before and after trust levels, reuse, commitments and result
certificates (issue 8).

    .venv/bin/python -m bench.prefill_rate [--citizens 12] [--json FILE]

What it does, twice — each time with fresh simulators (the default seed and population) and a fresh data dir:

- the demo population: ``Simulators.demo_citizens(k)`` (the citizens ``onewindow demo`` lists, and more of the same
  kind), each going through the same journey at two street windows:
  1. 最低生活保障 at 雨湖路街道, approved by the civil-affairs officer;
  2. 临时救助 at 昭潭街道 (another window);
  3. 困难残疾人生活补贴 at 雨湖路街道 — only for citizens holding a 残疾人证.
- **before**: the catalog as it was before issue 8 (the new material and item keys — ``min_level``, ``commitment``,
  ``reusable``, ``result_certificate``, ``commitment_check_days`` — stripped from a copy of ``config/``): the window
  uploads every required material no certificate supplied, as it always did.
- **after**: the shipped catalog; the window's practice changes with it: a material the catalog allows a commitment
  for is replaced by the commitment, every other missing one is uploaded and — when reusable — verified against the
  original; approval issues the district's certificate.

Then `gateway.evidence.rates.prefill_rates` over the day (the same function the API answers with). Nothing here
runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.harness import machine
from bench.prepare import PHONE, bench_settings
from catalog.calendar import local_date
from catalog.loader import load_catalog
from demokit.simulators import Citizen, run_simulators
from demokit.simulators.runner import PKI_SUBDIR
from gateway.app import create_app
from gateway.context import context_of
from gateway.evidence.rates import prefill_rates
from gateway.identity import create_token
from gateway.settings import DEFAULT_CONFIG_DIR
from gateway.storage.metadata import utcnow

WINDOW = "430302001000"  # 雨湖路街道
OTHER_WINDOW = "430302007000"  # 昭潭街道
JOURNEY: tuple[tuple[str, str], ...] = (
    ("0205001100", "clerk"),  # 最低生活保障 (approved: its result is a certificate)
    ("0205003100", "other_clerk"),  # 临时救助
    ("0205005100", "clerk"),  # 困难残疾人生活补贴 (holders of a 残疾人证 only)
)
APPROVE = {"0205001100"}
NEEDS_DISABILITY = {"0205005100"}
_NEW_KEYS = re.compile(r"(?m)^(min_level|commitment|reusable|result_certificate|commitment_check_days) = .*\n")
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def catalog_before(target: Path) -> Path:
    """``config/`` with the catalog keys issue 8 added removed: the catalog as the gateway knew it before."""
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    for path in (target / "catalog").rglob("*.toml"):
        path.write_text(_NEW_KEYS.sub("", path.read_text(encoding="utf-8")), encoding="utf-8")
    load_catalog(target)  # still valid
    return target


@contextlib.asynccontextmanager
async def client_for(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=30) as client:
            yield client


class Run(msgspec.Struct, kw_only=True):
    mode: str
    applications: int
    accepted: int
    refused: list[str]
    totals: dict[str, Any]
    rows: list[dict[str, Any]]


async def run(mode: str, k: int, work: Path) -> Run:
    config_dir = catalog_before(work / "config") if mode == "before" else DEFAULT_CONFIG_DIR
    async with run_simulators(citizens=2000, data_dir=work / "sims") as sims:
        data_dir = work / "var"
        data_dir.mkdir(parents=True)
        shutil.copytree(sims.pki_dir, data_dir / PKI_SUBDIR)
        settings = bench_settings(
            data_dir, config_dir=config_dir, simulator_base_host=sims.control_url, lookup_budget_seconds=5.0
        )
        app = create_app(settings)
        async with client_for(app) as client:
            db = context_of(app).database
            tokens = {
                "clerk": (await create_token(db, role="clerk", unit=WINDOW))[0],
                "other_clerk": (await create_token(db, role="clerk", unit=OTHER_WINDOW))[0],
                "officer": (await create_token(db, role="officer", department="civil_affairs"))[0],
            }
            catalog = context_of(app).catalog
            applications = accepted = 0
            refused: list[str] = []
            for citizen in sims.demo_citizens(k):
                for item_code, who in JOURNEY:
                    if item_code in NEEDS_DISABILITY and "disability_certificate" not in citizen.certificate_types:
                        continue
                    applications += 1
                    ok = await journey_step(client, tokens, who, citizen, item_code, catalog, after=mode == "after")
                    if ok:
                        accepted += 1
                    else:
                        refused.append(item_code)
            async with db.read() as conn:
                today = local_date(utcnow())
                report = await prefill_rates(conn, start=today, end=today, group="item")
    return Run(
        mode=mode,
        applications=applications,
        accepted=accepted,
        refused=refused,
        totals=msgspec.to_builtins(report.totals),
        rows=msgspec.to_builtins(report.rows),
    )


async def journey_step(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    who: str,
    citizen: Citizen,
    item_code: str,
    catalog: Any,
    *,
    after: bool,
) -> bool:
    auth = {"Authorization": f"Bearer {tokens[who]}"}
    body = {
        "item_code": item_code,
        "applicant": {"id_number": citizen.id_number, "name": citizen.name, "phone": PHONE},
        "consent": True,
    }
    created = await client.post("/api/v1/applications", json=body, headers=auth)
    if created.status_code != 201:
        raise RuntimeError(f"filing {item_code} failed: {created.status_code} {created.text}")
    application_id = created.json()["id"]
    item = catalog.item(item_code)
    base = f"/api/v1/applications/{application_id}/materials"
    for material in created.json()["materials"]:
        if not material["required"] or material["state"] in ("prefilled", "provided"):
            continue
        spec = item.material(material["key"])
        if after and spec.commitment:
            answer = await client.post(f"{base}/{spec.key}/commitment", json={"agreed": True}, headers=auth)
            assert answer.status_code == 200, answer.text
            continue
        files = {"file": ("scan.pdf", PDF, "application/pdf")}
        answer = await client.post(f"{base}/{spec.key}", files=files, headers=auth)
        assert answer.status_code == 200, answer.text
        if after and (spec.reusable or spec.min_level in ("A", "B")):
            answer = await client.post(f"{base}/{spec.key}/verification", json={"original_seen": True}, headers=auth)
            assert answer.status_code == 200, answer.text
    accepted = await client.post(f"/api/v1/applications/{application_id}/accept", headers=auth)
    if accepted.status_code != 200:
        return False
    if item_code in APPROVE:
        officer = {"Authorization": f"Bearer {tokens['officer']}"}
        url = f"/api/v1/applications/{application_id}/transitions"
        for move in ({"to": "in_review"}, {"to": "approved", "result": "准予"}):
            answer = await client.post(url, json=move, headers=officer)
            assert answer.status_code == 200, answer.text
    return True


async def main_async(k: int) -> dict[str, Any]:
    runs = []
    for mode in ("before", "after"):
        with tempfile.TemporaryDirectory(prefix=f"prefill-{mode}-") as tmp:
            runs.append(await run(mode, k, Path(tmp)))
    return {"machine": machine(), "citizens": k, "runs": msgspec.to_builtins(runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=12)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.citizens))
    for r in result["runs"]:
        t = r["totals"]
        print(
            f"{r['mode']:>6}: {r['applications']} applications, {r['accepted']} accepted; required satisfied: "
            f"A {t['certificate']}, B reused {t['verified']}, D {t['commitment']}, C {t['uploaded']}, "
            f"B verified here {t['verified_here']} → rate {t['rate']}"
        )
        for row in r["rows"]:
            print(f"        {row['key']} {row['name']}: {row['rate']} ({row['applications']} applications)")
    print(f"machine: {result['machine']}")
    if args.json:
        args.json.write_text(msgspec.json.encode(result).decode(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
