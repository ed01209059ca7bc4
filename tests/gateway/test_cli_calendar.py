"""`onewindow calendar deadline` and `onewindow calendar check` (docs/api.md#command-line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

REPO = Path(__file__).resolve().parents[2]
ONEWINDOW = Path(sys.executable).parent / "onewindow"


@pytest.fixture(autouse=True)
def _repo_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default config dir comes from settings; keep a developer's environment out of the test.
    for name in ("ONEWINDOW_CONFIG", "ONEWINDOW_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)


def write_overrides(config_dir: Path, text: str) -> None:
    (config_dir / "calendar").mkdir(parents=True, exist_ok=True)
    (config_dir / "calendar" / "overrides.toml").write_text(text, encoding="utf-8")


def test_deadline_prints_the_iso_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "deadline", "2026-09-30", "1"]) == 0
    out, err = capsys.readouterr()
    assert out == "2026-10-08\n"
    assert err == ""


def test_zero_days_prints_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "deadline", "2026-02-13", "0"]) == 0
    assert capsys.readouterr().out == "2026-02-13\n"


def test_estimated_deadline_warns_on_stderr_naming_the_years(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "deadline", "2026-12-30", "5"]) == 0
    out, err = capsys.readouterr()
    assert out == "2027-01-06\n"  # Dec 31, then Mon-Fri in 2027: Jan 1, 4, 5, 6
    assert err.startswith("warning:")
    assert "2027" in err
    assert err.count("\n") == 1  # one line, not Python's warning format as well


def test_override_dir_makes_the_year_known(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_overrides(tmp_path, '[2027]\nsource = "notice"\nholidays = ["2027-01-01..2027-01-03"]\n')
    assert main(["calendar", "deadline", "2026-12-30", "2", "--config-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "2027-01-04\n"  # Dec 31, then Monday Jan 4
    assert err == ""


def test_settings_config_dir_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_overrides(tmp_path, '[2026]\nsource = "correction"\nholidays = [2026-10-08]\n')
    monkeypatch.setenv("ONEWINDOW_CONFIG_DIR", str(tmp_path))
    assert main(["calendar", "deadline", "2026-09-30", "1"]) == 0
    assert capsys.readouterr().out == "2026-10-09\n"


@pytest.mark.parametrize(
    ("start", "days", "message"),
    [
        ("2026-02-30", "1", "START must be a real date"),
        ("30/09/2026", "1", "START must be a real date"),
        ("20260930", "1", "START must be a real date"),
        ("2026-09-30", "-1", "DAYS must be a whole number"),
        ("2026-09-30", "x", "DAYS must be a whole number"),
        ("2026-09-30", "1.5", "DAYS must be a whole number"),
        ("9999-12-30", "5", "beyond the year 9999"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], start: str, days: str, message: str
) -> None:
    assert main(["calendar", "deadline", start, days]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["calendar", "deadline", "2026-09-30"])
    assert info.value.code == 2
    assert "DAYS" in capsys.readouterr().err


def test_broken_override_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_overrides(tmp_path, '[2027]\nsource = "n"\nholidays = ["2027-02-30"]\n')
    assert main(["calendar", "deadline", "2026-09-30", "1", "--config-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{tmp_path / 'calendar' / 'overrides.toml'}:2027:holidays[0]:" in err


def test_check_lists_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_overrides(tmp_path, '[2027]\nsource = "国务院办公厅通知"\nholidays = [2027-01-01]\nworkdays = [2027-01-02]\n')
    assert main(["calendar", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "chinesecalendar: 2004-2026" in out
    assert "2027: 国务院办公厅通知 (1 holidays, 1 make-up working days)" in out


def test_check_lists_every_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_overrides(tmp_path, '[2027]\nholidays = ["2027-02-30"]\nworkdays = [2027-01-04]\n')
    assert main(["calendar", "check", str(tmp_path)]) == 1
    err_lines = capsys.readouterr().err.splitlines()
    assert len(err_lines) == 3  # source, holidays[0], workdays[0]
    assert all(line.startswith(str(tmp_path)) for line in err_lines)


def test_check_of_the_repository_config_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calendar", "check", str(REPO / "config")]) == 0


def test_console_script() -> None:
    done = subprocess.run(
        [str(ONEWINDOW), "calendar", "deadline", "2026-09-30", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2026-10-08\n"
