"""`onewindow simulate` as a real process: starts, serves, stops on SIGTERM with exit 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}


@pytest.mark.slow
def test_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "simulate", "--port", "0", "--citizens", "60", "--seed", "3",
         "--data-dir", str(tmp_path), "--faults", "veterans:latency=5"],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("running"):
                    break
            output = "".join(lines)
            assert "running" in output, output + (process.stderr.read() if process.stderr else "")
            for code in (
                "public_security",
                "civil_affairs",
                "human_resources",
                "disabled_persons",
                "health",
                "veterans",
                "natural_resources",
            ):
                assert code in output
            assert "latency=5" in output
            match = re.search(r"control page: (http://127\.0\.0\.1:\d+)/", output)
            assert match, output
            with urllib.request.urlopen(match.group(1) + "/", timeout=10) as response:
                index = json.load(response)
            assert index["seed"] == 3 and index["citizens"] == 60
            assert [d["code"] for d in index["departments"]][-1] == "natural_resources"
            assert (tmp_path / "simulators" / "pki" / "client.pem").is_file()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
            assert "stopped" in process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_bad_fault_spec_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "simulate", "--faults", "health:hang=7"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--faults" in result.stderr and "probability must be between 0 and 1" in result.stderr
    assert "Traceback" not in result.stderr
