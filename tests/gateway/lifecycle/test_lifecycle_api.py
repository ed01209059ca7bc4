"""The case lifecycle over HTTP on SQLite and PostgreSQL: transitions with roles, 409 naming what is allowed,
the clock stopping and resuming, ETag / If-Match, scope, queues and the supervisor's summary."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select, update

from gateway.cases.tables import applications
from gateway.context import context_of
from gateway.lifecycle.deps import provide_lifecycle
from tests.gateway.intake.fixtures import CARE_ITEM, ONE_CERT_ITEM, STREET, Gateway, today_local


def statuses(view: dict[str, Any]) -> list[str]:
    return [h["status"] for h in view["history"]]


async def test_officer_review_correction_resubmission_completion(gateway: Gateway) -> None:
    application_id, acceptance = await gateway.accepted_case()
    view = (await gateway.get(application_id, who="officer")).json()
    assert view["status"] == "accepted"
    assert view["allowed_transitions"] == ["in_review"]
    clock = view["clock"]
    assert clock["promised_days"] == 15 and clock["working_days_left"] == 15 and clock["working_days_used"] == 0
    assert not clock["paused"] and not clock["overdue"] and not clock["due_soon"]
    assert view["deadline"] == acceptance["deadline"]

    response = await gateway.move(application_id, "in_review", note="受理材料齐全，开始审查")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "in_review"
    # Asking for correction needs a reason.
    response = await gateway.move(application_id, "correction_required")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "note"
    response = await gateway.move(application_id, "correction_required", note="申请表缺少监护人签字，请补正")
    assert response.status_code == 200, response.text
    paused = response.json()
    assert paused["clock"]["paused"] is True
    assert paused["clock"]["working_days_left"] == 15  # stopped the same day it started: nothing used
    # The clerk cannot resubmit without new material; the officer cannot skip the citizen.
    response = await gateway.move(application_id, "in_review", who="clerk")
    assert response.status_code == 409, response.text
    assert response.json()["status"] == 409 and response.json()["current_status"] == "correction_required"
    assert response.json()["allowed"] == ["withdrawn"]
    response = await gateway.move(application_id, "approved", result="准予")
    assert response.status_code == 409
    assert response.json()["allowed"] == ["in_review"]
    # The window uploads the corrected form and resubmits: the clock runs again with the days left.
    assert (await gateway.upload(application_id, "application_form", b"%PDF-1.7 corrected")).status_code == 200
    response = await gateway.move(application_id, "in_review", who="clerk", note="已补正")
    assert response.status_code == 200, response.text
    resumed = response.json()
    assert resumed["clock"]["paused"] is False
    calendar = provide_lifecycle(context_of(gateway.app)).calendar
    assert resumed["deadline"] == calendar.deadline(today_local(), 15).date.isoformat()
    # Completion needs the result.
    response = await gateway.move(application_id, "approved")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "result"
    response = await gateway.move(application_id, "approved", result="准予发放重度残疾人护理补贴，每月100元")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["result"].startswith("准予") and done["clock"]["stopped"] is True
    assert done["allowed_transitions"] == ["delivered"]
    response = await gateway.move(application_id, "delivered", who="clerk", note="窗口领取")
    assert response.status_code == 200, response.text
    final = response.json()
    assert final["allowed_transitions"] == []
    assert statuses(final) == [
        "draft",
        "accepted",
        "in_review",
        "correction_required",
        "in_review",
        "approved",
        "delivered",
    ]
    by = [h["by"] for h in final["history"]]
    assert by[0] == f"clerk:{STREET}" and by[2] == "officer:civil_affairs"
    assert final["history"][3]["note"] == "申请表缺少监护人签字，请补正"
    assert all(h["at"].endswith("+08:00") for h in final["history"])
    # Nothing follows delivery.
    response = await gateway.move(application_id, "in_review")
    assert response.status_code == 409 and response.json()["allowed"] == []


async def test_illegal_moves_answer_409_with_the_allowed_statuses(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    response = await gateway.move(application_id, "approved", result="x")
    assert response.status_code == 409
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    # The HTTP status stays the problem's `status`; the case's own status is `current_status`.
    assert body["allowed"] == ["in_review"] and body["status"] == 409 and body["current_status"] == "accepted"
    response = await gateway.move(application_id, "in_review", who="clerk")
    assert response.status_code == 409 and response.json()["allowed"] == ["withdrawn"]
    assert response.json()["status"] == 409 and response.json()["current_status"] == "accepted"
    response = await gateway.move(application_id, "draft")
    assert response.status_code == 409
    response = await gateway.move(application_id, "finished")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "to"
    response = await gateway.move(application_id, "accepted", who="clerk")
    assert response.status_code == 409
    # Supervisors and admins oversee; they do not move cases.
    assert (await gateway.move(application_id, "in_review", who="supervisor")).status_code == 403
    assert (await gateway.move(application_id, "in_review", who="system")).status_code == 403
    view = (await gateway.get(application_id)).json()
    assert view["status"] == "accepted" and statuses(view) == ["draft", "accepted"]


async def test_refusal_withdrawal_and_special_procedure(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    draft = (await gateway.create(gateway.body(citizen))).json()["id"]
    response = await gateway.move(draft, "not_accepted", who="clerk")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "note"
    response = await gateway.move(draft, "not_accepted", who="clerk", note="不属于本事项受理范围")
    assert response.status_code == 200 and response.json()["status"] == "not_accepted"
    assert (await gateway.upload(draft, "application_form")).status_code == 409
    assert (await gateway.accept(draft)).status_code == 409

    application_id, _ = await gateway.accepted_case()
    assert (await gateway.move(application_id, "in_review")).status_code == 200
    response = await gateway.move(application_id, "special_procedure", note="需入户核查（特别程序）")
    assert response.status_code == 200 and response.json()["clock"]["paused"] is True
    assert response.json()["allowed_transitions"] == ["in_review"]
    response = await gateway.move(application_id, "in_review", note="核查完成")
    assert response.status_code == 200 and response.json()["clock"]["paused"] is False
    response = await gateway.move(application_id, "denied", result="不予批准")
    assert response.status_code == 422  # a denial needs the reason too
    response = await gateway.move(application_id, "denied", result="不予批准", note="经核查不符合条件")
    assert response.status_code == 200 and response.json()["status"] == "denied"

    withdrawn, _ = await gateway.accepted_case()
    response = await gateway.move(withdrawn, "withdrawn", who="clerk", note="申请人撤回")
    assert response.status_code == 200 and response.json()["clock"]["stopped"] is True


async def test_etag_and_if_match(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    first = await gateway.get(application_id, who="officer")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    response = await gateway.move(application_id, "in_review", if_match='"someone-else.1"')
    assert response.status_code == 412
    assert (await gateway.get(application_id)).json()["status"] == "accepted"
    response = await gateway.move(application_id, "in_review", if_match=etag)
    assert response.status_code == 200, response.text
    new_etag = response.headers["etag"]
    assert new_etag != etag
    assert (await gateway.get(application_id, who="officer")).headers["etag"] == new_etag
    # The old ETag is stale now, whatever the move.
    response = await gateway.move(application_id, "special_procedure", note="x", if_match=etag)
    assert response.status_code == 412
    response = await gateway.move(application_id, "special_procedure", note="公示", if_match=f"W/{new_etag}")
    assert response.status_code == 200


async def test_concurrent_moves_one_wins(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    results = await asyncio.gather(*(gateway.move(application_id, "in_review") for _ in range(4)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 1 and set(codes) <= {200, 409}, [r.text for r in results]
    view = (await gateway.get(application_id)).json()
    assert statuses(view) == ["draft", "accepted", "in_review"]


async def test_scope_out_of_scope_is_404(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    missing = "0" * 32
    for who in ("ps_officer", "other_clerk", "community_clerk"):
        out_of_scope = await gateway.get(application_id, who=who)
        nonexistent = await gateway.get(missing, who=who)
        assert out_of_scope.status_code == nonexistent.status_code == 404
        assert out_of_scope.json()["title"] == nonexistent.json()["title"]
        assert (await gateway.move(application_id, "in_review", who=who)).status_code == 404
    # A system token reads status with its status:read scope (tests/gateway/lifecycle/test_system_access.py).
    for who in ("clerk", "officer", "supervisor", "admin", "system"):
        assert (await gateway.get(application_id, who=who)).status_code == 200


async def test_queue_sorted_by_deadline_with_due_filters(gateway: Gateway) -> None:
    calendar = provide_lifecycle(context_of(gateway.app)).calendar
    today = today_local()
    ids = [(await gateway.accepted_case())[0] for _ in range(3)]
    # Make the first overdue and the second due soon (13 of 15 working days used), straight in the database.
    overdue_deadline = today - dt.timedelta(days=3)
    due_soon_deadline = calendar.deadline(today, 2).date
    async with gateway.db.transaction() as conn:
        await conn.execute(update(applications).where(applications.c.id == ids[0]).values(deadline=overdue_deadline))
        await conn.execute(update(applications).where(applications.c.id == ids[1]).values(deadline=due_soon_deadline))
    # Another department's case, accepted the same way, must not show in this officer's queue.
    citizen = gateway.citizen("resident_id_card")
    other = (await gateway.create(gateway.body(citizen, item=ONE_CERT_ITEM, accept=True))).json()["id"]

    queue = (await gateway.client.get("/api/v1/applications", headers=gateway.auth("officer"))).json()
    listed = [e["id"] for e in queue["items"]]
    assert listed == ids and queue["total"] == 3 and other not in listed
    assert queue["items"][0]["clock"]["overdue"] is True
    assert queue["items"][0]["applicant_name"].count("*") >= 1

    response = await gateway.client.get("/api/v1/applications?due=overdue", headers=gateway.auth("officer"))
    assert [e["id"] for e in response.json()["items"]] == [ids[0]]
    response = await gateway.client.get("/api/v1/applications?due=soon", headers=gateway.auth("officer"))
    assert [e["id"] for e in response.json()["items"]] == [ids[1]]
    response = await gateway.client.get(
        "/api/v1/applications", params={"status": "in_review"}, headers=gateway.auth("officer")
    )
    assert response.json()["items"] == []
    response = await gateway.client.get(
        "/api/v1/applications", params={"status": "accepted,in_review", "limit": 2}, headers=gateway.auth("officer")
    )
    body = response.json()
    assert len(body["items"]) == 2 and body["total"] == 3
    bad = await gateway.client.get("/api/v1/applications?status=done", headers=gateway.auth("officer"))
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"
    bad = await gateway.client.get("/api/v1/applications?due=later", headers=gateway.auth("officer"))
    assert bad.status_code == 400
    # The other department's officer sees only that case; the supervisor everything; a clerk of another unit nothing.
    ms = (await gateway.client.get("/api/v1/applications", headers=gateway.auth("ms_officer"))).json()
    assert [e["id"] for e in ms["items"]] == [other]
    everything = (await gateway.client.get("/api/v1/applications", headers=gateway.auth("supervisor"))).json()
    assert everything["total"] == 4
    nothing = (await gateway.client.get("/api/v1/applications", headers=gateway.auth("other_clerk"))).json()
    assert nothing["total"] == 0

    summary = await gateway.client.get("/api/v1/supervision/summary", headers=gateway.auth("supervisor"))
    assert summary.status_code == 200, summary.text
    rows = {(r["item_code"], r["unit"]): r for r in summary.json()["rows"]}
    care = rows[(CARE_ITEM, STREET)]
    assert care["total"] == 3 and care["by_status"] == {"accepted": 3}
    assert care["overdue"] == 1 and care["due_soon"] == 1 and care["open"] == 3
    assert rows[(ONE_CERT_ITEM, STREET)]["total"] == 1
    assert summary.json()["totals"]["total"] == 4
    assert (await gateway.client.get("/api/v1/supervision/summary", headers=gateway.auth("officer"))).status_code == 403
    filtered = await gateway.client.get(
        "/api/v1/supervision/summary", params={"department": "medical_security"}, headers=gateway.auth("admin")
    )
    assert [r["item_code"] for r in filtered.json()["rows"]] == [ONE_CERT_ITEM]


async def test_queue_pages_run_across_cases_without_a_deadline(gateway: Gateway) -> None:
    """The queue reads cases with a deadline and those without (drafts) separately; paging through it with any page
    size gives the one order: earliest deadline first, then creation, cases without a deadline last by creation."""
    today = today_local()
    accepted = [(await gateway.accepted_case())[0] for _ in range(3)]
    drafts = []
    for _ in range(2):
        created = await gateway.create(gateway.body(gateway.citizen("resident_id_card")))
        assert created.status_code == 201, created.text
        drafts.append(created.json()["id"])
    # Deadlines out of creation order, two of them equal (creation breaks the tie).
    async with gateway.db.transaction() as conn:
        for application_id, days in zip(accepted, (9, 4, 4), strict=True):
            await conn.execute(
                update(applications)
                .where(applications.c.id == application_id)
                .values(deadline=today + dt.timedelta(days=days))
            )
    async with gateway.db.read() as conn:
        rows = list(await conn.execute(select(applications).where(applications.c.id.in_(accepted + drafts))))
    assert sum(r.deadline is None for r in rows) == 2
    naive = [r.id for r in sorted(rows, key=lambda r: (r.deadline is None, r.deadline or today, r.created_at))]
    assert naive[:3] == [accepted[1], accepted[2], accepted[0]] and set(naive[3:]) == set(drafts)

    whole = (await gateway.client.get("/api/v1/applications", headers=gateway.auth("officer"))).json()
    assert [e["id"] for e in whole["items"]] == naive and whole["total"] == 5
    for size in (1, 2, 3, 4):
        paged: list[str] = []
        for offset in range(0, 7, size):
            page = (
                await gateway.client.get(
                    "/api/v1/applications", params={"limit": size, "offset": offset}, headers=gateway.auth("officer")
                )
            ).json()
            assert page["total"] == 5 and len(page["items"]) == max(0, min(size, 5 - offset))
            paged += [e["id"] for e in page["items"]]
        assert paged == naive, size
    # A status filter keeps the order within what it selects.
    only_accepted = (
        await gateway.client.get(
            "/api/v1/applications",
            params={"status": "accepted", "limit": 2, "offset": 1},
            headers=gateway.auth("officer"),
        )
    ).json()
    assert [e["id"] for e in only_accepted["items"]] == naive[1:3] and only_accepted["total"] == 3
