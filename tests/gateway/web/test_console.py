"""The staff console over HTTP (SQLite and PostgreSQL): sign-in for a session cookie, CSRF on every form, idle
timeout and sign-out; the clerk files, uploads, accepts and prints the receipt (query code once); the officer works
the queue; personal data only through the purpose prompt; another unit's receipt is 404."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import msgspec
from sqlalchemy import select, update

from gateway.clients import TrustedProxies
from gateway.context import context_of
from gateway.storage.metadata import utcnow
from gateway.web.tables import staff_sessions
from tests.dbutil import asgi_client
from tests.gateway.intake.fixtures import CARE_ITEM, PDF, Gateway
from tests.gateway.web.pages import hidden, sign_in

_CASE_URL = re.compile(r"/console/applications/([0-9a-f]{32})")


async def file_draft(gateway: Gateway, csrf: str) -> str:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    response = await gateway.client.post(
        "/console/applications",
        data={
            "csrf": csrf,
            "item_code": CARE_ITEM,
            "id_number": citizen.id_number,
            "name": citizen.name,
            "phone": citizen.phone,
            "consent": "yes",
        },
    )
    assert response.status_code == 303, response.text
    match = _CASE_URL.search(response.headers["location"])
    assert match is not None
    return match.group(1)


async def test_sign_in_sets_a_strict_http_only_cookie_and_signs_out(gateway: Gateway) -> None:
    form = await gateway.client.get("/console")
    assert 'name="token"' in form.text and form.headers["cache-control"] == "no-store"
    bad = await gateway.client.post(
        "/console/sign-in", data={"csrf": hidden(form.text, "csrf"), "next": "/console", "token": "ow_wrong"}
    )
    assert bad.status_code == 401 and "令牌无效" in bad.text
    form = await gateway.client.get("/console")
    ok = await gateway.client.post(
        "/console/sign-in",
        data={"csrf": hidden(form.text, "csrf"), "next": "/console", "token": gateway.tokens["clerk"]},
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/console"
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("ow_console="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/console" in lowered
    assert "secure" not in lowered  # plain HTTP in the test; Secure is set over TLS
    assert gateway.tokens["clerk"] not in cookie
    home = await gateway.client.get("/console")
    assert "窗口受理" in home.text
    csrf = hidden(home.text, "csrf")
    # Sign-out needs the CSRF token too; afterwards the cookie no longer opens anything.
    assert (await gateway.client.post("/console/sign-out", data={"csrf": "forged"})).status_code == 403
    out = await gateway.client.post("/console/sign-out", data={"csrf": csrf})
    assert out.status_code == 303
    assert 'name="token"' in (await gateway.client.get("/console")).text
    async with gateway.db.read() as conn:
        assert (await conn.execute(select(staff_sessions))).first() is None


async def test_sign_in_form_needs_its_csrf_cookie(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/console/sign-in", data={"csrf": "x", "next": "/console", "token": gateway.tokens["clerk"]}
    )
    assert response.status_code == 403 and "表单已失效" in response.text


async def test_clerk_files_uploads_accepts_and_prints_the_code_once(gateway: Gateway) -> None:
    csrf = await sign_in(gateway, "clerk")
    search = await gateway.client.get("/console", params={"q": "hlbt"})
    assert "重度残疾人护理补贴" in search.text and f"/console/items/{CARE_ITEM}/new" in search.text
    form = await gateway.client.get(f"/console/items/{CARE_ITEM}/new")
    assert 'data-check="citizen-id"' in form.text
    application_id = await file_draft(gateway, csrf)
    case = await gateway.client.get(f"/console/applications/{application_id}")
    assert case.status_code == 200
    assert "电子证照已调取" in case.text and "签名已验证" in case.text
    assert 'id="accept" disabled' in case.text  # the application form is still missing
    upload = await gateway.client.post(
        f"/console/applications/{application_id}/materials/application_form",
        data={"csrf": csrf},
        files={"file": ("form.pdf", PDF, "application/pdf")},
    )
    assert upload.status_code == 303, upload.text
    accepted = await gateway.client.post(f"/console/applications/{application_id}/accept", data={"csrf": csrf})
    assert accepted.status_code == 303
    assert accepted.headers["location"] == f"/console/applications/{application_id}/receipt"
    receipt = await gateway.client.get(accepted.headers["location"])
    assert receipt.status_code == 200 and "受理通知书" in receipt.text
    code = re.search(r'id="query-code">([2-9A-Z]{8})<', receipt.text)
    assert code is not None
    number = re.search(r'id="notice-number">(\d{20}[0-9A-Z])<', receipt.text)
    assert number is not None
    assert "<svg" in receipt.text and receipt.headers["referrer-policy"] == "no-referrer"
    # The code works, and is printed only once.
    track = await gateway.client.post("/track", data={"tracking_number": number.group(1), "code": code.group(1)})
    assert track.status_code == 200
    again = await gateway.client.get(accepted.headers["location"])
    assert again.status_code == 200 and 'id="query-code"' not in again.text and code.group(1) not in again.text


async def test_tampered_csrf_is_403_and_changes_nothing(gateway: Gateway) -> None:
    csrf = await sign_in(gateway, "clerk")
    application_id = await file_draft(gateway, csrf)
    before = await gateway.counts()
    for data in ({"csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}, {}):
        upload = await gateway.client.post(
            f"/console/applications/{application_id}/materials/application_form",
            data=data,
            files={"file": ("form.pdf", PDF, "application/pdf")},
        )
        assert upload.status_code == 403
        accept = await gateway.client.post(f"/console/applications/{application_id}/accept", data=data)
        assert accept.status_code == 403 and "表单已失效" in accept.text
    assert await gateway.counts() == before
    view = (await gateway.get(application_id)).json()
    assert view["status"] == "draft"
    assert {m["key"]: m["state"] for m in view["materials"]}["application_form"] == "missing"


async def test_expired_session_returns_to_sign_in_and_the_draft_is_kept(gateway: Gateway) -> None:
    csrf = await sign_in(gateway, "clerk")
    application_id = await file_draft(gateway, csrf)
    idle = dt.timedelta(minutes=gateway.settings.console_idle_minutes + 1)
    async with gateway.db.transaction() as conn:
        await conn.execute(update(staff_sessions).values(seen_at=utcnow() - idle))
    response = await gateway.client.post(f"/console/applications/{application_id}/accept", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/console?next=/console/applications/{application_id}"
    page = await gateway.client.get(response.headers["location"])
    assert "登录已超时" in page.text and hidden(page.text, "next") == f"/console/applications/{application_id}"
    again = await gateway.client.post(
        "/console/sign-in",
        data={"csrf": hidden(page.text, "csrf"), "next": hidden(page.text, "next"), "token": gateway.tokens["clerk"]},
    )
    assert again.headers["location"] == f"/console/applications/{application_id}"
    assert (await gateway.get(application_id)).json()["status"] == "draft"
    home = await gateway.client.get("/console")
    assert f"/console/applications/{application_id}" in home.text and "继续办理" in home.text


async def test_sign_in_never_returns_outside_the_console(gateway: Gateway) -> None:
    form = await gateway.client.get("/console")
    response = await gateway.client.post(
        "/console/sign-in",
        data={"csrf": hidden(form.text, "csrf"), "next": "https://evil.example/", "token": gateway.tokens["clerk"]},
    )
    assert response.headers["location"] == "/console"


async def test_receipt_of_another_units_case_is_404(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    await sign_in(gateway, "other_clerk")
    for path in ("", "/receipt", "/notices/completion"):
        response = await gateway.client.get(f"/console/applications/{application_id}{path}")
        assert response.status_code == 404, path
        assert "未找到" in response.text
    assert (await gateway.client.get("/console/applications/not-an-id/receipt")).status_code == 404


async def test_officer_queue_transitions_and_completion_notice(gateway: Gateway) -> None:
    application_id, acceptance = await gateway.accepted_case()
    csrf = await sign_in(gateway, "officer")
    queue = await gateway.client.get("/console")
    assert acceptance["tracking_number"] in queue.text and 'id="queue"' in queue.text
    rows = await gateway.client.get("/console/queue/rows")
    assert 'id="queue-rows"' in rows.text and "<html" not in rows.text
    # A refusal needs a note: the page says so and nothing changes.
    for to, extra in [("in_review", {}), ("approved", {"result": "准予，按月发放"})]:
        moved = await gateway.client.post(
            f"/console/applications/{application_id}/transitions", data={"csrf": csrf, "to": to, **extra}
        )
        assert moved.status_code == 303, moved.text
    incomplete = await gateway.client.post(
        f"/console/applications/{application_id}/transitions", data={"csrf": csrf, "to": "approved"}
    )
    assert incomplete.status_code == 409
    view = (await gateway.get(application_id)).json()
    assert view["status"] == "approved" and view["result"] == "准予，按月发放"
    notice = await gateway.client.get(f"/console/applications/{application_id}/notices/completion")
    assert notice.status_code == 200 and "办结通知书" in notice.text and "准予，按月发放" in notice.text
    assert 'id="query-code"' not in notice.text


async def test_personal_data_only_through_the_purpose_prompt(gateway: Gateway) -> None:
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    application_id, _ = await gateway.accepted_case()
    csrf = await sign_in(gateway, "officer")
    case = await gateway.client.get(f"/console/applications/{application_id}")
    assert citizen.id_number not in case.text and citizen.phone not in case.text
    reads = await gateway.audited("personal_data.read")
    missing = await gateway.client.post(f"/console/applications/{application_id}/applicant", data={"csrf": csrf})
    assert missing.status_code == 422 and "须说明用途" in missing.text
    assert await gateway.audited("personal_data.read") == reads
    shown = await gateway.client.post(
        f"/console/applications/{application_id}/applicant", data={"csrf": csrf, "purpose": "审核护理补贴申请"}
    )
    assert shown.status_code == 200 and citizen.id_number in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert await gateway.audited("personal_data.read") == reads + 1
    # The uploaded application form: a download button with the same prompt, the read audited.
    assert 'action="/console/applications/' + application_id + '/scan"' in case.text
    no_purpose = await gateway.client.post(
        f"/console/applications/{application_id}/scan", data={"csrf": csrf, "material": "application_form"}
    )
    assert no_purpose.status_code == 422 and "须说明用途" in no_purpose.text
    scan = await gateway.client.post(
        f"/console/applications/{application_id}/scan",
        data={"csrf": csrf, "material": "application_form", "purpose": "核对申请表签字"},
    )
    assert scan.status_code == 200 and scan.content.startswith(b"%PDF-")
    assert scan.headers["content-disposition"] == 'attachment; filename="application_form.pdf"'
    assert scan.headers["cache-control"] == "no-store"
    assert await gateway.audited("personal_data.read") == reads + 2
    forged = await gateway.client.post(
        f"/console/applications/{application_id}/scan",
        data={"csrf": "forged", "material": "application_form", "purpose": "核对申请表签字"},
    )
    assert forged.status_code == 403


async def test_correction_and_refusal_notices(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    for to, note in [("in_review", None), ("correction_required", "户口簿复印件不清晰")]:
        assert (await gateway.move(application_id, to, note=note)).status_code == 200
    await sign_in(gateway, "clerk")
    correction = await gateway.client.get(f"/console/applications/{application_id}/notices/correction")
    assert correction.status_code == 200 and "一次性告知" in correction.text and "户口簿复印件不清晰" in correction.text
    assert (await gateway.client.get(f"/console/applications/{application_id}/notices/refusal")).status_code == 404
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    draft = (await gateway.create(gateway.body(citizen))).json()["id"]
    refused = await gateway.move(draft, "not_accepted", who="clerk", note="不属于本窗口受理范围")
    assert refused.status_code == 200, refused.text
    refusal = await gateway.client.get(f"/console/applications/{draft}/notices/refusal")
    assert refusal.status_code == 200 and "不属于本窗口受理范围" in refusal.text and "行政复议" in refusal.text


async def test_sessions_live_in_the_database_for_every_process(gateway: Gateway) -> None:
    """A second application on the same database (another process) knows the session."""
    from gateway.app import create_app

    await sign_in(gateway, "supervisor")
    cookie = gateway.client.cookies.get("ow_console", path="/console")
    assert cookie
    second = create_app(msgspec.structs.replace(gateway.settings))
    async with asgi_client(second) as other:
        other.cookies.set("ow_console", cookie, path="/console")
        response = await other.get("/console")
        assert response.status_code == 200 and "督查工作台" in response.text
        assert "/console/reports/weekly" in response.text


async def test_supervisor_sees_counts_overdue_and_closes_a_rectification(gateway: Gateway) -> None:
    application_id, acceptance = await gateway.accepted_case()
    for to, extra in [("in_review", {}), ("approved", {"result": "准予"})]:
        assert (await gateway.move(application_id, to, **extra)).status_code == 200
    number, code = acceptance["tracking_number"], acceptance["query_code"]
    await gateway.client.post(
        "/track/evaluation", data={"tracking_number": number, "code": code, "level": "1", "comment": "态度差"}
    )
    csrf = await sign_in(gateway, "supervisor")
    home = await gateway.client.get("/console")
    assert "按事项" in home.text and "按办理单位" in home.text and "按部门" in home.text
    assert "态度差" in home.text and "办结整改" in home.text
    rid = re.search(r"/console/rectifications/([0-9a-f]+)/close", home.text)
    assert rid is not None
    closed = await gateway.client.post(
        f"/console/rectifications/{rid.group(1)}/close", data={"csrf": csrf, "outcome": "已约谈窗口人员并回访"}
    )
    assert closed.status_code == 303
    assert "已整改：已约谈窗口人员并回访" in (await gateway.client.get("/console")).text


async def test_escaping_markup_and_bidi_overrides_in_a_name(gateway: Gateway) -> None:
    csrf = await sign_in(gateway, "clerk")
    hostile = "<img src=x onerror=alert(1)>\u202egnp.exe"
    citizen = gateway.citizen("resident_id_card", "disability_certificate", "household_register")
    response = await gateway.client.post(
        "/console/applications",
        data={
            "csrf": csrf,
            "item_code": CARE_ITEM,
            "id_number": citizen.id_number,
            "name": hostile,
            "phone": citizen.phone,
            "consent": "yes",
        },
    )
    # Whether or not the service takes such a name, the page shows it only as text.
    text = (
        response.text if response.status_code != 303 else (await gateway.client.get(response.headers["location"])).text
    )
    assert "<img src=x" not in text and "\u202e" not in text
    assert "&lt;img" in text or "&lt;" in text


async def test_pages_need_no_bearer_token_but_the_api_still_does(gateway: Gateway) -> None:
    assert (await gateway.client.get("/api/v1/applications")).status_code == 401
    assert (await gateway.client.get("/console/queue")).status_code == 303


async def test_static_assets_and_offline_swagger(gateway: Gateway) -> None:
    swagger = await gateway.client.get("/schema/swagger")
    assert swagger.status_code == 200
    assert "cdn" not in swagger.text.lower() and "https://" not in swagger.text
    assert "<script>" not in swagger.text and "/static/swagger/swagger-ui-bundle.js" in swagger.text
    csp = swagger.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', swagger.text):
        response = await gateway.client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["x-content-type-options"] == "nosniff"
    assert (await gateway.client.get("/static/swagger/LICENSE")).status_code == 200
    assert (await gateway.client.get("/static/../app.py")).status_code == 404


async def test_cookie_is_secure_over_tls_or_behind_a_trusted_proxy(gateway: Gateway) -> None:
    def secure(response: httpx.Response) -> bool:
        cookies = response.headers.get_list("set-cookie")
        assert cookies
        return all("; secure" in c.lower() for c in cookies)

    transport = httpx.ASGITransport(app=gateway.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as tls:
        assert secure(await tls.get("/console"))
    # Plain HTTP, and an untrusted peer claiming TLS: not Secure (the browser would not send it back).
    assert not secure(await gateway.client.get("/console"))
    assert not secure(await gateway.client.get("/console", headers={"X-Forwarded-Proto": "https"}))
    # The test client's peer is 127.0.0.1: trusted as a proxy, its word about TLS counts.
    context_of(gateway.app).trusted_proxies = TrustedProxies.parse("127.0.0.0/8")
    assert secure(await gateway.client.get("/console", headers={"X-Forwarded-Proto": "https"}))


async def test_clerk_marks_an_upload_verified_against_the_original(gateway: Gateway) -> None:
    csrf = await sign_in(gateway, "clerk")
    application_id = await file_draft(gateway, csrf)
    upload = await gateway.client.post(
        f"/console/applications/{application_id}/materials/application_form",
        data={"csrf": csrf},
        files={"file": ("form.pdf", PDF, "application/pdf")},
    )
    assert upload.status_code == 303, upload.text
    case = await gateway.client.get(f"/console/applications/{application_id}")
    action = f"/console/applications/{application_id}/materials/application_form/verification"
    assert action in case.text and "可信等级 C" in case.text
    # The box must be ticked, and the CSRF token must hold: neither refusal changes the level.
    assert (await gateway.client.post(action, data={"csrf": csrf})).status_code == 422
    assert (await gateway.client.post(action, data={"csrf": "forged", "original_seen": "yes"})).status_code == 403
    levels = {m["key"]: m["level"] for m in (await gateway.get(application_id)).json()["materials"]}
    assert levels["application_form"] == "C"
    verified = await gateway.client.post(action, data={"csrf": csrf, "original_seen": "yes"})
    assert verified.status_code == 303 and verified.headers["location"].endswith("#materials")
    view = (await gateway.get(application_id)).json()
    material = next(m for m in view["materials"] if m["key"] == "application_form")
    assert material["level"] == "B" and material["level_set_by"]
    page = await gateway.client.get(f"/console/applications/{application_id}")
    assert "可信等级 B" in page.text and action not in page.text


async def test_supervisor_opens_reports_from_the_console_with_the_session(gateway: Gateway) -> None:
    application_id, _ = await gateway.accepted_case()
    await sign_in(gateway, "supervisor")
    home = await gateway.client.get("/console")
    link = re.search(r'href="(/console/reports/weekly\?start=(\d{4}-\d{2}-\d{2}))"', home.text)
    assert link is not None, "the dashboard links the weekly report"
    monday = dt.date.fromisoformat(link.group(2)) + dt.timedelta(days=7)  # this week: the case was accepted today
    page = await gateway.client.get("/console/reports/weekly", params={"start": monday.isoformat()})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and page.headers["cache-control"] == "no-store"
    csv = await gateway.client.get("/console/reports/weekly", params={"start": monday.isoformat(), "format": "csv"})
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    assert "attachment" in csv.headers["content-disposition"]
    xlsx = await gateway.client.get(
        "/console/reports/monthly", params={"start": monday.replace(day=1).isoformat(), "format": "xlsx"}
    )
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    # A start that is not a Monday: 422 naming start; an unknown period: 404; no session: back to sign-in.
    bad = await gateway.client.get(
        "/console/reports/weekly", params={"start": (monday + dt.timedelta(days=1)).isoformat()}
    )
    assert bad.status_code == 422 and "start" in bad.text
    assert (await gateway.client.get("/console/reports/daily", params={"start": monday.isoformat()})).status_code == 404
    async with asgi_client(gateway.app) as stranger:
        assert (await stranger.get("/console/reports/weekly", params={"start": monday.isoformat()})).status_code == 303
    assert application_id
