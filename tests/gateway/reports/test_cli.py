"""`onewindow reports generate` through the installed command, and a grid worker's token through `tokens create`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the command line in other processes

ONEWINDOW = Path(sys.executable).parent / "onewindow"
ROOT = Path(__file__).resolve().parents[3]


async def _run(*args: str) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    proc = await asyncio.create_subprocess_exec(
        str(ONEWINDOW), *args, cwd=ROOT, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_generate_twice_keeps_both_versions(tmp_path: Path) -> None:
    data = str(tmp_path / "var")
    args = ("reports", "generate", "monthly", "--start", "2026-02-01", "--unit", "430302001000", "--data-dir", data)
    code, out, err = await _run(*args)
    assert code == 0, err
    assert "monthly 2026-02-01 430302001000 version 1 sha256 " in out and "stored in the reports table" in out
    code, out, err = await _run(*args)
    assert code == 0, err
    assert "version 2" in out

    code, out, err = await _run("reports", "generate", "weekly", "--start", "2026-02-03", "--data-dir", data)
    assert code == 2 and "--start" in err and "Monday" in err

    code, out, err = await _run(
        "tokens", "create", "--role", "grid_worker", "--unit", "430302001001001", "--data-dir", data
    )
    assert code == 0, err
    code, out, err = await _run(
        "tokens", "create", "--role", "grid_worker", "--unit", "430302001001", "--data-dir", data
    )
    assert code == 2 and "grid" in err
