"""Evidence operations behind the ``/api/v1/evidence`` routes: consent withdrawal and the prefill rate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from catalog.calendar import local_date
from catalog.codes import citizen_id_problem, normalise_citizen_id
from gateway.cases.access import load_application, scope_filter
from gateway.certificates.store import holder_of
from gateway.evidence.rates import RATE_GROUPS, RateGroup, application_rate, prefill_rates
from gateway.evidence.schemas import ApplicationRate, ConsentWithdrawn, PrefillRateReport, WithdrawConsent
from gateway.evidence.store import EvidenceStore
from gateway.identity.principal import Principal, Role
from gateway.privacy import FieldCipher
from gateway.problems import FieldError, Forbidden, Unprocessable
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.stores import IdempotentRequest

#: The longest period one rate query covers.
RATE_MAX_DAYS = 3 * 366


class EvidenceService:
    def __init__(
        self,
        *,
        database: Database,
        cipher: FieldCipher,
        idempotency: IdempotentRequest | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.cipher = cipher
        self.idempotency = idempotency
        self.now = now

    async def withdraw(self, principal: Principal, body: WithdrawConsent) -> ConsentWithdrawn:
        """The applicant withdraws consent to the reuse of their verified copies (at a window)."""
        if principal.role is not Role.CLERK:
            raise Forbidden("Consent is withdrawn at a window, by a clerk.")
        now = self.now()
        id_number = normalise_citizen_id(body.id_number)
        errors: list[FieldError] = []
        if not id_number:
            errors.append(FieldError("id_number", "is required: the applicant's 18-character citizen ID number"))
        elif (problem := citizen_id_problem(id_number, today=local_date(now))) is not None:
            errors.append(FieldError("id_number", problem.message))
        key = (body.material_key or "").strip() or None
        if errors:
            raise Unprocessable("The withdrawal cannot be recorded as it is.", errors=errors)
        holder = holder_of(self.cipher, id_number)
        async with self.db.transaction() as conn:
            count = await EvidenceStore.withdraw(
                conn,
                holder_index=holder.index,
                material_key=key,
                actor=principal.actor,
                role=principal.role.value,
                at=now,
            )
            answer = ConsentWithdrawn(withdrawn=count, material_key=key)
            if self.idempotency is not None:
                await self.idempotency.record(conn, answer)
        return answer

    async def rates(
        self,
        principal: Principal,
        *,
        start: dt.date | None,
        end: dt.date | None,
        group: str,
        unit: str | None,
        item: str | None,
    ) -> PrefillRateReport:
        """The prefill rate for the caller's scope (supervisors: the district; a clerk: their unit's cases; an
        officer: their department's)."""
        today = local_date(self.now())
        end = end or today
        start = start or end.replace(day=1)
        errors: list[FieldError] = []
        if group not in RATE_GROUPS:
            errors.append(FieldError("group", f"must be one of {', '.join(RATE_GROUPS)}"))
        if start > end:
            errors.append(FieldError("start", "is after end"))
        elif (end - start).days > RATE_MAX_DAYS:
            errors.append(FieldError("start", f"the period is longer than {RATE_MAX_DAYS} days"))
        if errors:
            raise Unprocessable("The prefill-rate query is invalid.", errors=errors)
        if principal.role not in (Role.SUPERVISOR, Role.ADMIN, Role.CLERK, Role.OFFICER):
            raise Forbidden("The prefill rate is read by staff.")
        grouping: RateGroup = group  # type: ignore[assignment]
        async with self.db.read() as conn:
            return await prefill_rates(
                conn,
                start=start,
                end=end,
                group=grouping,
                unit=unit,
                item=item,
                scope=scope_filter(principal),
            )

    async def application(self, principal: Principal, application_id: str) -> ApplicationRate:
        if principal.role not in (Role.SUPERVISOR, Role.ADMIN, Role.CLERK, Role.OFFICER):
            raise Forbidden("The prefill rate is read by staff.")
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            return await application_rate(conn, row.id)


__all__ = ["RATE_MAX_DAYS", "EvidenceService"]
