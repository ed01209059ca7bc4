"""`onewindow demo` end to end, as a person runs it: the real command in a child process, real sockets.

Start it on a free port with a fresh data dir, wait for readiness, read demo.json, file an application with the
clerk's token for a listed citizen and an item whose materials come from certificates, see them prefilled, then
SIGTERM: exit 0 within seconds, no traceback. A second start on the same data dir reuses the database and gives new
tokens (the old ones stop working).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

pytestmark = pytest.mark.slow  # every test here runs the command line in other processes

REPO = Path(__file__).resolve().parents[2]
ONEWINDOW = Path(sys.executable).parent / "onewindow"
START_TIMEOUT = 90.0  # generous: the CI machine has two cores shared with the rest of the suite
STOP_TIMEOUT = 15.0
PHONE = "13800000000"


def _free_port() -> int:
    # The demo also needs PORT+100 … PORT+106 for the simulators; it falls back to ephemeral ports if taken.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port if port + 106 < 65536 else port - 200


class Demo:
    """One `onewindow demo` child process with its output in files (pipes could fill up and block it)."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / f"demo-{self.port}.out"
        self.stderr_path = log_dir / f"demo-{self.port}.err"
        # embedded defaults whatever the caller's environment says (no PostgreSQL/Redis of the developer's)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(ONEWINDOW), "demo", "--port", str(self.port), "--data-dir", str(data_dir)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        # One client for every poll: each new one loads the CA bundle again, costing more CPU than the poll.
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"demo exited with {self.proc.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
                    )
                try:
                    # Ready, and the banner written: it comes a moment after the server starts answering.
                    if client.get(self.base + "/health/ready").status_code == 200 and " demo is up in " in self.stdout:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.kill()
        pytest.fail(f"demo not ready after {START_TIMEOUT:.0f} s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"demo still running {STOP_TIMEOUT:.0f} s after SIGTERM\nstderr:\n{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def demo_runs(tmp_path: Path) -> Iterator[list[Demo]]:
    runs: list[Demo] = []
    yield runs
    for run in runs:
        run.kill()


def _read_demo_json(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "demo.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "demo.json holds tokens: mode 0600"
    doc: dict[str, Any] = msgspec.json.decode(path.read_bytes())
    return doc


Json = dict[str, Any]


def _fileable(items: list[Json], citizens: list[Json]) -> list[tuple[Json, Json]]:
    """(item, citizen) pairs where the citizen holds every required certificate type of an item that has some."""
    pairs = []
    for item in items:
        cert = [m for m in item["materials"] if m["source"] == "certificate"]
        required = {m["certificate_type"] for m in cert if m["required"]}
        if not cert:
            continue
        for citizen in citizens:
            if required <= set(citizen["certificate_types"]):
                pairs.append((item, citizen))
    return pairs


def test_demo_serves_files_and_stops_cleanly(tmp_path: Path, demo_runs: list[Demo]) -> None:
    data_dir = tmp_path / "var"
    first = Demo(data_dir, tmp_path)
    demo_runs.append(first)
    first.wait_ready()

    demo = _read_demo_json(data_dir)
    assert demo["base_url"] == first.base
    assert set(demo["tokens"]) >= {"clerk", "clerk_other_unit", "officer", "supervisor", "admin", "system"}
    assert len(set(demo["tokens"].values())) == len(demo["tokens"]), "one distinct token per role"
    citizens = demo["citizens"]
    assert len(citizens) >= 5
    for citizen in citizens:
        assert set(citizen) >= {"id_number", "name", "certificate_types"}
        assert citizen["certificate_types"]
    # the banner names the gateway, the API docs and health
    out = first.stdout
    for url in (first.base, f"{first.base}/schema/swagger", f"{first.base}/health/ready"):
        assert url in out

    with httpx.Client(base_url=first.base, timeout=30.0) as client:
        clerk = {"Authorization": f"Bearer {demo['tokens']['clerk']}"}
        other = {"Authorization": f"Bearer {demo['tokens']['clerk_other_unit']}"}
        officer = {"Authorization": f"Bearer {demo['tokens']['officer']}"}
        # the two clerks sit at two different street windows
        me = client.get("/api/v1/me", headers=clerk)
        them = client.get("/api/v1/me", headers=other)
        assert me.status_code == 200 and them.status_code == 200, (me.text, them.text)
        assert me.json()["role"] == them.json()["role"] == "clerk"
        assert me.json()["unit"] != them.json()["unit"]
        assert client.get("/api/v1/me", headers=officer).json()["department"] == demo["officer_department"]

        listing = client.get("/api/v1/catalog/items", params={"level": "street"}, headers=clerk)
        assert listing.status_code == 200, listing.text
        items = listing.json()["items"]
        pairs = _fileable(items, citizens)
        assert pairs, "some street item has certificate materials a listed citizen holds"
        officer_pairs = [(i, c) for i, c in pairs if i["department"] == demo["officer_department"]]
        assert officer_pairs, "the officer's department handles an item the clerk can file for a listed citizen"
        item, citizen = officer_pairs[0]

        created = client.post(
            "/api/v1/applications",
            headers=clerk,
            json={
                "item_code": item["code"],
                "applicant": {"id_number": citizen["id_number"], "name": citizen["name"], "phone": PHONE},
                "consent": True,
                "accept": False,
            },
        )
        assert created.status_code == 201, created.text
        application = created.json()
        states = {m["key"]: m for m in application["materials"]}
        held = set(citizen["certificate_types"])
        expected = [m for m in item["materials"] if m["source"] == "certificate" and m["certificate_type"] in held]
        assert expected
        for material in expected:
            got = states[material["key"]]
            assert got["state"] == "prefilled", got
            assert got["certificate"]["type_key"] == material["certificate_type"]
        # the citizen's ID number never comes back in clear
        assert citizen["id_number"] not in created.text

        # scope: the other window does not see it, the officer of the item's department does
        assert client.get(f"/api/v1/applications/{application['id']}", headers=other).status_code == 404
        assert client.get(f"/api/v1/applications/{application['id']}", headers=clerk).status_code == 200
        assert client.get(f"/api/v1/applications/{application['id']}", headers=officer).status_code == 200

    assert first.terminate() == 0
    assert "Traceback" not in first.stderr, first.stderr
    # The gateway's JSON log lines went to the file the banner names, not to the terminal.
    log = data_dir / "logs" / "gateway.log"
    assert f"gateway log    {log}" in first.stdout
    logged = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert any(e.get("route") == "/api/v1/applications" and e.get("status") == 201 for e in logged), logged[-5:]
    assert '"logger":' not in first.stdout + first.stderr
    assert "  webhooks       http://" in first.stdout

    # Re-run on the same data dir: the database is reused, the tokens are new and the old ones are revoked.
    second = Demo(data_dir, tmp_path)
    demo_runs.append(second)
    second.wait_ready()
    again = _read_demo_json(data_dir)
    assert again["tokens"]["clerk"] != demo["tokens"]["clerk"]
    with httpx.Client(base_url=second.base, timeout=30.0) as client:
        new_clerk = {"Authorization": f"Bearer {again['tokens']['clerk']}"}
        old_clerk = {"Authorization": f"Bearer {demo['tokens']['clerk']}"}
        assert client.get(f"/api/v1/applications/{application['id']}", headers=new_clerk).status_code == 200
        assert client.get(f"/api/v1/applications/{application['id']}", headers=old_clerk).status_code == 401
    assert second.terminate() == 0
    assert "Traceback" not in second.stderr, second.stderr
