"""`onewindow catalog check` / `export`, and `serve` refusing a broken catalog."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings import REPO_ROOT
from tests.catalog.test_loader import COMMUNITY_ITEM, STREET_ITEM, write_config


def test_check_real_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "check"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("catalog ok: 104 items (59 street, 45 community)")
    assert "473 grids" in out


def test_check_broken_dir_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_config(
        tmp_path,
        {
            "street/a.toml": STREET_ITEM.replace("promised_days = 20", "promised_days = 40").replace(
                "visits = 1", "visits = 9"
            )
        },
        counts="street = 1",
    )
    assert main(["catalog", "check", str(root)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "catalog/street/a.toml:0205001100:promised_days: promised 40 working days exceeds legal 30",
        "catalog/street/a.toml:0205001100:visits: must be 0, 1 or 2, got 9",
    ]
    assert "2 problems" in captured.err


def test_check_exit_code_in_a_real_process(tmp_path: Path) -> None:
    root = write_config(
        tmp_path, {"street/a.toml": STREET_ITEM.replace('department = "civil_affairs"', 'department = "x"')}
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "catalog", "check", str(root / "catalog")],  # the catalog dir works too
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "catalog/street/a.toml:0205001100:department: unknown department 'x'" in lines
    assert "catalog:-:level: expected 1 community items, found 0" in lines


def test_export_json_has_104_items_with_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "export", "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == 104
    assert sum(1 for i in items if i["level"] == "street") == 59
    assert sum(1 for i in items if i["level"] == "community") == 45
    for item in items:
        assert item["status"] in {"published", "concept"}
        for m in item["materials"]:
            assert (m["source"] == "certificate") == (m["certificate_type"] is not None)


def test_export_csv_flattens_materials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_config(tmp_path, {"street/a.toml": STREET_ITEM, "community/a.toml": COMMUNITY_ITEM})
    assert main(["catalog", "export", "--format", "csv", "--dir", str(root)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["code"] for r in rows] == ["0205001100", "0205001201"]
    assert rows[0]["materials"] == (
        "resident_id_card:居民身份证:required:certificate:resident_id_card; application_form:申请书:required:applicant"
    )
    assert rows[0]["certificate_types"] == "resident_id_card"
    assert rows[0]["online"] == "true" and rows[1]["status"] == "concept" and rows[1]["on_behalf_of"] == "0205001100"


def test_export_refuses_a_broken_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_config(tmp_path, {"street/a.toml": "items = 3\n"})
    assert main(["catalog", "export", "--dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert "catalog/street/a.toml:-:items: must be an array of tables ([[items]])" in err


def test_serve_refuses_to_start_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_config(tmp_path / "config", {"street/a.toml": STREET_ITEM.replace("fee = 0", "fee = -5")})
    settings_file = tmp_path / "onewindow.toml"
    settings_file.write_text(f'[gateway]\nconfig_dir = "{root}"\ndata_dir = "{tmp_path / "var"}"\n', encoding="utf-8")
    assert main(["serve", "--config", str(settings_file)]) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err
    assert "catalog/street/a.toml:0205001100:fee: must be 0 (free) or a positive amount in yuan" in err
    assert "catalog:-:level: expected 1 community items, found 0" in err
