"""The serving process's heap is settled after start-up: frozen, young collections less often (each case in a
fresh interpreter, since freezing is once per process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.observability.heap import YOUNG_THRESHOLD

_PROBE = """
import asyncio, gc, json, sys
import msgspec
from gateway.app import create_app
from gateway.settings import load_settings

settings = msgspec.structs.replace(
    load_settings(environ={}, data_dir=sys.argv[1]), province_reporting=False, gc_settle=sys.argv[2] == "on"
)
before = gc.get_threshold()[0]

async def main():
    app = create_app(settings)
    async with app.lifespan():
        print(json.dumps({"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0], "before": before}))

asyncio.run(main())
"""


def probe(tmp_path: Path, mode: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "var"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_start_up_freezes_the_heap_and_raises_the_young_threshold(tmp_path: Path) -> None:
    got = probe(tmp_path, "on")
    assert got["before"] == 700  # the interpreter's default, before the app started
    assert got["young"] == YOUNG_THRESHOLD
    # the app's start-up heap (catalog, routes, schema, modules) is well over 100,000 objects
    assert got["frozen"] > 100_000


@pytest.mark.slow
def test_the_setting_turns_it_off(tmp_path: Path) -> None:
    got = probe(tmp_path, "off")
    assert got == {"frozen": 0, "young": got["before"], "before": got["before"]}
