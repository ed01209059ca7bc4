"""One case from the window to the citizen's evaluation, over real HTTP (uvicorn on a loopback port), on SQLite and
PostgreSQL, with the department simulators answering the certificate lookups.

A clerk files a 重度残疾人护理补贴 application (the ID card, disability certificate and household register fill
themselves in from three departments' systems), uploads the signed form and accepts it; the civil-affairs officer
reviews it and asks for a correction; the clerk uploads the corrected form and resubmits; the officer approves and
the window delivers; the citizen tracks the case with the receipt's number and code and evaluates the service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import uvicorn

from gateway.app import create_app
from gateway.audit import log as audit_log
from gateway.context import context_of
from gateway.identity import create_token
from gateway.privacy import mask_name
from gateway.settings import Settings
from tests.gateway.intake.fixtures import CARE_ITEM, STREET, simulators_in_thread


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    """The gateway under uvicorn on an ephemeral loopback port: (base URL, app)."""
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_a_case_from_window_to_evaluation(db_settings: Settings) -> None:
    with simulators_in_thread(db_settings.data_dir) as sims:
        settings = msgspec.structs.replace(db_settings, simulator_base_host=sims.control_url, lookup_budget_seconds=3.0)
        async with serve(settings) as (base_url, app):
            clerk, _ = await create_token(context_of(app).database, role="clerk", unit=STREET)
            officer, _ = await create_token(context_of(app).database, role="officer", department="civil_affairs")
            supervisor, _ = await create_token(context_of(app).database, role="supervisor")
            citizen = next(
                c
                for c in sorted(sims.citizens, key=lambda c: c.id_number)
                if {"resident_id_card", "disability_certificate", "household_register"} <= set(c.certificate_types)
                and all(x.status == "01" for x in c.certificates)
            )
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                window = {"Authorization": f"Bearer {clerk}"}
                department = {"Authorization": f"Bearer {officer}"}

                # 1. The clerk files; a double click with the same Idempotency-Key files once.
                body = {
                    "item_code": CARE_ITEM,
                    "applicant": {"id_number": citizen.id_number, "name": citizen.name, "phone": citizen.phone},
                    "consent": True,
                    "purpose": "申请重度残疾人护理补贴",
                }
                key = {"Idempotency-Key": "window-7-click-1"}
                first = await http.post("/api/v1/applications", json=body, headers=window | key)
                assert first.status_code == 201, first.text
                again = await http.post("/api/v1/applications", json=body, headers=window | key)
                assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
                created = first.json()
                application_id = created["id"]
                states = {m["key"]: m["state"] for m in created["materials"]}
                assert states["resident_id_card"] == states["disability_certificate"] == "prefilled"
                assert states["household_register"] == "prefilled"
                assert states["application_form"] == "missing"

                # 2. Upload the signed form (a PDF), then accept: receipt with number, code and deadline.
                upload = f"/api/v1/applications/{application_id}/materials/application_form"
                pdf = b"%PDF-1.7\n% signed form\n%%EOF\n"
                response = await http.post(upload, files={"file": ("form.pdf", pdf, "application/pdf")}, headers=window)
                assert response.status_code == 200 and response.json()["state"] == "provided", response.text
                response = await http.post(f"/api/v1/applications/{application_id}/accept", headers=window)
                assert response.status_code == 200, response.text
                receipt = response.json()
                number, code = receipt["tracking_number"], receipt["query_code"]
                assert receipt["status"] == "accepted" and receipt["deadline"]

                # 3. The officer finds it in the queue, takes it into review, asks for a correction.
                queue = (await http.get("/api/v1/applications", headers=department)).json()
                assert [e["id"] for e in queue["items"]] == [application_id]
                view = await http.get(f"/api/v1/applications/{application_id}", headers=department)
                etag = view.headers["etag"]
                transitions = f"/api/v1/applications/{application_id}/transitions"
                response = await http.post(
                    transitions, json={"to": "in_review", "note": "开始审查"}, headers=department | {"If-Match": etag}
                )
                assert response.status_code == 200, response.text
                response = await http.post(
                    transitions,
                    json={"to": "correction_required", "note": "申请表缺少签字，请补正"},
                    headers=department | {"If-Match": response.headers["etag"]},
                )
                assert response.status_code == 200 and response.json()["clock"]["paused"], response.text

                # 4. The citizen sees the request; the window uploads the corrected form and resubmits.
                tracked = (await http.get(f"/api/v1/track/{number}", params={"code": code})).json()
                assert tracked["status"] == "correction_required"
                corrected = b"%PDF-1.7\n% signed form, corrected\n%%EOF\n"
                response = await http.post(
                    upload, files={"file": ("form2.pdf", corrected, "application/pdf")}, headers=window
                )
                assert response.status_code == 200, response.text
                response = await http.post(transitions, json={"to": "in_review", "note": "已补正"}, headers=window)
                assert response.status_code == 200 and not response.json()["clock"]["paused"], response.text

                # 5. The officer approves; the window delivers the decision.
                response = await http.post(
                    transitions,
                    json={"to": "approved", "note": "符合条件", "result": "准予发放重度残疾人护理补贴"},
                    headers=department,
                )
                assert response.status_code == 200, response.text
                response = await http.post(
                    transitions, json={"to": "delivered", "note": "窗口当面送达"}, headers=window
                )
                assert response.status_code == 200, response.text
                history = [h["status"] for h in response.json()["history"]]
                assert history == [
                    "draft",
                    "accepted",
                    "in_review",
                    "correction_required",
                    "in_review",
                    "approved",
                    "delivered",
                ]

                # 6. The citizen tracks the case (no token) and evaluates it, once.
                response = await http.get(f"/api/v1/track/{number}", params={"code": code})
                assert response.status_code == 200, response.text
                tracked = response.json()
                assert tracked["status"] == "delivered" and tracked["can_evaluate"] is True
                assert tracked["applicant_name"] == mask_name(citizen.name)
                assert [t["status"] for t in tracked["timeline"]] == history
                for secret in (citizen.id_number, citizen.phone, citizen.name):
                    assert secret not in response.text
                evaluation = f"/api/v1/track/{number}/evaluation"
                verdict = {
                    "level": 5,
                    "comment": "材料自动调取，少跑腿",
                    "dimensions": {"overall": 5, "efficiency": 5, "service": 5, "attitude": 5},
                }
                response = await http.post(evaluation, params={"code": code}, json=verdict)
                assert response.status_code == 201, response.text
                assert (await http.post(evaluation, params={"code": code}, json=verdict)).status_code == 409

                # 7. The supervisor's summary counts the delivered case; no rectification for a good review.
                summary = (
                    await http.get("/api/v1/supervision/summary", headers={"Authorization": f"Bearer {supervisor}"})
                ).json()
                (row,) = [r for r in summary["rows"] if r["item_code"] == CARE_ITEM]
                assert row["by_status"] == {"delivered": 1} and row["overdue"] == 0
                rectifications = (
                    await http.get(
                        "/api/v1/supervision/rectifications", headers={"Authorization": f"Bearer {supervisor}"}
                    )
                ).json()
                assert rectifications["items"] == []

            # 8. Every step is in the audit log, and the chain is intact.
            result = await audit_log.verify(context_of(app).database, [context_of(app).audit_signer.public_key])
            assert result.ok, result.summary()
            async with context_of(app).database.read() as conn:
                actions = [
                    r.action for r in await audit_log.history(conn, object_type="application", object_id=application_id)
                ]
            for action in ("application.created", "material.uploaded", "application.accepted", "status.changed"):
                assert action in actions, actions
            assert actions.count("status.changed") == 5
            assert "evaluation.submitted" in actions
