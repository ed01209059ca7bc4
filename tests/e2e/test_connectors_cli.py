"""`onewindow connectors sync|check` as a subprocess against running department simulators."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from demokit.simulators import Simulators, run_simulators
from gateway.settings import DEFAULT_CONFIG_DIR, Settings

pytestmark = pytest.mark.slow  # every test here runs the command line in other processes

ONEWINDOW = [sys.executable, "-m", "gateway.cli"]


@pytest.fixture
async def sims(db_settings: Settings) -> AsyncIterator[Simulators]:
    async with run_simulators(seed=11, citizens=150, data_dir=db_settings.data_dir) as running:
        yield running


@pytest.fixture
async def embedded_sims(settings: Settings) -> AsyncIterator[Simulators]:
    """Simulators for tests that need no second database kind (embedded SQLite in ``settings.data_dir``)."""
    async with run_simulators(seed=11, citizens=60, data_dir=settings.data_dir) as running:
        yield running


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    if settings.database_url:
        env["ONEWINDOW_DATABASE_URL"] = settings.database_url
    if settings.database_schema:
        env["ONEWINDOW_DATABASE_SCHEMA"] = settings.database_schema
    return env | extra


async def onewindow(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *ONEWINDOW,
        *args,
        "--data-dir",
        str(settings.data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(settings, **env),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def last_json(stdout: str) -> Any:
    return json.loads(stdout.strip().splitlines()[-1])


async def test_sync_json_then_incremental(db_settings: Settings, sims: Simulators) -> None:
    code, out, err = await onewindow(db_settings, "connectors", "sync", "--json", "--simulators-url", sims.control_url)
    assert code == 0, err
    summary = last_json(out)
    assert set(summary) == {"departments", "stored"}
    held = sims.certificate_counts()
    assert [d["code"] for d in summary["departments"]] == sorted(held)
    for entry in summary["departments"]:
        assert set(entry) == {"code", "fetched", "stored", "rejected", "errors"}
        assert entry["fetched"] == held[entry["code"]]
        assert entry["stored"] + entry["rejected"] == entry["fetched"]
        assert entry["errors"] == []
    assert summary["stored"] == sum(d["stored"] for d in summary["departments"]) > 0
    assert "\x1b[" not in out  # no progress bar or colour in machine output

    code, out, err = await onewindow(db_settings, "connectors", "sync", "--json", "--simulators-url", sims.control_url)
    assert code == 0, err
    again = last_json(out)
    assert again["stored"] == 0 and all(d["fetched"] == 0 for d in again["departments"])


async def test_failed_department_exits_1(settings: Settings, embedded_sims: Simulators) -> None:
    sims = embedded_sims
    sims.set_faults("veterans", "error_rate=1")
    code, out, _ = await onewindow(
        settings, "connectors", "sync", "veterans", "public_security", "--json", "--simulators-url", sims.control_url
    )
    assert code == 1
    by_code = {d["code"]: d for d in last_json(out)["departments"]}
    assert by_code["veterans"]["errors"] and "503" in by_code["veterans"]["errors"][0]
    assert by_code["public_security"]["errors"] == [] and by_code["public_security"]["stored"] > 0

    code, out, _ = await onewindow(settings, "connectors", "check", "--json", "--simulators-url", sims.control_url)
    assert code == 1
    report = {d["code"]: d for d in last_json(out)["departments"]}
    assert not report["veterans"]["ok"] and report["public_security"]["ok"] and report["health"]["ok"]


async def test_check_names_the_invalid_file_and_field(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    department = config / "departments" / "civil_affairs.toml"
    department.write_text(department.read_text(encoding="utf-8").replace("page_size = 500", 'page_size = "all"'))
    code, _, err = await onewindow(settings, "connectors", "check", ONEWINDOW_CONFIG_DIR=str(config))
    assert code == 1
    assert f"{department}: paging.page_size:" in err
