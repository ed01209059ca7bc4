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
        assert set(entry) >= {"code", "fetched", "stored", "rejected", "errors"}  # the fixed fields, and more
        assert (entry["quarantined"], entry["degraded"]) == (0, False)
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


async def test_quarantine_degraded_and_rejections_on_the_command_line(
    db_settings: Settings, sims: Simulators, tmp_path: Path
) -> None:
    entries = sims.store("natural_resources").entries
    bad = entries[0].certificate.identifier
    await corrupt(sims, "natural_resources", {"identifier": bad, "fields": {"fzrq": "2024年2月30日"}})
    await corrupt(sims, "natural_resources", {"identifier": entries[1].certificate.identifier, "record": "x"})
    url = sims.control_url
    code, out, err = await onewindow(
        db_settings, "connectors", "sync", "natural_resources", "--json", "--simulators-url", url
    )
    assert code == 0, err  # degraded is reported, not a failure of the sync
    (entry,) = last_json(out)["departments"]
    assert entry["quarantined"] == 2 and entry["stored"] == entry["fetched"] == len(entries) - 2
    assert entry["degraded"] is True and entry["rejected_share"] == round(2 / len(entries), 4)

    code, out, err = await onewindow(db_settings, "connectors", "rejections", "natural_resources", "--json")
    assert code == 0, err
    listed = last_json(out)
    assert listed["departments"]["natural_resources"]["degraded"] is True
    rows = {r["field"]: r for r in listed["rejections"]}
    assert set(rows) == {"issue_date", "(record)"}
    assert rows["issue_date"]["source"] == "fzrq" and rows["issue_date"]["identifier"] == bad
    assert rows["issue_date"]["value_kind"] == "text(10)" and rows["issue_date"]["rule"].startswith("date[")
    assert "2024年2月30日" not in out
    code, out, _ = await onewindow(db_settings, "connectors", "rejections")
    assert code == 0 and "issue_date" in out and "fzrq" in out and "2024年2月30日" not in out

    code, out, err = await onewindow(db_settings, "connectors", "check", "--json", "--simulators-url", url)
    report = {d["code"]: d for d in last_json(out)["departments"]}
    nr = report["natural_resources"]
    assert nr["degraded"] is True and nr["last_sync"]["quarantined"] == 2
    assert report["veterans"]["degraded"] is False and report["veterans"]["last_sync"] is None
    # the first record is the corrupted one: check says why it was rejected instead of a sample
    assert nr["sample"] is None and nr["sample_rejection"]["field"] == "issue_date"
    sample = report["public_security"]["sample"]
    holder = sims.store("public_security").entries[0].certificate
    assert sample["identifier"] == holder.identifier and sample["type_key"] == holder.type_key
    assert holder.holder_code not in out and holder.holder_name not in out  # masked
    assert sample["holder_code"].startswith(holder.holder_code[:6]) and "*" in sample["holder_code"]
    code, out, _ = await onewindow(db_settings, "connectors", "check", "--simulators-url", url)
    assert "degraded" in out and "sample record" in out and holder.holder_code not in out


async def test_malformed_value_rules_make_check_and_serve_refuse(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    department = config / "departments" / "natural_resources.toml"
    text = department.read_text(encoding="utf-8").replace('formats = ["epoch_ms"]', 'formats = ["epoch_millis"]')
    department.write_text(text, encoding="utf-8")
    code, _, err = await onewindow(settings, "connectors", "check", ONEWINDOW_CONFIG_DIR=str(config))
    assert code == 1
    line = f"{department}: mapping.rules.updated_at.formats[0]: unknown format 'epoch_millis'; use one of"
    assert line in err
    code, _, err = await onewindow(settings, "serve", "--port", "0", ONEWINDOW_CONFIG_DIR=str(config))
    assert code == 1 and line in err


async def corrupt(sims: Simulators, code: str, body: dict[str, Any]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(sims.url(code) + "/__sim__/corrupt", json=body) as response:
        assert response.status == 200, await response.text()
