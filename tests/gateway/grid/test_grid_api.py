"""Grid workers over HTTP on SQLite and PostgreSQL: tasks open themselves from the case's history, complete once,
the follow-up records a paper evaluation (one per case), scope answers 404, the phone read is audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select, update

from catalog.calendar import local_date
from gateway.cases.tables import application_history, applications
from gateway.context import context_of
from gateway.events.tables import outbox_events
from gateway.grid.tables import grid_tasks
from gateway.identity import create_token
from gateway.storage.metadata import new_id, utcnow
from gateway.tracking.tables import evaluations
from tests.gateway.intake.fixtures import COMMUNITY, GRID, OTHER_GRID, Gateway

OTHER_GRID_SAME_COMMUNITY = COMMUNITY + "002"


async def _worker(gw: Gateway, grid: str, name: str) -> None:
    token, _ = await create_token(context_of(gw.app).database, role="grid_worker", unit=grid)
    gw.tokens[name] = token


async def _grid_case(gw: Gateway, grid: str = GRID) -> str:
    citizen = gw.citizen("resident_id_card", "disability_certificate", "household_register")
    created = await gw.create(gw.body(citizen, grid=grid))
    assert created.status_code == 201, created.text
    application_id: str = created.json()["id"]
    assert (await gw.upload(application_id, "application_form")).status_code == 200
    assert (await gw.accept(application_id)).status_code == 200
    return application_id


async def _tasks(gw: Gateway, who: str, **params: str) -> dict[str, Any]:
    r = await gw.client.get("/api/v1/grid/tasks", params=params, headers=gw.auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_tasks_open_complete_once_and_follow_up_evaluation(gateway: Gateway) -> None:
    gw = gateway
    await _worker(gw, GRID, "worker")
    await _worker(gw, OTHER_GRID_SAME_COMMUNITY, "neighbour")
    application_id = await _grid_case(gw)

    listed = await _tasks(gw, "worker", stage="during", status="open")
    kinds = [(t["application_id"], t["kind"]) for t in listed["items"]]
    assert kinds == [(application_id, "accepted")]
    assert listed["total"] == 1
    task = listed["items"][0]
    assert set(task) >= {"id", "application_id", "stage", "kind", "due_on", "status"}
    # Listing again derives nothing new (unique key per case, kind and trigger).
    assert (await _tasks(gw, "worker"))["total"] == 1
    # Another grid's worker sees neither the task nor the case.
    assert (await _tasks(gw, "neighbour"))["total"] == 0
    r = await gw.client.get(f"/api/v1/grid/cases/{application_id}", headers=gw.auth("neighbour"))
    assert r.status_code == 404
    r = await gw.client.post(
        f"/api/v1/grid/tasks/{task['id']}/complete", json={"outcome": "informed"}, headers=gw.auth("neighbour")
    )
    assert r.status_code == 404

    bad = await gw.client.post(
        f"/api/v1/grid/tasks/{task['id']}/complete", json={"outcome": "qr_handed"}, headers=gw.auth("worker")
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "outcome"
    done = await gw.client.post(
        f"/api/v1/grid/tasks/{task['id']}/complete",
        json={"outcome": "informed", "note": "已电话告知"},
        headers=gw.auth("worker"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    again = await gw.client.post(
        f"/api/v1/grid/tasks/{task['id']}/complete", json={"outcome": "informed"}, headers=gw.auth("worker")
    )
    assert again.status_code == 409

    # The case as the grid sees it: masked.
    case = (await gw.client.get(f"/api/v1/grid/cases/{application_id}", headers=gw.auth("worker"))).json()
    assert "*" in case["applicant_phone"] and "*" in case["applicant_name"]

    # Completion opens the follow-up (after); the paper evaluation is recorded once.
    assert (await gw.move(application_id, "in_review")).status_code == 200
    assert (await gw.move(application_id, "approved", note="符合条件", result="同意")).status_code == 200
    follow = (await _tasks(gw, "worker", stage="after", status="open"))["items"]
    assert [t["kind"] for t in follow] == ["follow_up"]
    missing = await gw.client.post(
        f"/api/v1/grid/tasks/{follow[0]['id']}/complete",
        json={"outcome": "paper_evaluation"},
        headers=gw.auth("worker"),
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "evaluation"
    paper = await gw.client.post(
        f"/api/v1/grid/tasks/{follow[0]['id']}/complete",
        json={"outcome": "paper_evaluation", "evaluation": {"level": 1, "comment": "等待太久"}},
        headers=gw.auth("worker"),
    )
    assert paper.status_code == 200, paper.text
    assert paper.json()["evaluation_id"]
    async with gw.db.read() as conn:
        count = (
            await conn.execute(
                select(func.count()).select_from(evaluations).where(evaluations.c.application_id == application_id)
            )
        ).scalar_one()
        announced = (
            await conn.execute(
                select(outbox_events.c.type, outbox_events.c.data).where(
                    outbox_events.c.application_id == application_id,
                    outbox_events.c.type.in_(("evaluation.created", "rectification.opened")),
                )
            )
        ).all()
    assert count == 1
    # Announced like a citizen's evaluation (marked as collected on paper), and its rectification too.
    assert sorted(t for t, _ in announced) == ["evaluation.created", "rectification.opened"]
    assert next(d for t, d in announced if t == "evaluation.created")["channel"] == "paper"
    # The bad review's rectification asks the grid for the follow-up call (回访).
    callbacks = (await _tasks(gw, "worker", stage="after", status="open"))["items"]
    assert [t["kind"] for t in callbacks] == ["callback"]
    r = await gw.client.post(
        f"/api/v1/grid/tasks/{callbacks[0]['id']}/complete",
        json={"outcome": "satisfied", "note": "回访：已整改，群众满意"},
        headers=gw.auth("worker"),
    )
    assert r.status_code == 200, r.text

    # A community supervisor sees the grids under the community; another street's supervisor sees none.
    token, _ = await create_token(gw.db, role="supervisor", unit=COMMUNITY)
    gw.tokens["community_supervisor"] = token
    token, _ = await create_token(gw.db, role="supervisor", unit="430302007000")
    gw.tokens["far_supervisor"] = token
    assert (await _tasks(gw, "community_supervisor"))["total"] == 3
    assert (await _tasks(gw, "far_supervisor"))["total"] == 0
    coverage = await gw.client.get(
        "/api/v1/grid/coverage",
        params={"unit": COMMUNITY, "start": "2000-01-01", "end": "2100-01-01"},
        headers=gw.auth("community_supervisor"),
    )
    assert coverage.status_code == 200, coverage.text
    grids = coverage.json()["grids"]
    assert [g["grid"] for g in grids] == [GRID] and grids[0]["cases"] == 1
    outside = await gw.client.get(
        "/api/v1/grid/coverage",
        params={"unit": "430302007000", "start": "2000-01-01", "end": "2100-01-01"},
        headers=gw.auth("community_supervisor"),
    )
    assert outside.status_code == 404


async def test_phone_read_needs_purpose_and_is_audited(gateway: Gateway) -> None:
    gw = gateway
    await _worker(gw, GRID, "worker")
    await _worker(gw, OTHER_GRID, "other")
    application_id = await _grid_case(gw)
    url = f"/api/v1/grid/cases/{application_id}/phone"
    missing = await gw.client.get(url, headers=gw.auth("worker"))
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "purpose"
    before = await gw.audited("personal_data.read")
    r = await gw.client.get(url, params={"purpose": "回访办理结果"}, headers=gw.auth("worker"))
    assert r.status_code == 200, r.text
    assert r.json()["phone"].isdigit() and r.headers["cache-control"] == "no-store"
    assert await gw.audited("personal_data.read") == before + 1
    assert (await gw.client.get(url, params={"purpose": "回访办理结果"}, headers=gw.auth("other"))).status_code == 404


async def test_clerk_corrects_grid_with_audit_and_tasks_follow(gateway: Gateway) -> None:
    gw = gateway
    await _worker(gw, OTHER_GRID_SAME_COMMUNITY, "neighbour")
    application_id = await _grid_case(gw)
    bad = await gw.client.put(
        f"/api/v1/grid/cases/{application_id}/grid", json={"grid": COMMUNITY, "reason": ""}, headers=gw.auth("clerk")
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"grid", "reason"}
    before = await gw.audited("application.grid_corrected")
    r = await gw.client.put(
        f"/api/v1/grid/cases/{application_id}/grid",
        json={"grid": OTHER_GRID_SAME_COMMUNITY, "reason": "居民实际居住在二网格"},
        headers=gw.auth("clerk"),
    )
    assert r.status_code == 200, r.text
    assert await gw.audited("application.grid_corrected") == before + 1
    r = await gw.client.get(f"/api/v1/grid/cases/{application_id}", headers=gw.auth("neighbour"))
    assert r.status_code == 200
    assert (
        await gw.client.put(
            f"/api/v1/grid/cases/{application_id}/grid",
            json={"grid": GRID, "reason": "再次更正"},
            headers=gw.auth("other_clerk"),
        )
    ).status_code == 404


async def test_consultation_lists_materials_and_prints(gateway: Gateway) -> None:
    gw = gateway
    await _worker(gw, GRID, "worker")
    citizen = gw.citizen("resident_id_card", "disability_certificate", "household_register")
    no_consent = await gw.client.post(
        "/api/v1/grid/consultations",
        json={"item_code": "0205006100", "id_number": citizen.id_number},
        headers=gw.auth("worker"),
    )
    assert no_consent.status_code == 422 and no_consent.json()["errors"][0]["field"] == "consent"
    r = await gw.client.post(
        "/api/v1/grid/consultations",
        json={"item_code": "0205006100", "consent": True, "id_number": citizen.id_number},
        headers=gw.auth("worker"),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    coverage = {m["key"]: m["coverage"] for m in body["materials"]}
    assert coverage["application_form"] == "bring"
    assert "covered" in coverage.values()
    page = await gw.client.get(body["notice_url"], headers=gw.auth("worker"))
    assert page.status_code == 200 and "一次性告知单" in page.text
    before = (await _tasks(gw, "worker", stage="before"))["items"]
    assert [t["kind"] for t in before] == ["consultation"]
    async with gw.db.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(grid_tasks))).scalar_one()
    assert stored == 1


async def test_a_caught_up_list_notices_every_change_its_tasks_derive_from(gateway: Gateway) -> None:
    """A grid worker's list skips the catch-up scan while nothing it derives from has changed (one read says so);
    a case's clock moving, a new history row, even one stamped before the last scan, each open their task."""
    gw = gateway
    context = context_of(gw.app)
    await _worker(gw, GRID, "worker")
    first = await _grid_case(gw)
    assert [t["kind"] for t in (await _tasks(gw, "worker"))["items"]] == ["accepted"]
    assert (await _tasks(gw, "worker"))["total"] == 1  # served from the remembered inputs

    # The clock moves (as every write of a case does, with its version): the case is now due soon.
    today = local_date(utcnow())
    async with gw.db.transaction() as conn:
        await conn.execute(
            update(applications)
            .where(applications.c.id == first)
            .values(deadline=context.calendar.deadline(today, 1).date, version=applications.c.version + 1)
        )
    assert sorted(t["kind"] for t in (await _tasks(gw, "worker"))["items"]) == ["accepted", "due_soon"]

    # A history row committed late, stamped a minute before the previous scan, is still derived.
    assert (await _tasks(gw, "worker"))["total"] == 2
    async with gw.db.transaction() as conn:
        position = (
            await conn.execute(
                select(func.max(application_history.c.position)).where(application_history.c.application_id == first)
            )
        ).scalar_one()
        await conn.execute(
            insert(application_history).values(
                id=new_id(),
                application_id=first,
                position=position + 1,
                status="correction_required",
                from_status="in_review",
                at=utcnow() - dt.timedelta(minutes=1),
                actor="officer",
            )
        )
    kinds = sorted(t["kind"] for t in (await _tasks(gw, "worker"))["items"])
    assert kinds == ["accepted", "correction", "due_soon"]
    async with gw.db.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(grid_tasks))).scalar_one()
    assert stored == 3
