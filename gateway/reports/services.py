"""Generating, storing and reading reports.

A stored report is immutable: its body (canonical JSON, keys sorted) is hashed (SHA-256) and never updated;
regenerating inserts the next version, so every earlier version stays readable. One generation loads the period's
tallies once and builds the report of every requested unit from them.

Who reads: supervisors (district-wide, or the units under the street or community they are bound to), admins, and
clerks (their own unit and what lies under it). Any other unit answers 404, like an unknown one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from catalog.calendar import WorkingCalendar, local_date, local_time
from catalog.catalog import Catalog
from gateway.identity.principal import Principal, Role, unit_covers
from gateway.problems import Forbidden, NotFound
from gateway.reports.build import build_bodies, district_code, units_under
from gateway.reports.figures import Places, load_tallies
from gateway.reports.periods import Period, check_start, period_end
from gateway.reports.snapshot import shared_snapshot
from gateway.reports.tables import reports
from gateway.storage.database import Database
from gateway.storage.metadata import new_id, utcnow

_encoder = msgspec.json.Encoder(order="sorted")


class StoredReport(msgspec.Struct, kw_only=True):
    """A report with where it stands: ``version`` 0 and no hash for a period not over yet (computed, not stored)."""

    body: dict[str, Any]
    version: int
    generated_at: dt.datetime
    generated_by: str
    sha256: str | None

    def document(self) -> dict[str, Any]:
        """The JSON answer: the body with its version, hash and generation time."""
        return self.body | {
            "version": self.version,
            "generated_at": local_time(self.generated_at).isoformat(),
            "generated_by": self.generated_by,
            "sha256": self.sha256,
            "stored": self.sha256 is not None,
        }


class FigureWorkers(Protocol):
    """Where figures are computed when not in this process (`gateway.reports.workers.ReportWorkers`)."""

    async def compute(self, period: Period, start: dt.date, units: list[str]) -> dict[str, dict[str, Any]]: ...


def canonical(body: dict[str, Any]) -> bytes:
    return _encoder.encode(body)


class ReportService:
    def __init__(
        self,
        *,
        database: Database,
        calendar: WorkingCalendar,
        catalog: Catalog,
        now: Callable[[], dt.datetime] = utcnow,
        workers: FigureWorkers | None = None,
    ) -> None:
        self.db = database
        #: Where the figures are computed: the process's report child, or (None) this process.
        self.workers = workers
        self.calendar = calendar
        self.catalog = catalog
        self.places = Places(catalog)
        self.now = now

    # -- scope --------------------------------------------------------------------------------------------------
    def resolve_unit(self, principal: Principal | None, unit: str | None) -> str:
        """The unit asked for (default: the caller's own, or the district); 404 outside the caller's scope."""
        district = district_code(self.catalog)
        own = principal.unit if principal is not None else None
        code = (unit or "").strip() or own or district
        found = self.catalog.unit(code)
        if found is None or found.level not in ("district", "street", "community"):
            raise NotFound(f"No unit {code!r} in your scope.")
        if principal is None or principal.role is Role.ADMIN:
            return code
        if principal.role is Role.SUPERVISOR:
            if own and not unit_covers(own, code):
                raise NotFound(f"No unit {code!r} in your scope.")
            return code
        if principal.role is Role.CLERK:
            if not own or not unit_covers(own, code):
                raise NotFound(f"No unit {code!r} in your scope.")
            return code
        raise Forbidden(f"A {principal.role.value} token does not read reports.")

    # -- generation ---------------------------------------------------------------------------------------------
    async def compute(self, period: Period, start: dt.date, units: list[str]) -> dict[str, dict[str, Any]]:
        """The bodies of ``units``' reports for the period (nothing stored)."""
        check_start(period, start)
        if self.workers is not None:
            return await self.workers.compute(period, start, units)
        end = period_end(period, start)
        async with shared_snapshot(self.db) as conns:
            tallies = await load_tallies(conns, self.calendar, start, end)
        return build_bodies(tallies, self.catalog, self.places, period=period, start=start, end=end, units=units)

    async def generate(
        self, period: Period, start: dt.date, units: list[str], *, actor: str
    ) -> dict[str, StoredReport]:
        """Compute and store a new version of each unit's report."""
        bodies = await self.compute(period, start, units)
        return {unit: await self._store(period, start, unit, body, actor) for unit, body in bodies.items()}

    async def _store(self, period: Period, start: dt.date, unit: str, body: dict[str, Any], actor: str) -> StoredReport:
        data = canonical(body)
        digest = hashlib.sha256(data).hexdigest()
        for _attempt in range(5):
            now = self.now()
            try:
                async with self.db.transaction() as conn:
                    latest = (
                        await conn.execute(
                            select(func.coalesce(func.max(reports.c.version), 0)).where(
                                reports.c.period == period, reports.c.start == start, reports.c.unit == unit
                            )
                        )
                    ).scalar_one()
                    version = int(latest) + 1
                    await conn.execute(
                        reports.insert().values(
                            id=new_id(),
                            period=period,
                            start=start,
                            end=period_end(period, start),
                            unit=unit,
                            version=version,
                            generated_at=now,
                            generated_by=actor,
                            sha256=digest,
                            body=data.decode("utf-8"),
                        )
                    )
            except IntegrityError:
                continue  # another process stored the same version number first: take the next
            return StoredReport(body=body, version=version, generated_at=now, generated_by=actor, sha256=digest)
        raise RuntimeError("could not store the report after 5 attempts")  # pragma: no cover

    def all_units(self) -> list[str]:
        district = district_code(self.catalog)
        return [
            district,
            *units_under(self.catalog, district, "street"),
            *units_under(self.catalog, district, "community"),
        ]

    # -- reading ------------------------------------------------------------------------------------------------
    async def stored(
        self, period: Period, start: dt.date, unit: str, version: int | None = None
    ) -> StoredReport | None:
        query = select(reports).where(reports.c.period == period, reports.c.start == start, reports.c.unit == unit)
        query = query.where(reports.c.version == version) if version else query.order_by(reports.c.version.desc())
        async with self.db.read() as conn:
            row = (await conn.execute(query.limit(1))).first()
        if row is None:
            return None
        return StoredReport(
            body=msgspec.json.decode(row.body.encode("utf-8")),
            version=row.version,
            generated_at=row.generated_at,
            generated_by=row.generated_by,
            sha256=row.sha256,
        )

    async def versions(self, period: Period, start: dt.date, unit: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(reports.c.version, reports.c.generated_at, reports.c.generated_by, reports.c.sha256)
                .where(reports.c.period == period, reports.c.start == start, reports.c.unit == unit)
                .order_by(reports.c.version)
            )
            return [
                {
                    "version": r.version,
                    "generated_at": local_time(r.generated_at).isoformat(),
                    "generated_by": r.generated_by,
                    "sha256": r.sha256,
                }
                for r in rows
            ]

    async def report(
        self, principal: Principal, period: Period, start: dt.date, unit: str | None, version: int | None = None
    ) -> StoredReport:
        """The latest stored version (or ``version``); a period that has ended and was never generated is generated
        and stored now; a period not over yet is computed and not stored."""
        check_start(period, start)
        code = self.resolve_unit(principal, unit)
        found = await self.stored(period, start, code, version)
        if found is not None:
            return found
        if version:
            raise NotFound(f"No version {version} of this report.")
        if period_end(period, start) < local_date(self.now()):
            return (await self.generate(period, start, [code], actor=principal.actor))[code]
        body = (await self.compute(period, start, [code]))[code]
        return StoredReport(body=body, version=0, generated_at=self.now(), generated_by=principal.actor, sha256=None)

    async def totals_trend(self, period: Period, starts: list[dt.date], unit: str) -> list[dict[str, Any]]:
        """Totals of each period (stored when there is a stored version, else computed)."""
        out = []
        for start in starts:
            found = await self.stored(period, start, unit)
            body = found.body if found is not None else (await self.compute(period, start, [unit]))[unit]
            out.append({"start": start.isoformat(), "totals": body["totals"]})
        return out


__all__ = ["ReportService", "StoredReport", "canonical"]
