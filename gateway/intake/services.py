"""One-window intake (一窗受理): create an application, prefill its certificate-sourced materials, take uploads,
accept it (tracking number, query code, deadline), and purge drafts nobody submitted.

Every write is one transaction holding the change, its status history and its audit record; every refusal happens
before the transaction, so a 4xx leaves the database as it was. Personal data is encrypted before it reaches a
statement and masked in everything returned. A request with an ``Idempotency-Key`` also commits its durable
idempotency record — the answer the route sends — in that transaction (`gateway.stores.IdempotentRequest`), so a
retry after a crash replays the answer instead of filing, accepting or storing again.

Exceptions raised (all `gateway.problems` families, answered as problem+json)::

    Unprocessable (422)         a field is wrong (``item_code``, ``applicant.id_number``, ``consent``, …) or
                                required materials are missing (``materials.<key>``)
    NotFound (404)              no such application in the caller's scope, or no such material key
    Conflict (409)              the application's status does not allow the operation (``allowed`` lists what does)
    PreconditionFailed (412)    a stale ``If-Match``
    PayloadTooLarge (413) / UnsupportedMediaType (415)   uploads
    Forbidden (403)             the clerk's token is bound to a unit that is not a street or community window
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import WorkingCalendar, local_date, local_time
from catalog.catalog import Catalog
from catalog.codes import citizen_id_problem, normalise_citizen_id
from catalog.models import Item, Unit
from gateway import audit
from gateway.cases import clock, numbers
from gateway.cases.access import audit_case, check_if_match, load_application, load_material
from gateway.cases.clock import clock_columns
from gateway.cases.history import record_status, record_statuses, status_row
from gateway.cases.machine import allowed_targets
from gateway.cases.tables import application_history, application_materials, applications
from gateway.cases.views import (
    ApplicantView,
    FileView,
    ItemRef,
    MaterialView,
    load_materials,
    material_view,
    missing_required,
)
from gateway.certificates.lookup import CertificateService, Outcome, PendingRecord
from gateway.certificates.store import Holder, holder_of
from gateway.events import outbox, types
from gateway.evidence.checks import open_checks
from gateway.evidence.levels import level_problems, needed_levels
from gateway.evidence.store import EvidenceStore
from gateway.identity.principal import Principal, Role
from gateway.intake import files, reuse, uploads
from gateway.intake.schemas import (
    Acceptance,
    ApplicantIn,
    ApplicationCreated,
    CreateApplication,
    MaterialUploaded,
    PurgeResult,
)
from gateway.privacy import FieldCipher, mask_id_number, mask_name, mask_phone, mask_text
from gateway.problems import Conflict, FieldError, Forbidden, PayloadTooLarge, Unprocessable
from gateway.problems import UnsupportedMediaType as UnsupportedMedia
from gateway.settings import Settings
from gateway.storage.database import Database, locked
from gateway.storage.faults import database_unavailable, log_failed_round
from gateway.storage.metadata import new_id, utcnow
from gateway.stores import IdempotentRequest

log = logging.getLogger("onewindow.intake")

#: Where applications live in the API (the ``Location`` of a new one).
APPLICATIONS_PATH = "/api/v1/applications"
#: Statuses in which the window may still add or replace scans.
UPLOAD_STATUSES = ("draft", "correction_required")
#: An unreferenced upload younger than this is spared by the orphan sweep (an upload writes its file before it
#: commits the reference).
FILE_GRACE_SECONDS = 300.0

_INSERT_APPLICATION = applications.insert()
_INSERT_MATERIALS = application_materials.insert()
#: The acceptance's update of a draft, conditional on the version read (its SET columns come with the parameters).
_ACCEPT = update(applications).where(
    applications.c.id == bindparam("row_id"), applications.c.version == bindparam("row_version")
)

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NAME_MAX = 50
ADDRESS_MAX = 200
PURPOSE_MAX = 200


# --- input checks ----------------------------------------------------------------------------------------
def normalise_phone(raw: str) -> str:
    """Digits only, without a +86 / 0086 prefix (spaces, hyphens and brackets are how people write them)."""
    digits = re.sub(r"[\s\-()（）]", "", raw.strip())
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    return digits


def phone_problem(phone: str) -> str | None:
    if not phone:
        return "is required: a mobile number (11 digits) or a landline with its area code"
    if not phone.isdigit():
        return "may contain only digits (and +86, spaces or hyphens)"
    if _MOBILE.match(phone) or _LANDLINE.match(phone):
        return None
    return "is not a mobile number (1xxxxxxxxxx) or a landline with area code (0xxx-xxxxxxx)"


def _text_problem(value: str, limit: int, what: str) -> str | None:
    if not value:
        return f"is required: the applicant's {what}"
    if len(value) > limit:
        return f"is too long ({len(value)} characters, at most {limit})"
    if _CONTROL.search(value):
        return "contains control characters"
    return None


class ValidApplicant(msgspec.Struct, frozen=True, kw_only=True):
    id_number: str
    name: str
    phone: str
    address: str | None
    grid: str | None


def validate_applicant(
    applicant: ApplicantIn | None, *, catalog: Catalog, window: Unit | None, today: dt.date, errors: list[FieldError]
) -> ValidApplicant | None:
    if applicant is None:
        errors.append(FieldError("applicant", "is required: {id_number, name, phone}"))
        return None
    id_number = normalise_citizen_id(applicant.id_number)
    if not id_number:
        errors.append(FieldError("applicant.id_number", "is required: the 18-character citizen ID number"))
    else:
        problem = citizen_id_problem(id_number, today=today)
        if problem is not None:
            errors.append(FieldError("applicant.id_number", problem.message))
    name = " ".join(applicant.name.split())
    if (msg := _text_problem(name, NAME_MAX, "name as on the ID card")) is not None:
        errors.append(FieldError("applicant.name", msg))
    phone = normalise_phone(applicant.phone)
    if (msg := phone_problem(phone)) is not None:
        errors.append(FieldError("applicant.phone", msg))
    address = None
    if applicant.address is not None:
        address = " ".join(applicant.address.split()) or None
        if address is not None and (msg := _text_problem(address, ADDRESS_MAX, "address")) is not None:
            errors.append(FieldError("applicant.address", msg))
    grid = applicant.grid.strip() if applicant.grid else None
    if grid:
        unit = catalog.unit(grid)
        if unit is None or unit.level != "grid":
            errors.append(FieldError("applicant.grid", f"{grid!r} is not a grid (网格) code"))
        elif window is not None and not _grid_under(catalog, unit, window):
            errors.append(FieldError("applicant.grid", f"grid {grid} is not under this window's unit {window.code}"))
    elif window is not None and window.level == "community":
        # A community with a single grid (网格): the applicant's grid is that one.
        only = [u for u in catalog.children(window.code) if u.level == "grid"]
        grid = only[0].code if len(only) == 1 else None
    return ValidApplicant(id_number=id_number, name=name, phone=phone, address=address, grid=grid or None)


def _grid_under(catalog: Catalog, grid: Unit, window: Unit) -> bool:
    parent = catalog.unit(grid.parent) if grid.parent else None
    if parent is None:
        return False
    return parent.code == window.code or parent.parent == window.code


def route(catalog: Catalog, window: Unit, item: Item) -> tuple[str | None, str | None]:
    """``(handling unit, problem)``: where a window's filing of ``item`` is handled.

    A street window handles street items itself. A community window handles its own community items; a street
    item filed there (代办), or a community item accepted on behalf of a street item, goes to the parent street,
    and both windows see it.
    """
    if window.level == "street":
        if item.level == "street":
            return window.code, None
        return None, f"{item.code} is a community item: file it at a community window"
    # community window
    street = window.parent
    if item.level == "street" or item.on_behalf_of:
        if street is None or catalog.unit(street) is None:
            return None, f"community {window.code} has no parent street to hand the case to"
        return street, None
    return window.code, None


def application_location(application_id: str) -> str:
    """The URL path of an application (the ``Location`` of ``POST /api/v1/applications``)."""
    return f"{APPLICATIONS_PATH}/{application_id}"


# --- the service ------------------------------------------------------------------------------------------
class IntakeService:
    """Intake operations over one database, catalog, calendar, cipher and certificate lookup."""

    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        calendar: WorkingCalendar,
        cipher: FieldCipher,
        settings: Settings,
        certificates: CertificateService | None = None,
        idempotency: IdempotentRequest | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.catalog = catalog
        self.calendar = calendar
        self.cipher = cipher
        self.settings = settings
        self.certificates = certificates
        #: The request's Idempotency-Key (None without one): its record commits in the write transaction.
        self.idempotency = idempotency
        self.now = now
        self.evidence = EvidenceStore(cipher)

    # -- helpers ----------------------------------------------------------------------------------------
    async def _record(
        self, conn: AsyncConnection, result: msgspec.Struct, headers: Mapping[str, str] | None = None
    ) -> None:
        """The request's durable idempotency record, in ``conn``'s transaction (last, after every check)."""
        if self.idempotency is not None:
            await self.idempotency.record(conn, result, headers=headers)

    def _window(self, principal: Principal) -> Unit:
        unit = self.catalog.unit(principal.unit) if principal.unit else None
        if principal.role is not Role.CLERK or unit is None or unit.level not in ("street", "community"):
            raise Forbidden("Applications are filed by a clerk at a street or community window.")
        return unit

    # -- create ---------------------------------------------------------------------------------------------
    async def create(self, principal: Principal, body: CreateApplication) -> ApplicationCreated:
        """File an application (status draft), prefilled from certificates; with ``accept`` also accept it."""
        now = self.now()
        today = local_date(now)
        window = self._window(principal)
        errors: list[FieldError] = []
        item = self.catalog.item(body.item_code.strip()) if body.item_code.strip() else None
        if not body.item_code.strip():
            errors.append(FieldError("item_code", "is required: the code of a published service item"))
        elif item is None:
            errors.append(FieldError("item_code", f"no service item {body.item_code!r} in the catalog"))
        elif not item.is_offered(today):
            why = "is not published" if item.status != "published" else "is not valid today"
            errors.append(FieldError("item_code", f"item {item.code} {why}; it cannot be filed"))
            item = None
        handling_unit: str | None = None
        if item is not None:
            handling_unit, problem = route(self.catalog, window, item)
            if problem is not None:
                errors.append(FieldError("item_code", problem))
            errors.extend(reuse.commitment_errors(item, body.commitments))
        applicant = validate_applicant(body.applicant, catalog=self.catalog, window=window, today=today, errors=errors)
        if body.consent is not True:
            errors.append(
                FieldError("consent", "must be true: the applicant agrees that departments' records are consulted")
            )
        purpose = mask_text(" ".join((body.purpose or "").split()))
        if len(purpose) > PURPOSE_MAX:
            errors.append(FieldError("purpose", f"is too long (at most {PURPOSE_MAX} characters)"))
        if errors or item is None or applicant is None or handling_unit is None:
            raise Unprocessable("The application cannot be filed as it is.", errors=errors)
        purpose = purpose or f"办理{item.name}"

        application_id = new_id()
        # The blind index of the ID number, once: the certificate lookup, its audit records and the application row.
        holder = holder_of(self.cipher, applicant.id_number)
        views, pending = await self._prefill(item, holder, application_id, principal)
        # The lookup's certificates and audit records are written in the application's transaction (one write
        # transaction per filing); when that transaction does not happen or fails, in one of their own.
        recorded = False
        try:
            created = await self._file(
                body, item, window, handling_unit, applicant, holder, purpose, principal, now, application_id, views,
                pending,
            )  # fmt: skip
            recorded = True
        finally:
            if pending is not None and not recorded and self.certificates is not None:
                await self.certificates.record_alone(pending)
        return created

    async def _file(
        self,
        body: CreateApplication,
        item: Item,
        window: Unit,
        handling_unit: str,
        applicant: ValidApplicant,
        holder: Holder,
        purpose: str,
        principal: Principal,
        now: dt.datetime,
        application_id: str,
        views: list[MaterialView],
        pending: PendingRecord | None,
    ) -> ApplicationCreated:
        """`create` after the certificate lookup: evidence reuse, completeness, and the one write transaction."""
        # Verified copies and the district's own certificates for what the departments did not supply; then the
        # commitments the applicant signed (level D).
        reused = await reuse.prefill(
            self.db, self.evidence, item, views, holder, local_date(now), mask_name(applicant.name), principal, now
        )
        reuse.apply_commitments(item, views, body.commitments, principal, now)
        if body.accept:
            self._require_complete(views, item)

        values = self._application_values(
            application_id, item, window, handling_unit, applicant, holder.index, purpose, principal, now
        )
        async with self.db.transaction() as conn:
            if pending is not None and self.certificates is not None:
                await self.certificates.record(conn, pending)
            # The audit records (written at the commit, in this order): the pulls above, the reuse, the filing, then
            # the acceptance.
            await reuse.record(conn, reused, holder=holder, application_id=application_id, principal=principal)
            await audit_case(
                conn,
                principal,
                application_id,
                "application.created",
                {
                    "item": item.code,
                    "filing_unit": window.code,
                    "handling_unit": handling_unit,
                    "materials": {v.key: v.state for v in views},
                    "levels": {v.key: v.level for v in views if v.level},
                },
            )
            acceptance = None
            if body.accept:
                # Created and accepted at once: the row is inserted accepted, right after the day's tracking number
                # (whose turn, on PostgreSQL, also orders the writes to the department's case counts).
                row: Any = SimpleNamespace(**values)
                acceptance = await self._accept_in(conn, row, item, principal, now, views, inserting=values)
            else:
                await conn.execute(_INSERT_APPLICATION, values)
            if views:
                await conn.execute(
                    _INSERT_MATERIALS, [self._material_values(application_id, i, v, now) for i, v in enumerate(views)]
                )
            # Created in this transaction: its history starts here, with the acceptance as the second entry (one
            # statement for both).
            step: dict[str, Any] = {"application_id": application_id, "principal": principal, "at": now}
            history = [status_row(status="draft", from_status=None, position=1, **step)]
            if body.accept:
                history.append(status_row(status="accepted", from_status="draft", position=2, **step))
            await record_statuses(conn, history)
            created = self._created(application_id, item, views, window, handling_unit, applicant, acceptance, now)
            await self._record(conn, created, {"Location": application_location(application_id)})
        return created

    def _created(
        self,
        application_id: str,
        item: Item,
        views: list[MaterialView],
        window: Unit,
        handling_unit: str,
        applicant: ValidApplicant,
        acceptance: Acceptance | None,
        now: dt.datetime,
    ) -> ApplicationCreated:
        created = ApplicationCreated(
            id=application_id,
            status="accepted" if acceptance else "draft",
            item=ItemRef(
                code=item.code,
                name=item.name,
                department=item.department,
                department_name=self.catalog.department_name(item.department),
                promised_days=item.promised_days,
            ),
            materials=views,
            filing_unit=window.code,
            handling_unit=handling_unit,
            grid=applicant.grid,
            applicant=ApplicantView(
                name=mask_name(applicant.name),
                id_number=mask_id_number(applicant.id_number),
                phone=mask_phone(applicant.phone),
            ),
            created_at=local_time(now),
            missing=[m.key for m in missing_required(views)],
        )
        if acceptance is not None:
            created.tracking_number = acceptance.tracking_number
            created.query_code = acceptance.query_code
            created.deadline = acceptance.deadline
            created.deadline_estimated = acceptance.deadline_estimated
        return created

    def _application_values(
        self,
        application_id: str,
        item: Item,
        window: Unit,
        handling_unit: str,
        applicant: ValidApplicant,
        id_index: str,
        purpose: str,
        principal: Principal,
        now: dt.datetime,
    ) -> dict[str, Any]:
        def enc(column: str, value: str) -> str:
            return self.cipher.encrypt(value, table="applications", column=column, row_id=application_id)

        return {
            "id": application_id,
            "item_code": item.code,
            "item_name": item.name,
            "item_version": item.version,
            "department": item.department,
            "filing_unit": window.code,
            "handling_unit": handling_unit,
            "grid": applicant.grid,
            "status": "draft",
            "version": 1,
            "applicant_id_number": enc("applicant_id_number", applicant.id_number),
            "applicant_id_index": id_index,
            "applicant_name": enc("applicant_name", applicant.name),
            "applicant_name_masked": mask_name(applicant.name),
            "applicant_id_number_masked": mask_id_number(applicant.id_number),
            "applicant_phone": enc("applicant_phone", applicant.phone),
            "applicant_phone_masked": mask_phone(applicant.phone),
            "applicant_address": enc("applicant_address", applicant.address) if applicant.address else None,
            "consent": True,
            "purpose": purpose,
            "created_by": principal.actor,
            "created_at": now,
            "updated_at": now,
            "deadline_estimated": False,
        }

    def _material_values(
        self, application_id: str, position: int, view: MaterialView, now: dt.datetime
    ) -> dict[str, Any]:
        row_id = new_id()
        return {
            "id": row_id,
            "application_id": application_id,
            "key": view.key,
            "position": position,
            "name": view.name,
            "required": view.required,
            "source": view.source,
            "certificate_type": view.certificate_type,
            "state": view.state,
            "reason": view.reason,
            "certificate": msgspec.to_builtins(view.certificate) if view.certificate else None,
            "file_sha256": None,
            "file_type": None,
            "file_size": None,
            "updated_at": now,
            **reuse.level_values(view),
        }

    async def _prefill(
        self, item: Item, holder: Holder, application_id: str, principal: Principal
    ) -> tuple[list[MaterialView], PendingRecord | None]:
        """Each material with its state; certificate-sourced ones looked up in one parallel, budgeted call. Also
        what the lookup has to write (the caller writes it in its transaction)."""
        types = list(item.certificate_types)
        outcomes: Mapping[str, Outcome] = {}
        pending: PendingRecord | None = None
        failure: str | None = None
        if types:
            if self.certificates is None:
                failure = "the certificate service is not configured"
            else:
                try:
                    result = await self.certificates.lookup(
                        holder,
                        types,
                        purpose=f"application:{application_id}",
                        actor=principal.actor,
                        budget_seconds=self.settings.lookup_budget_seconds,
                        record_in_caller=True,
                    )
                    outcomes = result.outcomes
                    pending = result.pending
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the window keeps working: the clerk can still upload scans
                    if database_unavailable(exc):
                        raise  # our own database, not the departments': the filing cannot be stored either (503)
                    log.error("certificate lookup failed for application %s: %s", application_id, type(exc).__name__)
                    failure = "the certificate service failed; upload a scan instead"
        out: list[MaterialView] = []
        for m in item.materials:
            view = MaterialView(
                key=m.key,
                name=m.name,
                required=m.required,
                source=m.source,
                certificate_type=m.certificate_type,
                state="missing",
            )
            if m.source == "certificate" and m.certificate_type:
                outcome = outcomes.get(m.certificate_type)
                if outcome is None:
                    view.state = "unavailable"
                    view.reason = failure or "the department did not answer within the time budget"
                elif outcome.state == "found" and outcome.certificate is not None:
                    view.state = "prefilled"
                    view.certificate = outcome.certificate
                    reuse.set_level(view, "A", "system", self.now())
                elif outcome.state == "not_found":
                    view.state = "missing"
                    view.reason = outcome.reason or "the department holds no such certificate for the applicant"
                else:
                    view.state = "unavailable"
                    view.reason = outcome.reason or "the department system is unavailable"
            out.append(view)
        return out, pending

    @staticmethod
    def _require_complete(views: list[MaterialView], item: Item | None = None) -> None:
        missing = missing_required(views)
        if not missing and item is not None and (below := level_problems(item, views)):
            raise Unprocessable(
                f"{len(below)} material(s) below the trust level the catalog asks for acceptance.",
                errors=below,
                extra={"levels": needed_levels(item, [e.field.removeprefix("materials.") for e in below])},
            )
        if missing:
            raise Unprocessable(
                f"{len(missing)} required material(s) missing: the application cannot be accepted yet.",
                errors=[
                    FieldError(
                        f"materials.{m.key}",
                        f"{m.name} is required"
                        + (f" ({m.reason})" if m.reason else "")
                        + ": upload a scan (PDF, JPEG or PNG)",
                    )
                    for m in missing
                ],
                extra={"missing": [m.key for m in missing]},
            )

    # -- accept ---------------------------------------------------------------------------------------------
    async def accept(self, principal: Principal, application_id: str, if_match: str | None = None) -> Acceptance:
        """Accept a complete draft: tracking number, query code (shown once) and deadline, in one transaction."""
        now = self.now()
        self._window(principal)
        # Refuse what can be refused without the write lock first, so a 4xx never waits for a writer's turn.
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            views = [material_view(m) for m in await load_materials(conn, row.id)]
            self._check_acceptable(row, if_match, views)
            item = self._offered_item(row, local_date(now))
            self._require_complete(views, item)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal, for_update=True)
            views = [material_view(m) for m in await load_materials(conn, row.id)]
            self._check_acceptable(row, if_match, views, item)
            acceptance = await self._accept_in(conn, row, item, principal, now, views)
            await self._record(conn, acceptance)
        return acceptance

    def _check_acceptable(
        self, row: Row[Any], if_match: str | None, materials: list[MaterialView], item: Item | None = None
    ) -> None:
        check_if_match(row, if_match)
        if row.status != "draft":
            allowed = allowed_targets(row.status)
            raise Conflict(
                f"Only a draft can be accepted; this application is {row.status}.",
                extra={"current_status": row.status, "allowed": allowed},
            )
        self._require_complete(materials, item)

    def _offered_item(self, row: Row[Any], today: dt.date) -> Item:
        item = self.catalog.item(row.item_code)
        if item is None or not item.is_offered(today):
            raise Unprocessable(
                f"Item {row.item_code} is no longer offered; the draft cannot be accepted.",
                errors=[FieldError("item_code", f"item {row.item_code} is not published and valid today")],
            )
        return item

    async def _accept_in(
        self,
        conn: AsyncConnection,
        row: Row[Any],
        item: Item,
        principal: Principal,
        now: dt.datetime,
        materials: list[MaterialView] | None = None,
        *,
        inserting: dict[str, Any] | None = None,
    ) -> Acceptance:
        """Accept ``row`` inside ``conn``'s transaction. ``inserting``: the draft's column values when the caller
        creates the case in this transaction — it is then inserted already accepted (one statement, not an insert
        and an update), and the caller writes both history entries."""
        accepted_on = local_date(now)
        sequence = await numbers.next_sequence(conn, accepted_on)
        tracking = numbers.tracking_number(accepted_on, sequence)
        code = numbers.new_query_code()
        state = clock.start(self.calendar, accepted_on, item.promised_days)
        accepted = {
            "status": "accepted",
            "version": row.version + 1,
            "updated_at": now,
            "accepted_at": now,
            "accepted_on": accepted_on,
            "tracking_number": tracking,
            "query_code_hash": numbers.query_code_hash(self.cipher, tracking, code),
            **clock_columns(state),
        }
        if inserting is not None:
            await conn.execute(_INSERT_APPLICATION, {**inserting, **accepted})
        else:
            result = await conn.execute(_ACCEPT, {"row_id": row.id, "row_version": row.version, **accepted})
            if result.rowcount != 1:
                raise Conflict("The application changed while it was being accepted; reload it and try again.")
            await record_status(
                conn, application_id=row.id, status="accepted", from_status="draft", principal=principal, at=now
            )
        await outbox.emit(
            conn,
            types.APPLICATION_ACCEPTED,
            row,
            {"status": "accepted", "tracking_number": tracking, "deadline": state.deadline},
            at=now,
        )
        await audit_case(
            conn,
            principal,
            row.id,
            "application.accepted",
            {
                "tracking_number": tracking,
                "deadline": state.deadline.isoformat(),
                "deadline_estimated": state.deadline_estimated,
                "promised_days": item.promised_days,
            },
        )
        # 告知承诺: each material accepted under a commitment gets its check (事后核查).
        await open_checks(
            conn, calendar=self.calendar, row=row, item=item, materials=materials or [], principal=principal, now=now
        )
        return Acceptance(
            id=row.id,
            tracking_number=tracking,
            query_code=code,
            status="accepted",
            deadline=state.deadline,
            deadline_estimated=state.deadline_estimated,
            accepted_at=local_time(now),
            promised_days=item.promised_days,
        )

    # -- uploads ---------------------------------------------------------------------------------------------
    async def upload(
        self,
        principal: Principal,
        application_id: str,
        key: str,
        content: bytes,
        if_match: str | None = None,
    ) -> MaterialUploaded:
        """Store a scan for one material (state → provided) while the application is a draft or needs correction.

        The material's previous scan is deleted after the upload commits, unless another material references it
        (`gateway.intake.files`).
        """
        now = self.now()
        self._window(principal)
        if len(content) > self.settings.upload_max_bytes:
            raise PayloadTooLarge(
                f"The file is {len(content)} bytes; at most {self.settings.upload_max_bytes} are accepted.",
                extra={"max_bytes": self.settings.upload_max_bytes},
            )
        if not content:
            raise Unprocessable("The file is empty.", errors=[FieldError("file", "is empty")])
        media_type = uploads.sniff(content[: uploads.SNIFF_BYTES])
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            material = await load_material(conn, row, key)
            self._check_uploadable(row, if_match)
        if media_type is None:
            raise UnsupportedMedia(
                "The file is not a PDF, JPEG or PNG (checked by its content, not its name).",
                extra={"accepted": list(uploads.ACCEPTED_TYPES)},
            )
        data_dir = self.settings.data_dir
        digest, created = await asyncio.to_thread(uploads.store, data_dir, content, cipher=self.cipher)
        try:
            async with self.db.transaction() as conn:
                row = await load_application(conn, application_id, principal, for_update=True)
                material = await load_material(conn, row, key)
                self._check_uploadable(row, if_match)
                # Under the file's lock: a deletion of the same content that came first is undone here.
                created = await files.hold(conn, data_dir, digest, content, self.cipher) or created
                await conn.execute(
                    update(application_materials)
                    .where(application_materials.c.id == material.id)
                    .values(
                        state="provided",
                        reason=None,
                        file_sha256=digest,
                        file_type=media_type,
                        file_size=len(content),
                        updated_at=now,
                        level="C",
                        level_set_by=principal.actor,
                        level_set_at=now,
                        commitment=None,
                        evidence=None,
                    )
                )
                bumped = await conn.execute(
                    update(applications)
                    .where(applications.c.id == row.id, applications.c.version == row.version)
                    .values(version=row.version + 1, updated_at=now)
                )
                if bumped.rowcount != 1:  # the row lock makes this a second line of defence
                    raise Conflict("The application changed meanwhile; reload it and try again.")
                await audit_case(
                    conn,
                    principal,
                    row.id,
                    "material.uploaded",
                    {"material": key, "sha256": digest, "content_type": media_type, "size": len(content)},
                )
                uploaded = MaterialUploaded(
                    application_id=row.id,
                    key=material.key,
                    name=material.name,
                    required=material.required,
                    source=material.source,
                    certificate_type=material.certificate_type,
                    state="provided",
                    file=FileView(sha256=digest, content_type=media_type, size=len(content)),
                    level="C",
                )
                await self._record(conn, uploaded)
        except BaseException:
            if created:  # nothing we committed refers to the file we wrote; another material may (discard checks)
                await self._discard([digest])
            raise
        replaced = material.file_sha256
        if replaced and replaced != digest:
            await self._discard([replaced])
        return uploaded

    @staticmethod
    def _check_uploadable(row: Row[Any], if_match: str | None) -> None:
        check_if_match(row, if_match)
        if row.status not in UPLOAD_STATUSES:
            raise Conflict(
                f"Materials can be uploaded while the application is a draft or needs correction; it is {row.status}.",
                extra={"current_status": row.status, "allowed": list(UPLOAD_STATUSES)},
            )

    async def _discard(self, digests: list[str]) -> int:
        """Delete the files of ``digests`` no row references any more (after the change committed); a failure is
        logged and left to the orphan sweep."""
        try:
            return await files.discard(self.db, self.settings.data_dir, digests)
        except Exception as exc:
            log.warning("uploads not deleted now (%s); the orphan sweep will", type(exc).__name__)
            return 0

    # -- draft purge -----------------------------------------------------------------------------------------
    async def purge_drafts(
        self, *, now: dt.datetime | None = None, file_grace_seconds: float = FILE_GRACE_SECONDS
    ) -> PurgeResult:
        """Delete drafts untouched for ``draft_retention_hours`` and then their uploads nothing else refers to;
        then sweep orphaned uploads not touched for ``file_grace_seconds``.

        The expired drafts are locked as they are chosen (PostgreSQL), so a draft accepted, uploaded to or purged
        by another process meanwhile is skipped: of concurrent purges one deletes each draft and writes the audit
        record, the others find nothing left.
        """
        now = now or self.now()
        cutoff = now - dt.timedelta(hours=self.settings.draft_retention_hours)
        ids: list[str] = []
        hashes: set[str] = set()
        expired = (applications.c.status == "draft", applications.c.updated_at < cutoff)
        async with self.db.transaction() as conn:
            # In id order: two purges lock the rows they share in the same order, so one waits instead of deadlocking.
            query = select(applications.c.id).where(*expired).order_by(applications.c.id)
            ids = list((await conn.execute(locked(query, conn))).scalars())
            if ids:
                hashes = set(
                    (
                        await conn.execute(
                            select(application_materials.c.file_sha256).where(
                                application_materials.c.application_id.in_(ids),
                                application_materials.c.file_sha256.is_not(None),
                            )
                        )
                    ).scalars()
                )
                # Children first: the result is the same whether or not the database enforces ON DELETE CASCADE.
                await conn.execute(delete(application_history).where(application_history.c.application_id.in_(ids)))
                await conn.execute(delete(application_materials).where(application_materials.c.application_id.in_(ids)))
                await conn.execute(delete(applications).where(applications.c.id.in_(ids), *expired))
                await audit.append(
                    conn,
                    actor="system",
                    action="application.drafts_purged",
                    object_type="application",
                    object_id=f"{len(ids)} drafts",
                    detail={
                        "ids": ids[:500],
                        "count": len(ids),
                        "retention_hours": self.settings.draft_retention_hours,
                    },
                )
        removed = await self._discard(sorted(hashes)) if hashes else 0
        try:
            orphans = await files.sweep(self.db, self.settings.data_dir, grace_seconds=file_grace_seconds)
        except Exception as exc:  # housekeeping: the purge itself committed; the next round sweeps again
            log_failed_round(log, "sweeping orphaned uploads", exc)
            orphans = 0
        if ids or removed or orphans:
            log.info("purged %d drafts and %d of their uploads; swept %d orphaned uploads", len(ids), removed, orphans)
        return PurgeResult(drafts=len(ids), files=removed, orphans=orphans)


__all__ = [
    "APPLICATIONS_PATH",
    "FILE_GRACE_SECONDS",
    "UPLOAD_STATUSES",
    "IntakeService",
    "application_location",
    "normalise_phone",
    "phone_problem",
    "route",
    "validate_applicant",
]
