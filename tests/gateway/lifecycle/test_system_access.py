"""External systems over HTTP (SQLite and PostgreSQL): a `system` token with the `status:read` scope reads cases
past the draft stage, lists them, finds one by tracking number and polls the status-event feed by cursor — with
no personal data and no free text in any answer; without the scope, 403."""

from __future__ import annotations

import json
from typing import Any

import httpx

from catalog.codes import mod37_36_check_char
from demokit.simulators.seed import Citizen
from gateway.identity import create_token
from tests.gateway.intake.fixtures import CARE_ITEM, GRID, ONE_CERT_ITEM, Gateway

ADDRESS = "湖南省湘潭市雨湖区雨湖路街道雨湖社区5栋1单元"


async def accepted(gateway: Gateway, *, skip: int = 0) -> tuple[str, str, Citizen]:
    """A care-subsidy case with an address, accepted: (id, tracking number, citizen)."""
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register", skip=skip)
    created = await gateway.create(gateway.body(citizen, address=ADDRESS, grid=GRID))
    assert created.status_code == 201, created.text
    application_id = str(created.json()["id"])
    assert (await gateway.upload(application_id, "application_form")).status_code == 200
    response = await gateway.accept(application_id)
    assert response.status_code == 200, response.text
    return application_id, str(response.json()["tracking_number"]), citizen


def assert_no_personal_data(response: httpx.Response, *citizens: Citizen) -> None:
    text = response.text
    for citizen in citizens:
        for value in (citizen.id_number, citizen.name, citizen.phone, ADDRESS):
            assert value not in text, f"{value!r} in a system's answer"


async def feed(gateway: Gateway, who: str = "system", **params: Any) -> dict[str, Any]:
    response = await gateway.client.get("/api/v1/status-events", params=params, headers=gateway.auth(who))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_system_reads_a_case_masked_and_without_free_text(gateway: Gateway) -> None:
    application_id, tracking, citizen = await accepted(gateway)
    # Notes are free text: an officer may well name the applicant in one.
    note = f"{citizen.name}的残疾人证需核对原件"
    assert (await gateway.move(application_id, "in_review")).status_code == 200
    assert (await gateway.move(application_id, "correction_required", note=note)).status_code == 200
    staff = (await gateway.get(application_id, who="officer")).json()
    assert note in json.dumps(staff, ensure_ascii=False) and staff["purpose"]

    response = await gateway.get(application_id, who="system")
    assert response.status_code == 200, response.text
    assert_no_personal_data(response, citizen)
    body = response.json()
    assert body["status"] == "correction_required" and body["tracking_number"] == tracking
    assert [h["status"] for h in body["history"]] == ["draft", "accepted", "in_review", "correction_required"]
    assert all(h["note"] is None for h in body["history"])  # the key stays (docs/api.md), the text never
    assert body["purpose"] is None and body["result"] is None  # present as null for every reader, filled for staff
    assert body["applicant"]["name"].count("*") >= 1 and "*" in body["applicant"]["id_number"]
    assert body["allowed_transitions"] == []
    assert body["clock"]["paused"] is True
    # A system reads; it never moves a case.
    assert (await gateway.move(application_id, "in_review", who="system")).status_code == 403


async def test_system_list_and_tracking_number_lookup(gateway: Gateway) -> None:
    first, tracking, citizen = await accepted(gateway)
    second, _, other = await accepted(gateway, skip=1)
    draft = await gateway.create(gateway.body(gateway.citizen("resident_id_card"), item=ONE_CERT_ITEM))
    draft_id = draft.json()["id"]
    # A draft is the window's unfinished work, not yet a case: not shown to systems, like a missing one.
    assert (await gateway.get(draft_id, who="system")).status_code == 404

    response = await gateway.client.get("/api/v1/applications", headers=gateway.auth("system"))
    assert response.status_code == 200, response.text
    assert_no_personal_data(response, citizen, other)
    listed = [e["id"] for e in response.json()["items"]]
    assert set(listed) == {first, second} and response.json()["total"] == 2

    response = await gateway.client.get(
        "/api/v1/applications", params={"tracking_number": tracking.lower()}, headers=gateway.auth("system")
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [e["id"] for e in items] == [first] and items[0]["tracking_number"] == tracking
    assert items[0]["item"]["code"] == CARE_ITEM and items[0]["status"] == "accepted"
    assert_no_personal_data(response, citizen)

    # A well-formed number no case has: an empty list. A malformed one: 400 naming the parameter.
    unknown = tracking[:-7] + "999999"
    unknown += mod37_36_check_char(unknown)
    response = await gateway.client.get(
        "/api/v1/applications", params={"tracking_number": unknown}, headers=gateway.auth("system")
    )
    assert response.status_code == 200 and response.json()["items"] == []
    response = await gateway.client.get(
        "/api/v1/applications", params={"tracking_number": "not-a-number"}, headers=gateway.auth("system")
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "tracking_number"
    # Staff use the same filter within their own scope.
    response = await gateway.client.get(
        "/api/v1/applications", params={"tracking_number": tracking}, headers=gateway.auth("ps_officer")
    )
    assert response.json()["items"] == []


async def test_system_without_the_scope_is_forbidden(gateway: Gateway) -> None:
    application_id, _, _ = await accepted(gateway)
    token, _ = await create_token(gateway.db, role="system", scopes=["certificates:read"])
    gateway.tokens["unscoped_system"] = token
    for path in (f"/api/v1/applications/{application_id}", "/api/v1/applications", "/api/v1/status-events"):
        response = await gateway.client.get(path, headers=gateway.auth("unscoped_system"))
        assert response.status_code == 403, (path, response.text)
        assert "status:read" in response.json()["detail"]
    # The scope never opens personal data.
    response = await gateway.client.get(
        f"/api/v1/applications/{application_id}/applicant", params={"purpose": "核对"}, headers=gateway.auth("system")
    )
    assert response.status_code == 403


async def test_status_feed_in_order_and_resumes_from_the_cursor(gateway: Gateway) -> None:
    start = await feed(gateway)
    assert start["events"] == [] and start["has_more"] is False
    cursor = start["next_after"]

    first, tracking, citizen = await accepted(gateway)
    second, _, other = await accepted(gateway, skip=1)
    assert (await gateway.move(first, "in_review")).status_code == 200
    # Records of other kinds between status changes (a personal-data read) do not disturb the feed.
    read = await gateway.client.get(
        f"/api/v1/applications/{first}/applicant", params={"purpose": "审核"}, headers=gateway.auth("officer")
    )
    assert read.status_code == 200
    assert (await gateway.move(second, "in_review")).status_code == 200
    assert (await gateway.move(first, "special_procedure", note=f"{citizen.name}家庭公示")).status_code == 200
    expected = [
        (first, "draft", "accepted"),
        (second, "draft", "accepted"),
        (first, "accepted", "in_review"),
        (second, "accepted", "in_review"),
        (first, "in_review", "special_procedure"),
    ]

    # Two pages of two, then the rest: nothing missed, nothing repeated, in the order the statuses were reached.
    seen: list[dict[str, Any]] = []
    for _ in range(5):
        response = await gateway.client.get(
            "/api/v1/status-events", params={"after": cursor, "limit": 2}, headers=gateway.auth("system")
        )
        assert response.status_code == 200, response.text
        assert_no_personal_data(response, citizen, other)
        page = response.json()
        seen.extend(page["events"])
        assert page["next_after"] >= cursor
        cursor = page["next_after"]
        if not page["has_more"]:
            break
    assert [(e["application_id"], e.get("from_status"), e["status"]) for e in seen] == expected
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all("note" not in e for e in seen)
    accepted_event = seen[0]
    assert accepted_event["tracking_number"] == tracking and accepted_event["deadline"]
    assert accepted_event["item"]["code"] == CARE_ITEM and accepted_event["status_name"] == "已受理"

    # Polling again from the last cursor: nothing new until something happens, then exactly that.
    again = await feed(gateway, after=cursor)
    assert again["events"] == [] and again["next_after"] == cursor
    assert (await gateway.move(first, "in_review")).status_code == 200
    after_resume = await feed(gateway, after=cursor)
    assert [(e["application_id"], e["status"]) for e in after_resume["events"]] == [(first, "in_review")]
    assert after_resume["events"][0]["deadline"]  # the clock resumed: a new deadline

    # Staff read the feed within their scope: the window sees its drafts too; another department sees nothing.
    window = await feed(gateway, who="clerk")
    assert [e["status"] for e in window["events"]].count("draft") == 2
    assert (await feed(gateway, who="ms_officer"))["events"] == []

    # Bad cursors and page sizes.
    for params in ({"after": -1}, {"limit": 0}, {"limit": 501}):
        response = await gateway.client.get("/api/v1/status-events", params=params, headers=gateway.auth("system"))
        assert response.status_code == 400, (params, response.text)
