"""`gateway.cli`: every listed command module is loaded; one that cannot be imported stops the command line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import gateway.commands
from gateway import cli

REPO = Path(__file__).resolve().parents[2]


def test_every_command_is_registered() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli.COMMAND_MODULES)


def test_a_missing_command_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "no_such_command"))
    with pytest.raises(ImportError, match=r"'no_such_command' command cannot be loaded") as info:
        cli.build_parser()
    assert info.value.name == "gateway.commands.no_such_command"


def test_a_command_module_with_a_broken_import_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_command.py").write_text("import onewindow_no_such_dependency\n", encoding="utf-8")
    monkeypatch.setattr(gateway.commands, "__path__", [*gateway.commands.__path__, str(tmp_path)])
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("serve", "broken_command"))
    with pytest.raises(ImportError) as info:
        cli.build_parser()
    message = str(info.value)
    assert "'broken_command' command cannot be loaded" in message
    assert "gateway.commands.broken_command" in message and "onewindow_no_such_dependency" in message
    assert info.value.name == "onewindow_no_such_dependency"
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_the_process_exits_non_zero_naming_the_module() -> None:
    code = "import sys, gateway.cli as c; c.COMMAND_MODULES += ('no_such_command',); sys.exit(c.main(['--help']))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "gateway.commands.no_such_command" in result.stderr
    assert "usage:" not in result.stdout
