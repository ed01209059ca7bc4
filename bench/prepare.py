"""Data the benchmarks need, made the way the product makes it: the demo's start-up steps, then the HTTP API.

`prepare_data_dir` gives a data dir with synced certificates, a token per role and one accepted application (its
tracking number and query code) — or ``cases`` of them — created through the gateway's own
``POST /api/v1/applications``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from catalog.loader import cached_catalog
from demokit.demo.steps import (
    Scenario,
    choose_scenario,
    create_demo_tokens,
    demo_settings,
    prepare_database,
    start_simulators,
    sync_certificates,
)
from gateway.app import create_app
from gateway.settings import Settings, load_settings

PHONE = "13800000000"


class Prepared(msgspec.Struct, kw_only=True):
    data_dir: str
    tokens: dict[str, str]
    item_code: str
    tracking_number: str
    query_code: str
    #: (tracking number, query code) of every application filed, the first one's first.
    cases: list[tuple[str, str]] = []


def bench_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Embedded defaults in ``data_dir``, whatever ONEWINDOW_* the caller's shell has."""
    return load_settings(environ={}, data_dir=data_dir, **overrides)


def server_env(data_dir: Path) -> dict[str, str]:
    """The environment a served gateway needs to find this data dir (and nothing else of the caller's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    env["ONEWINDOW_DATA_DIR"] = str(data_dir)
    return env


async def prepare_data_dir(data_dir: Path, *, cases: int = 1, **overrides: Any) -> Prepared:
    """Simulators up, certificates synced, tokens made, one application (or ``cases``) filed and accepted;
    simulators down.

    ``overrides`` are settings such as ``database_url`` (the benchmark's database instead of embedded SQLite)."""
    settings = bench_settings(data_dir, **overrides)
    async with start_simulators(settings.host, 0, settings.data_dir) as sims:
        settings = demo_settings(settings, sims)
        db = await prepare_database(settings)
        try:
            await sync_certificates(settings, db)
            scenario: Scenario = choose_scenario(cached_catalog(settings.config_dir), sims.demo_citizens(6))
            tokens = await create_demo_tokens(db, scenario)
        finally:
            await db.dispose()
        if not scenario.item.accept_without_uploads:
            raise RuntimeError(f"item {scenario.item.code} needs uploads; pick one that certificates complete")
        filed: list[dict[str, Any]] = []
        async with AsyncTestClient(app=create_app(settings), timeout=30.0) as client:
            citizen = scenario.citizens[0]
            for _ in range(max(1, cases)):
                response = await client.post(
                    "/api/v1/applications",
                    headers={"Authorization": f"Bearer {tokens['clerk']}"},
                    json={
                        "item_code": scenario.item.code,
                        "applicant": {"id_number": citizen.id_number, "name": citizen.name, "phone": PHONE},
                        "consent": True,
                        "accept": True,
                    },
                )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"filing the benchmark's application failed: {response.status_code} {response.text}"
                    )
                filed.append(response.json())
        body = filed[0]
    return Prepared(
        data_dir=str(data_dir),
        tokens=tokens,
        item_code=scenario.item.code,
        tracking_number=body["tracking_number"],
        query_code=body["query_code"],
        cases=[(b["tracking_number"], b["query_code"]) for b in filed],
    )
