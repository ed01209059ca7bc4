"""The intake's certificate lookup: store first, then a live pull in parallel, all within one time budget.

``await service.lookup(holder, ["resident_id_card", "marriage_certificate"], purpose="application:…",
actor="token:…")`` answers one `Outcome` per certificate type:

1. **Store.** The holder's stored certificates are found by the blind index of the ID number. A valid one of the
   type, fetched less than ``certificate_max_age_hours`` ago, is ``found`` (``source="store"``).
2. **Live pull.** For the types still missing (or only stale), one `connectors.sync.fetch_holder` per department
   covers all of that department's missing types; the departments are asked concurrently and the whole lookup
   keeps to one budget (``lookup_budget_seconds`` unless given). A department that does not answer in time, whose
   circuit is open or that fails is ``unavailable`` with the reason — never an exception to the caller. What came
   back is verified (by the connectors) and upserted through the `CertificateStore` in one transaction.
3. **Audit.** In that same transaction: one ``certificate.pulled`` record for the departments asked (purpose = the
   application it serves, actor, and per department the types asked, the outcome or the error), and one
   ``personal_data.read`` record when stored personal data (the holder's name) was decrypted to answer. The
   audit records name the holder by blind index, never by number.

A type whose issuing department has no connector is ``unavailable`` with "no connector for <department>". A
stored copy that is valid but stale is still returned (with the reason saying so) when the department cannot be
reached: the window may rely on it, and the clerk sees how old it is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_date, local_time
from connectors.client import ConnectorPool
from connectors.errors import ConnectorError
from connectors.model import Certificate, FetchedCertificate
from connectors.sync import fetch_holder
from gateway import audit
from gateway.certificates.store import CertificateStore, Holder, PreparedBatch, StoredCertificate, display_number
from gateway.privacy import mask_name
from gateway.storage import Database, utcnow

log = logging.getLogger("onewindow.certificates")

OutcomeState = Literal["found", "not_found", "unavailable"]
OutcomeSource = Literal["store", "live"]


class CertificateView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A certificate as the window shows it — from the lookup to the case's material, one shape: the issuer's
    facts, the holder's name masked, no ID number."""

    identifier: str
    type_key: str
    name: str
    #: As printed; an ID number inside it (a resident ID card's number is the ID number) is masked.
    number: str
    issuer_name: str
    issue_date: dt.date
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    status: str = "01"
    #: Masked (张*).
    holder_name: str = ""
    department: str = ""
    #: ``store`` (the gateway's copy) or ``live`` (pulled from the department for this application).
    source: str | None = None
    #: When this copy was fetched from the department (Beijing time).
    fetched_at: dt.datetime | None = None


class Outcome(msgspec.Struct, kw_only=True):
    """The lookup's answer for one certificate type."""

    type_key: str
    department: str
    state: OutcomeState
    reason: str = ""
    certificate: CertificateView | None = None
    source: OutcomeSource | None = None


class PendingRecord(msgspec.Struct, kw_only=True):
    """What a lookup has to write — the certificates pulled and the audit records of the pulls and the stored
    reads — when the caller writes it in its own transaction (`CertificateService.record`)."""

    prepared: PreparedBatch | None
    #: Keyword arguments of `gateway.audit.append`, in order.
    audits: list[dict[str, Any]]


class LookupResult(msgspec.Struct, kw_only=True):
    #: By certificate type key, one per requested type.
    outcomes: dict[str, Outcome]
    elapsed_ms: float
    #: With ``record_in_caller``: what the caller must write (`CertificateService.record`, or `record_alone` when
    #: its own transaction does not happen); None when there is nothing to write.
    pending: PendingRecord | None = None


# --- how errors read to a clerk -------------------------------------------------------------------------------

_KIND_WORDS = {
    "timeout": "timed out",
    "connection_failed": "connection failed",
    "circuit_open": "circuit open",
    "authentication_failed": "authentication failed",
    "malformed_response": "malformed response",
    "configuration_error": "misconfigured",
    "bad_request": "request refused",
    "rate_limited": "rate limited",
    "server_error": "",
}


def unavailable_reason(error: BaseException) -> str:
    """A short reason for a failed pull: ``"HTTP 503: …"``, ``"circuit open: …"``, ``"timed out: …"``."""
    if isinstance(error, ConnectorError):
        words = _KIND_WORDS.get(error.kind, error.kind.replace("_", " "))
        message = error.message
        if error.kind in ("server_error", "rate_limited", "bad_request") and message.startswith("HTTP "):
            return message
        return f"{words}: {message}" if words else message
    return f"internal error ({type(error).__name__})"


def _rejection_reason(fetched: FetchedCertificate, today: dt.date) -> str:
    """Why a certificate the department sent cannot be used (never naming the holder)."""
    v = fetched.verification
    if v.ok:  # verified, so only its start date can be the reason
        return f"the department's certificate is valid only from {fetched.certificate.valid_from.isoformat()}"
    if v.status == "wrong_holder":
        return "the department's certificate names another holder"
    return f"the department's certificate was rejected: {v.status}" + (f" ({v.reason})" if v.reason else "")


# --- the service ----------------------------------------------------------------------------------------------


class CertificateService:
    """Certificate lookups for intake over one store and one connector pool.

    ``type_departments`` maps each certificate type key to the department that issues it (the catalog's registry);
    types the pool's department files declare are added/overridden from them.
    """

    def __init__(
        self,
        *,
        database: Database,
        store: CertificateStore,
        pool: ConnectorPool | None,
        type_departments: Mapping[str, str],
        budget_seconds: float = 1.5,
        max_age_hours: float = 24.0,
    ) -> None:
        self.db = database
        self.store = store
        self.pool = pool
        departments = dict(type_departments)
        if pool is not None:
            for spec in pool.specs.values():
                for key in spec.types:
                    departments[key] = spec.code
        self.type_departments = departments
        self.budget_seconds = budget_seconds
        self.max_age = dt.timedelta(hours=max_age_hours)

    def has_connector(self, department: str) -> bool:
        return self.pool is not None and department in self.pool.specs

    async def lookup(
        self,
        holder: Holder,
        certificate_types: Sequence[str],
        *,
        purpose: str,
        actor: str,
        budget_seconds: float | None = None,
        record_in_caller: bool = False,
    ) -> LookupResult:
        """One outcome per requested type, within the budget (see the module docstring).

        ``record_in_caller``: instead of a write transaction of its own, the result carries what is to be written
        (`LookupResult.pending`) and the caller writes it in its transaction — one write transaction less for an
        intake, whose own transaction follows at once."""
        started = time.perf_counter()
        budget = self.budget_seconds if budget_seconds is None else budget_seconds
        deadline = started + max(budget, 0.0)
        now = utcnow()
        today = local_date(now)
        types = list(dict.fromkeys(certificate_types))
        outcomes: dict[str, Outcome] = {}
        if not types:
            return LookupResult(outcomes={}, elapsed_ms=0.0)
        # 1. The store.
        # Through the pool on purpose (not `Database.fetch`): with every connection taken, a filing is refused here,
        # in the pool's wait, before it pulls; past this point it would queue for the writer (tests/drills).
        async with self.db.read() as conn:
            rows = await self.store.holder_certificates(conn, holder, types)
        fresh: dict[str, StoredCertificate] = {}
        stale: dict[str, StoredCertificate] = {}
        for row in sorted(rows, key=lambda r: (r.issue_date, r.fetched_at)):
            if not row.usable(today):
                continue
            (fresh if now - row.fetched_at < self.max_age else stale)[row.type_key] = row

        read: list[StoredCertificate] = []
        wanted: dict[str, list[str]] = {}  # department -> type keys to pull
        for key in types:
            department = self.type_departments.get(key, "")
            if key in fresh:
                outcomes[key] = self._from_store(key, department, fresh[key])
                read.append(fresh[key])
            elif not department:
                outcomes[key] = Outcome(
                    type_key=key, department="", state="unavailable", reason=f"unknown certificate type {key!r}"
                )
            elif not self.has_connector(department):
                outcomes[key] = self._fallback(key, department, stale.get(key), f"no connector for {department}")
                if key in stale:
                    read.append(stale[key])
            else:
                wanted.setdefault(department, []).append(key)

        # 2. Live pulls, concurrently, within what is left of the budget.
        pulled: dict[str, list[FetchedCertificate]] = {}
        failures: dict[str, str] = {}
        if wanted:
            pulled, failures = await self._pull(holder.id_number, wanted, deadline, budget)
        live_batch: list[FetchedCertificate] = []
        for department, keys in wanted.items():
            if department in failures:
                for key in keys:
                    outcomes[key] = self._fallback(key, department, stale.get(key), failures[department])
                    if key in stale:
                        read.append(stale[key])
                continue
            results = pulled.get(department, [])
            live_batch.extend(results)
            for key in keys:
                outcomes[key] = self._from_live(key, department, results, today)

        # 3. One transaction: what came back, the audit of every pull and of every stored read.
        audits: list[dict[str, Any]] = []
        if wanted:
            # One record for the lookup's pulls (each department's types and outcome in the detail): the audit chain
            # is appended under the write lock, so fewer appends keep the clerk's wait short.
            pulls: dict[str, Any] = {}
            for department, keys in wanted.items():
                entry: dict[str, Any] = {"types": keys, "outcomes": {key: outcomes[key].state for key in keys}}
                if department in failures:
                    entry["error"] = failures[department]
                else:
                    entry["received"] = len(pulled.get(department, []))
                pulls[department] = entry
            audits.append(
                {
                    "actor": actor,
                    "action": "certificate.pulled",
                    "object_type": "certificate_holder",
                    "object_id": holder.index,
                    "purpose": purpose,
                    "detail": {"departments": pulls},
                }
            )
        if read:
            audits.append(
                {
                    "actor": actor,
                    "action": "personal_data.read",
                    "object_type": "certificate_holder",
                    "object_id": holder.index,
                    "purpose": purpose,
                    "detail": {"certificates": [r.identifier for r in read], "fields": ["holder_name"]},
                }
            )
        pending = PendingRecord(
            prepared=self.store.prepare(live_batch, holder=holder) if live_batch else None, audits=audits
        )
        if record_in_caller:
            return LookupResult(
                outcomes={key: outcomes[key] for key in types},
                elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
                pending=pending if pending.prepared is not None or pending.audits else None,
            )
        await self.record_alone(pending)
        return LookupResult(
            outcomes={key: outcomes[key] for key in types},
            elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def record(self, conn: AsyncConnection, pending: PendingRecord) -> None:
        """Write a lookup's `PendingRecord` inside the caller's write transaction."""
        if pending.prepared is not None:
            await self.store.write(conn, pending.prepared)
        for entry in pending.audits:
            await audit.append(conn, **entry)

    async def record_alone(self, pending: PendingRecord) -> None:
        """Write a lookup's `PendingRecord` in a write transaction of its own."""
        if pending.prepared is None and not pending.audits:
            return
        async with self.db.transaction() as conn:
            await self.record(conn, pending)

    # -- the live pull -------------------------------------------------------------------------------------

    async def _pull(
        self, holder_id: str, wanted: Mapping[str, list[str]], deadline: float, budget: float
    ) -> tuple[dict[str, list[FetchedCertificate]], dict[str, str]]:
        pool = self.pool
        assert pool is not None
        tasks: dict[asyncio.Future[list[FetchedCertificate]], str] = {
            asyncio.ensure_future(fetch_holder(pool, department, holder_id, keys)): department
            for department, keys in wanted.items()
        }
        remaining = deadline - time.perf_counter()
        done: set[asyncio.Future[list[FetchedCertificate]]] = set()
        pending: set[asyncio.Future[list[FetchedCertificate]]] = set(tasks)
        try:
            if remaining > 0:
                done, pending = await asyncio.wait(tasks, timeout=remaining)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                # Wait for the cancellations to land, so no pull outlives the lookup (nothing half-done later).
                await asyncio.gather(*pending, return_exceptions=True)
        pulled: dict[str, list[FetchedCertificate]] = {}
        failures: dict[str, str] = {}
        for task in pending:
            failures[tasks[task]] = f"timed out after {budget:g} s"
        for task in done:
            department = tasks[task]
            error = task.exception()
            if error is None:
                pulled[department] = task.result()
                continue
            failures[department] = unavailable_reason(error)
            if not isinstance(error, ConnectorError):
                log.error("live pull from %s failed: %s", department, type(error).__name__)
        return pulled, failures

    # -- outcomes ------------------------------------------------------------------------------------------

    def _from_store(self, key: str, department: str, row: StoredCertificate, reason: str = "") -> Outcome:
        name = self.store.holder_name(row.id, row.holder_name_enc)
        return Outcome(
            type_key=key,
            department=row.department or department,
            state="found",
            reason=reason,
            source="store",
            certificate=CertificateView(
                identifier=row.identifier,
                type_key=row.type_key,
                name=row.name,
                number=row.number,
                issuer_name=row.issuer_name,
                issue_date=row.issue_date,
                valid_from=row.valid_from,
                valid_until=row.valid_until,
                status=row.status,
                holder_name=mask_name(name),
                department=row.department,
                source="store",
                fetched_at=local_time(row.fetched_at),
            ),
        )

    def _fallback(self, key: str, department: str, stale: StoredCertificate | None, reason: str) -> Outcome:
        """Unavailable — or the stale stored copy, saying why it could not be refreshed."""
        if stale is None:
            return Outcome(type_key=key, department=department, state="unavailable", reason=reason)
        when = local_time(stale.fetched_at).strftime("%Y-%m-%d %H:%M")
        return self._from_store(key, department, stale, reason=f"stored copy fetched {when}; {reason}")

    @staticmethod
    def _from_live(key: str, department: str, results: Sequence[FetchedCertificate], today: dt.date) -> Outcome:
        of_type = [f for f in results if f.certificate.type_key == key]
        # The connectors verified each against the holder asked for (another holder's is ``wrong_holder``).
        valid = [f for f in of_type if f.verification.ok and f.certificate.valid_from <= today]
        if valid:
            best = max(valid, key=lambda f: f.certificate.issue_date)
            return Outcome(
                type_key=key,
                department=department,
                state="found",
                source="live",
                certificate=certificate_view(
                    best.certificate, department=department, source="live", fetched_at=best.fetched_at
                ),
            )
        if of_type:
            return Outcome(
                type_key=key, department=department, state="not_found", reason=_rejection_reason(of_type[-1], today)
            )
        return Outcome(
            type_key=key,
            department=department,
            state="not_found",
            reason="the department holds no such certificate for the applicant",
        )


def certificate_view(
    certificate: Certificate, *, department: str = "", source: str | None = None, fetched_at: dt.datetime | None = None
) -> CertificateView:
    """The clerk's view of a certificate as issued (holder name masked, ID number never shown)."""
    return CertificateView(
        identifier=certificate.identifier,
        type_key=certificate.type_key,
        name=certificate.name,
        number=display_number(certificate),
        issuer_name=certificate.issuer_name,
        issue_date=certificate.issue_date,
        valid_from=certificate.valid_from,
        valid_until=certificate.valid_until,
        status=certificate.status,
        holder_name=mask_name(certificate.holder_name),
        department=department,
        source=source,
        fetched_at=local_time(fetched_at) if fetched_at is not None else None,
    )


__all__ = [
    "CertificateService",
    "CertificateView",
    "LookupResult",
    "Outcome",
    "PendingRecord",
    "certificate_view",
    "unavailable_reason",
]
