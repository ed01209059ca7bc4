"""The logs of a whole run hold no personal data: one JSON object per line, each request's id, and not one of the
citizens' ID numbers, names or phone numbers.

A demo-like run over real processes: the department simulators on loopback in this process; ``onewindow
connectors sync --full`` fills the certificate store (all but the ID cards); ``onewindow tokens create`` makes a
clerk and an officer;
``onewindow serve`` answers: a clerk files (certificates prefilled from the store, the ID card pulled live —
failing for the first citizen), uploads the form and accepts; the officer reviews and
approves, the window delivers; the citizen tracks the case (also with a wrong code) and evaluates it badly (a
rectification opens); the clerk reads the applicant's personal data and a certificate with a purpose; a malformed
body is refused. Then every line the commands and the server wrote is read: each server line is a JSON object,
every request has an access line with its request id, and none of the simulated citizens' ID numbers, phone
numbers or names (of the citizens the run used, and of every citizen of the population with a name of three or
more characters, which cannot occur by chance in other text) appears anywhere, in any letter case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.gateway.intake.fixtures import CARE_ITEM, STREET, simulators_in_thread

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ONEWINDOW = Path(sys.executable).parent / "onewindow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _onewindow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ONEWINDOW), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _serve(env: dict[str, str], port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(ONEWINDOW), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"onewindow serve exited:\n{_read(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    pytest.fail("onewindow serve not ready")


async def test_a_full_run_logs_no_personal_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    outputs: list[str] = []
    with simulators_in_thread(data_dir) as sims:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
        env |= {"ONEWINDOW_SIMULATOR_BASE_HOST": sims.control_url, "ONEWINDOW_LOOKUP_BUDGET_SECONDS": "5"}

        # Every department but public security: its ID cards are pulled live at intake (and fail once).
        departments = ["civil_affairs", "disabled_persons", "health", "human_resources", "veterans"]
        synced = _onewindow(env, "connectors", "sync", "--full", "--data-dir", str(data_dir), *departments)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        outputs += [synced.stdout, synced.stderr]
        tokens = {}
        for role, binding in (("clerk", ["--unit", STREET]), ("officer", ["--department", "civil_affairs"])):
            made = _onewindow(env, "tokens", "create", "--role", role, *binding, "--data-dir", str(data_dir))
            assert made.returncode == 0, made.stderr
            outputs.append(made.stderr)
            tokens[role] = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

        port = _free_port()
        log = tmp_path / "serve.log"
        proc = _serve(env, port, data_dir, log)
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_ready(base, proc, log)
            used = sorted(
                (
                    c
                    for c in sims.citizens
                    if {"resident_id_card", "disability_certificate", "household_register"} <= set(c.certificate_types)
                    and all(x.status == "01" for x in c.certificates)
                ),
                key=lambda c: c.id_number,
            )[:2]
            assert len(used) == 2
            window, department = tokens["clerk"], tokens["officer"]
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                # A department failing during a live pull: the connectors' error paths log.
                sims.set_faults("public_security", {"error_rate": 1.0})
                for citizen in used:
                    body = {
                        "item_code": CARE_ITEM,
                        "applicant": {"id_number": citizen.id_number, "name": citizen.name, "phone": citizen.phone},
                        "consent": True,
                        "purpose": "申请重度残疾人护理补贴",
                    }
                    response = await http.post("/api/v1/applications", json=body, headers=window)
                    assert response.status_code == 201, response.text
                    states = {m["key"]: m["state"] for m in response.json()["materials"]}
                    assert states["resident_id_card"] == ("unavailable" if citizen is used[0] else "prefilled")
                    sims.set_faults("public_security", {})
                application_id = response.json()["id"]
                # A malformed body naming a field (never echoing the value).
                bad = dict(body, applicant={"id_number": used[0].id_number + "0", "name": "", "phone": "1"})
                assert (await http.post("/api/v1/applications", json=bad, headers=window)).status_code == 422

                upload = f"/api/v1/applications/{application_id}/materials/application_form"
                pdf = b"%PDF-1.7\n% signed form\n%%EOF\n"
                response = await http.post(upload, files={"file": ("form.pdf", pdf, "application/pdf")}, headers=window)
                assert response.status_code == 200, response.text
                response = await http.post(f"/api/v1/applications/{application_id}/accept", headers=window)
                assert response.status_code == 200, response.text
                number, code = response.json()["tracking_number"], response.json()["query_code"]
                transitions = f"/api/v1/applications/{application_id}/transitions"
                for to, who, extra in (
                    ("in_review", department, {}),
                    ("approved", department, {"result": "准予发放"}),
                    ("delivered", window, {}),
                ):
                    response = await http.post(transitions, json={"to": to, "note": "办理"} | extra, headers=who)
                    assert response.status_code == 200, response.text

                assert (await http.get(f"/api/v1/track/{number}", params={"code": "ZZZZZZZZ"})).status_code == 404
                assert (await http.get(f"/api/v1/track/{number}", params={"code": code})).status_code == 200
                response = await http.post(
                    f"/api/v1/track/{number}/evaluation", params={"code": code}, json={"level": 1, "comment": "太慢"}
                )
                assert response.status_code == 201, response.text

                read = await http.get(
                    f"/api/v1/applications/{application_id}/applicant",
                    params={"purpose": "核对申请人身份"},
                    headers=window,
                )
                assert read.status_code == 200 and used[1].id_number in read.text  # the answer has it; logs must not
                read = await http.get(
                    f"/api/v1/applications/{application_id}/materials/resident_id_card/certificate",
                    params={"purpose": "核对身份证"},
                    headers=window,
                )
                assert read.status_code == 200, read.text
                request_ids = {r.headers["x-request-id"] for r in (read, response)}
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)

    server_log = _read(log)
    lines = [line for line in server_log.splitlines() if line.strip()]
    records = []
    for line in lines[1:]:  # the first line is serve's banner for the operator
        records.append(json.loads(line))  # every log line is one JSON object
    access = [r for r in records if r.get("logger") == "onewindow.access"]
    assert len(access) >= 12
    assert request_ids <= {r.get("request_id") for r in access}
    assert {404, 422} <= {r["status"] for r in access}  # the refused requests are logged too
    everything = "\n".join([server_log, *outputs]).lower()
    secrets = {c.id_number.lower() for c in sims.citizens} | {c.phone for c in sims.citizens}
    secrets |= {c.name for c in used} | {c.name for c in sims.citizens if len(c.name) >= 3}
    found = sorted(s for s in secrets if s and s.lower() in everything)
    assert found == [], f"personal data in the logs: {found[:5]}"
