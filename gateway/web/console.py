"""``/console``: the staff console — sign-in, the clerk's filing, the officer's queue, the supervisor's dashboard,
and the printable notices. Thin: every decision is the domain services' (intake, lifecycle, tracking), called
directly with the session's `Principal`, exactly as the API calls them.

Nothing personal appears in a URL: the item search takes item names, cases are addressed by id, and the
applicant's data travel only in POST bodies. Pages showing a case are ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.params import FromPath, FromQuery
from litestar.response import ServerSentEvent, Template

from catalog.calendar import local_time
from gateway.cases.machine import OPEN, STATUS_NAMES
from gateway.clients import parse_address
from gateway.context import context_of
from gateway.events.stream import channels_of, events_for
from gateway.events.types import EVENT_TYPES
from gateway.evidence.schemas import CommitMaterial, VerifyMaterial
from gateway.identity.auth import EXCLUDE_KEY
from gateway.identity.principal import Role
from gateway.intake.schemas import ApplicantIn, CreateApplication
from gateway.lifecycle.schemas import ApplicationView, Queue, SummaryRow, TransitionIn
from gateway.problems import Conflict, FieldError, NotFound, ProblemError, ServiceUnavailable, Unprocessable
from gateway.reports import charts
from gateway.reports.controllers import XLSX
from gateway.reports.deps import provide_reports
from gateway.reports.exports import to_csv, to_xlsx
from gateway.reports.periods import Period, check_start, trailing
from gateway.storage.metadata import utcnow
from gateway.tracking.schemas import CloseRectification
from gateway.web import staff
from gateway.web.notices import NOTICE_KINDS, notice_context
from gateway.web.rendering import page, redirect
from gateway.web.sessions import SESSION_COOKIE, SIGN_IN_COOKIE, StaffSession

#: Open statuses shown in an officer's queue.
_QUEUE_STATUSES = sorted(OPEN)
#: How often the queue refreshes itself (seconds) until the event stream is wired in (`console.js`).
QUEUE_REFRESH_SECONDS = 30
#: The console's live stream (``data-events`` on the queue): the API's case events in the session's scope
#: (`gateway.events.stream`), authenticated by the session cookie. `console.js` refreshes the queue on each event
#: and falls back to the periodic refresh while the stream is down.
EVENTS_URL = "/console/events"


def over_tls(request: Request[Any, Any, Any]) -> bool:
    """Served over TLS: directly, or through a trusted proxy that says so (``X-Forwarded-Proto: https``)."""
    if request.url.scheme == "https":
        return True
    proxies = context_of(request.app).trusted_proxies
    peer = parse_address(request.client.host) if request.client else None
    if proxies and peer is not None and proxies.trusts(peer):
        return request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"
    return False


def _cookie(request: Request[Any, Any, Any], key: str, value: str, *, max_age: int | None = None) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=over_tls(request),
        max_age=max_age,
    )


def _base(session: StaffSession, **extra: Any) -> dict[str, Any]:
    principal = session.principal
    return {
        "session": session,
        "csrf": session.csrf,
        "role": principal.role.value,
        "role_name": staff.ROLE_NAMES.get(principal.role, principal.role.value),
        "status_names": STATUS_NAMES,
        "errors": {},
        "message": None,
    } | extra


def _commitments(request: Request[Any, Any, Any], item_code: str) -> dict[str, str]:
    """The commitment text (告知承诺) the catalog allows in place of each material of an item, by material key."""
    item = context_of(request.app).catalog.item(item_code)
    return {m.key: m.commitment for m in item.materials if m.commitment} if item is not None else {}


def _unit_name(request: Request[Any, Any, Any], code: str | None) -> str:
    if not code:
        return ""
    unit = context_of(request.app).catalog.unit(code)
    return unit.name if unit else code


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False
    opt = {EXCLUDE_KEY: True}  # noqa: RUF012 - Litestar layer API: the console signs in with its own cookie

    # -- sign-in / sign-out ---------------------------------------------------------------------------------
    @get("", name="web:console")
    async def home(self, request: Request[Any, Any, Any], q: FromQuery[str] = "", due: FromQuery[str] = "") -> Template:
        session = await staff.sessions(context_of(request.app)).resolve(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return self._sign_in_page(request, staff.safe_return(request.query_params.get("next")))
        role = session.principal.role
        if role is Role.CLERK:
            return await self._clerk_home(request, session, q[:50])
        if role is Role.OFFICER:
            return await self._queue_page(request, session, due)
        return await self._supervision_page(request, session)

    def _sign_in_page(self, request: Request[Any, Any, Any], next_path: str, *, failed: bool = False) -> Template:
        token = secrets.token_urlsafe(24)
        response = page(
            "console/sign_in.html",
            {"sign_in_csrf": token, "next": next_path, "failed": failed},
            status_code=401 if failed else 200,
            private=True,
        )
        response.cookies.append(_cookie(request, SIGN_IN_COOKIE, token, max_age=1800))
        return response

    @post("/sign-in", status_code=303)
    async def sign_in(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        sent, expected = staff.text(form, "csrf", 100), request.cookies.get(SIGN_IN_COOKIE, "")
        if not sent or not expected or not secrets.compare_digest(sent, expected):
            raise staff.CsrfRejected
        next_path = staff.safe_return(staff.text(form, "next", 200))
        opened = await staff.sessions(context_of(request.app)).open(staff.text(form, "token", 200))
        if opened is None:
            return self._sign_in_page(request, next_path, failed=True)
        secret, _ = opened
        response = redirect(next_path)
        response.cookies.append(_cookie(request, SESSION_COOKIE, secret))
        response.cookies.append(_cookie(request, SIGN_IN_COOKIE, "", max_age=0))
        return response

    @post("/sign-out", status_code=303)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Response[None]:
        await staff.posted(request)
        await staff.sessions(context_of(request.app)).close(request.cookies.get(SESSION_COOKIE))
        response = redirect("/console")
        response.cookies.append(_cookie(request, SESSION_COOKIE, "", max_age=0))
        return response

    # -- clerk: find an item, enter the applicant, upload, accept ------------------------------------------
    async def _clerk_home(self, request: Request[Any, Any, Any], session: StaffSession, q: str) -> Template:
        catalog = context_of(request.app).catalog
        today = local_time(utcnow()).date()
        results = [i for i in catalog.search(q, limit=40) if i.is_offered(today)][:15] if q.strip() else []
        drafts = await staff.lifecycle(request).queue(session.principal, statuses=["draft"], limit=50)
        recent = await staff.lifecycle(request).queue(session.principal, statuses=_QUEUE_STATUSES, limit=20)
        return page(
            "console/clerk.html",
            _base(session, q=q, results=results, drafts=drafts.items, queue=recent),
            private=True,
        )

    @get("/items/{code:str}/new")
    async def new_application(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        session = await staff.current(request)
        staff.require(session, Role.CLERK)
        item = context_of(request.app).catalog.item(code[:64])
        if item is None:
            raise NotFound("No such item.")
        return page("console/applicant.html", _base(session, item=item, values={}), private=True)

    @post("/applications", status_code=303)
    async def create(self, request: Request[Any, Any, Any]) -> Response[Any]:
        session, form = await staff.posted(request)
        staff.require(session, Role.CLERK)
        item_code = staff.text(form, "item_code", 64)
        values = {k: staff.text(form, k, 200) for k in ("id_number", "name", "phone", "address")}
        body = CreateApplication(
            item_code=item_code,
            applicant=ApplicantIn(
                id_number=values["id_number"],
                name=values["name"],
                phone=values["phone"],
                address=values["address"] or None,
            ),
            consent=form.get("consent") == "yes",
        )
        try:
            created = await staff.intake(request).create(session.principal, body)
        except Unprocessable as exc:
            item = context_of(request.app).catalog.item(item_code)
            if item is None:
                raise
            errors = {e.field.removeprefix("applicant."): _say(e.message) for e in exc.errors or []}
            return page(
                "console/applicant.html",
                _base(session, item=item, values=values, errors=errors, message=_say(exc.detail)),
                status_code=422,
                private=True,
            )
        return redirect(f"/console/applications/{created.id}")

    @post("/applications/{application_id:str}/materials/{key:str}", status_code=303)
    async def upload(
        self, request: Request[Any, Any, Any], application_id: FromPath[str], key: FromPath[str]
    ) -> Response[None]:
        session, form = await staff.posted(request)
        staff.require(session, Role.CLERK)
        application_id = staff.check_id(application_id)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("Choose a file.", errors=[])
        try:
            content = await upload.read()
        finally:
            await upload.close()
        await staff.intake(request).upload(session.principal, application_id, key[:64], content)
        return redirect(f"/console/applications/{application_id}#materials")

    @post("/applications/{application_id:str}/materials/{key:str}/verification", status_code=303)
    async def verify_material(
        self, request: Request[Any, Any, Any], application_id: FromPath[str], key: FromPath[str]
    ) -> Response[None]:
        """The clerk saw the original of an uploaded scan: level C → B (kept for reuse at any window)."""
        session, form = await staff.posted(request)
        staff.require(session, Role.CLERK)
        application_id = staff.check_id(application_id)
        if staff.text(form, "original_seen") != "yes":
            raise Unprocessable("Tick that the original was seen.", errors=[])
        await staff.material_evidence(request).verify(
            session.principal, application_id, key[:64], VerifyMaterial(original_seen=True)
        )
        return redirect(f"/console/applications/{application_id}#materials")

    @post("/applications/{application_id:str}/materials/{key:str}/commitment", status_code=303)
    async def commit_material(
        self, request: Request[Any, Any, Any], application_id: FromPath[str], key: FromPath[str]
    ) -> Response[None]:
        """The applicant signed the catalog's commitment in place of the material (告知承诺, level D)."""
        session, form = await staff.posted(request)
        staff.require(session, Role.CLERK)
        application_id = staff.check_id(application_id)
        if staff.text(form, "agreed") != "yes":
            raise Unprocessable("Tick that the applicant signed the commitment.", errors=[])
        await staff.material_evidence(request).commit(
            session.principal, application_id, key[:64], CommitMaterial(agreed=True)
        )
        return redirect(f"/console/applications/{application_id}#materials")

    @post("/applications/{application_id:str}/accept", status_code=303)
    async def accept(self, request: Request[Any, Any, Any], application_id: FromPath[str]) -> Response[None]:
        session, _ = await staff.posted(request)
        staff.require(session, Role.CLERK)
        application_id = staff.check_id(application_id)
        accepted = await staff.intake(request).accept(session.principal, application_id)
        await staff.sessions(context_of(request.app)).park_receipt(session, application_id, accepted.query_code)
        return redirect(f"/console/applications/{application_id}/receipt")

    # -- the case, for every role ----------------------------------------------------------------------------
    @get("/applications/{application_id:str}")
    async def case(self, request: Request[Any, Any, Any], application_id: FromPath[str]) -> Template:
        session = await staff.current(request)
        view, _ = await staff.lifecycle(request).get(session.principal, staff.check_id(application_id))
        return self._case_page(request, session, view)

    def _case_page(
        self, request: Request[Any, Any, Any], session: StaffSession, view: ApplicationView, **extra: Any
    ) -> Template:
        status_code = extra.pop("status_code", 200)
        notices = [
            (kind, title)
            for kind, (title, statuses) in NOTICE_KINDS.items()
            if view.status in statuses and view.tracking_number and kind != "receipt"
        ]
        if view.status in NOTICE_KINDS["receipt"][1]:
            notices.insert(0, ("receipt", NOTICE_KINDS["receipt"][0]))
        if view.status == "not_accepted":
            notices = [("refusal", NOTICE_KINDS["refusal"][0])]
        return page(
            "console/case.html",
            _base(
                session,
                view=view,
                notices=notices,
                window=_unit_name(request, view.filing_unit),
                handling=_unit_name(request, view.handling_unit),
                complete=all(m.state in ("prefilled", "provided") for m in view.materials if m.required),
                commitments=_commitments(request, view.item.code),
                **extra,
            ),
            status_code=status_code,
            private=True,
        )

    @post("/applications/{application_id:str}/transitions", status_code=303)
    async def transition(self, request: Request[Any, Any, Any], application_id: FromPath[str]) -> Response[Any]:
        session, form = await staff.posted(request)
        application_id = staff.check_id(application_id)
        to = staff.text(form, "to", 32)
        note, result = staff.text(form, "note").strip(), staff.text(form, "result").strip()
        service = staff.lifecycle(request)
        try:
            body = TransitionIn(to=to, note=note or None, result=result or None)  # type: ignore[arg-type]
            await service.transition(session.principal, application_id, body, None)
        except (Unprocessable, Conflict) as exc:
            view, _ = await service.get(session.principal, application_id)
            message = _say(exc.detail) + "".join(f" {_say(e.message)}" for e in exc.errors or [])
            return self._case_page(request, session, view, message=message, status_code=exc.status)
        return redirect(f"/console/applications/{application_id}")

    @post("/applications/{application_id:str}/applicant")
    async def applicant(self, request: Request[Any, Any, Any], application_id: FromPath[str]) -> Template:
        """Personal data only through the purpose prompt: the read is audited with the purpose given."""
        session, form = await staff.posted(request)
        application_id = staff.check_id(application_id)
        purpose = staff.text(form, "purpose", 300)
        key = staff.text(form, "material", 64)
        service = staff.personal_data(request)
        try:
            if key:
                certificate = await service.certificate(session.principal, application_id, key, purpose)
                return page(
                    "console/certificate.html",
                    _base(session, record=certificate, application_id=application_id),
                    private=True,
                )
            record = await service.applicant(session.principal, application_id, purpose)
        except Unprocessable as exc:
            view, _ = await staff.lifecycle(request).get(session.principal, application_id)
            message = "查看个人信息须说明用途（2 至 200 字）。" + " ".join(_say(e.message) for e in exc.errors or [])
            return self._case_page(request, session, view, message=message, status_code=422)
        return page("console/applicant_record.html", _base(session, record=record), private=True)

    @post("/applications/{application_id:str}/scan", status_code=200)
    async def scan(self, request: Request[Any, Any, Any], application_id: FromPath[str]) -> Response[Any]:
        """A material's scan as a download, through the same purpose prompt (audited with the purpose given)."""
        session, form = await staff.posted(request)
        application_id = staff.check_id(application_id)
        purpose = staff.text(form, "purpose", 300)
        key = staff.text(form, "material", 64)
        try:
            found = await staff.personal_data(request).scan(session.principal, application_id, key, purpose)
        except Unprocessable as exc:
            view, _ = await staff.lifecycle(request).get(session.principal, application_id)
            message = "查看扫描件须说明用途（2 至 200 字）。" + " ".join(_say(e.message) for e in exc.errors or [])
            return self._case_page(request, session, view, message=message, status_code=422)
        return Response(
            found.content,
            media_type=found.content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{found.filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    # -- notices ---------------------------------------------------------------------------------------------
    @get("/applications/{application_id:str}/receipt")
    async def receipt(self, request: Request[Any, Any, Any], application_id: FromPath[str]) -> Template:
        return await self._notice(request, application_id, "receipt")

    @get("/applications/{application_id:str}/notices/{kind:str}")
    async def notice(
        self, request: Request[Any, Any, Any], application_id: FromPath[str], kind: FromPath[str]
    ) -> Template:
        if kind not in NOTICE_KINDS:
            raise NotFound("No such notice.")
        return await self._notice(request, application_id, kind)

    async def _notice(self, request: Request[Any, Any, Any], application_id: str, kind: str) -> Template:
        session = await staff.current(request)
        view, _ = await staff.lifecycle(request).get(session.principal, staff.check_id(application_id))
        if view.status not in NOTICE_KINDS[kind][1] or (kind != "refusal" and not view.tracking_number):
            raise NotFound("This notice does not exist for the case in its current status.")
        code = None
        if kind == "receipt" and session.principal.role is Role.CLERK:
            code = await staff.sessions(context_of(request.app)).take_receipt(session, view.id)
        context = notice_context(
            kind, view, context_of(request.app).catalog, base_url=str(request.base_url), query_code=code
        )
        return page("console/notice.html", _base(session, **context), private=True)

    # -- officer: the queue ----------------------------------------------------------------------------------
    @get("/queue")
    async def queue(self, request: Request[Any, Any, Any], due: FromQuery[str] = "") -> Template:
        session = await staff.current(request)
        return await self._queue_page(request, session, due)

    @get("/queue/rows")
    async def queue_rows(self, request: Request[Any, Any, Any], due: FromQuery[str] = "") -> Template:
        """The queue's table alone: `console.js` swaps it in every `QUEUE_REFRESH_SECONDS`."""
        session = await staff.current(request)
        queue = await self._queue(request, session, due)
        return page("console/queue_rows.html", _base(session, queue=queue, due=due), private=True)

    async def _queue(self, request: Request[Any, Any, Any], session: StaffSession, due: str) -> Queue:
        wanted = due if due in ("soon", "overdue") else None
        return await staff.lifecycle(request).queue(session.principal, statuses=_QUEUE_STATUSES, due=wanted, limit=200)

    async def _queue_page(self, request: Request[Any, Any, Any], session: StaffSession, due: str) -> Template:
        queue = await self._queue(request, session, due)
        return page(
            "console/queue.html",
            _base(
                session,
                queue=queue,
                due=due,
                refresh=QUEUE_REFRESH_SECONDS,
                events_url=EVENTS_URL,
                event_types=" ".join(EVENT_TYPES),
            ),
            private=True,
        )

    @get("/events", media_type="text/event-stream")
    async def events(self, request: Request[Any, Any, Any]) -> ServerSentEvent:
        """The case events of the session's scope, live (the queue reloads its rows on each)."""
        session = await staff.current(request)
        channels = channels_of(request.app)
        if channels is None:
            raise ServiceUnavailable("The live stream is not available in this process.")
        return ServerSentEvent(events_for(channels, session.principal), headers={"Cache-Control": "no-store"})

    @get("/reports/{period:str}")
    async def report(
        self,
        request: Request[Any, Any, Any],
        period: FromPath[str],
        start: FromQuery[str] = "",
        format: FromQuery[str] = "",
    ) -> Response[Any]:
        """A weekly or monthly report of the session's scope: the page with its charts, or its CSV / XLSX file —
        the API's report (`gateway.reports`) behind the console's session instead of a bearer token."""
        session = await staff.current(request)
        if period == "weekly":
            kind: Period = "weekly"
        elif period == "monthly":
            kind = "monthly"
        else:
            raise NotFound("No such report.")
        try:
            first = dt.date.fromisoformat(start)
        except ValueError:
            raise Unprocessable(
                "start must be a date (YYYY-MM-DD).", errors=[FieldError("start", "a date: YYYY-MM-DD")]
            ) from None
        check_start(kind, first)
        reports = provide_reports(context_of(request.app))
        document = (await reports.report(session.principal, kind, first, None, None)).document()
        name = f"report-{period}-{first.isoformat()}-{document['unit']}"
        if format == "csv":
            return Response(
                to_csv(document),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store"},
            )
        if format == "xlsx":
            return Response(
                to_xlsx(document),
                media_type=XLSX,
                headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"', "Cache-Control": "no-store"},
            )
        history = await reports.totals_trend(kind, trailing(kind, first), document["unit"])
        svgs = [charts.trend_chart(kind, history), charts.department_bars(document), charts.unit_bars(document)]
        return Response(
            charts.report_page(document, svgs),
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    # -- supervisor: the dashboard ---------------------------------------------------------------------------
    @get("/supervision")
    async def supervision(self, request: Request[Any, Any, Any]) -> Template:
        session = await staff.current(request)
        return await self._supervision_page(request, session)

    async def _supervision_page(self, request: Request[Any, Any, Any], session: StaffSession) -> Template:
        staff.require(session, Role.SUPERVISOR, Role.ADMIN)
        summary = await staff.supervision(request).summary(session.principal)
        catalog = context_of(request.app).catalog
        overdue = await staff.lifecycle(request).queue(session.principal, statuses=_QUEUE_STATUSES, due="overdue")
        rectifications = await staff.rectifications(request).list(session.principal, status="all")
        today = local_time(utcnow()).date()
        monday = today.toordinal() - today.weekday()
        return page(
            "console/supervision.html",
            _base(
                session,
                summary=summary,
                by_item=_group(summary.rows, lambda r: f"{r.item_code} {r.item_name}"),
                by_unit=_group(summary.rows, lambda r: _unit_name(request, r.unit)),
                by_department=_group(summary.rows, lambda r: catalog.department_name(r.department)),
                overdue=overdue.items,
                rectifications=rectifications.items,
                week=type(today).fromordinal(monday - 7).isoformat(),
                month=today.replace(day=1).isoformat(),
            ),
            private=True,
        )

    @post("/rectifications/{rectification_id:str}/close", status_code=303)
    async def close_rectification(
        self, request: Request[Any, Any, Any], rectification_id: FromPath[str]
    ) -> Response[None]:
        session, form = await staff.posted(request)
        staff.require(session, Role.SUPERVISOR, Role.ADMIN)
        outcome = staff.text(form, "outcome").strip()
        await staff.rectifications(request).close(
            session.principal, rectification_id[:64], CloseRectification(outcome=outcome)
        )
        return redirect("/console/supervision#rectifications")


def _group(rows: list[SummaryRow], key: Any) -> list[tuple[str, dict[str, int]]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "open": 0, "overdue": 0, "due_soon": 0})
    for row in rows:
        bucket = totals[key(row)]
        for name in ("total", "open", "overdue", "due_soon"):
            bucket[name] += getattr(row, name)
    return sorted(totals.items(), key=lambda kv: (-kv[1]["overdue"], -kv[1]["total"], kv[0]))


#: The services' English messages a clerk sees most, said in Chinese (others are shown as they are).
_SAID = {
    "is required": "必填",
    "must be true": "须经申请人同意查询其电子证照",
    "check character": "身份证号码校验位不正确",
    "The application is not complete.": "申请信息不完整，请按提示修改。",
    "Required materials are missing.": "必要材料不齐，不能受理。",
}


def _say(message: str) -> str:
    for english, chinese in _SAID.items():
        if english in message:
            return f"{chinese}（{message}）" if chinese != message else chinese
    return message


def problem_page(request: Request[Any, Any, Any], exc: ProblemError) -> Template:
    """A console or status page's answer to a problem the services raised: its status, said in words."""
    return page(
        "error.html",
        {"status": exc.status, "detail": exc.detail, "errors": exc.errors or []},
        status_code=exc.status,
        private=True,
        headers=exc.headers,
    )


__all__ = ["EVENTS_URL", "QUEUE_REFRESH_SECONDS", "ConsoleController", "problem_page"]
