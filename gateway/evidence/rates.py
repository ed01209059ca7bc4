"""The prefill rate — the figure the 减证明、少跑腿 reform is judged by.

For each accepted application, its required materials are counted by how they were satisfied: **without paper**
— an e-certificate (A), a verified copy reused from the evidence store (B, ``verified``), a commitment (D) — or
**brought as a new upload**: a scan (C, ``uploaded``) or a scan the clerk verified against the original in this very
application (B, ``verified_here``: the applicant did bring it; only its later reuse saves paper). The rate is
paperless / satisfied: the share of required materials the applicant did not have to bring; null when no required
material was satisfied at all (a rate of an empty set means nothing).

`prefill_rates` is the one computation: the API (`GET /api/v1/evidence/prefill-rate`) and the reports call it
with their own connection, period and filters; `application_rate` is the same count for one application.
A period is the acceptance date (local), both ends included; drafts never count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.cases.tables import application_materials, applications
from gateway.evidence.schemas import ApplicationRate, PrefillRateReport, RateCounts, RateRow

RateGroup = Literal["item", "unit", "department", "day", "month"]
RATE_GROUPS: tuple[str, ...] = ("item", "unit", "department", "day", "month")
_LEVEL_FIELD = {"A": "certificate", "B": "verified", "C": "uploaded", "D": "commitment"}


def _add(counts: RateCounts, level: str | None, n: int, *, brought: bool = False) -> None:
    """Count ``n`` required materials at ``level``; ``brought``: a B whose scan was uploaded in this application."""
    counts.required += n
    field = "verified_here" if level == "B" and brought else _LEVEL_FIELD.get(level or "")
    if field is not None:
        setattr(counts, field, getattr(counts, field) + n)


def _finish(counts: RateCounts) -> None:
    paperless = counts.certificate + counts.verified + counts.commitment
    satisfied = paperless + counts.uploaded + counts.verified_here
    counts.rate = round(paperless / satisfied, 4) if satisfied else None


async def prefill_rates(
    conn: AsyncConnection,
    *,
    start: dt.date,
    end: dt.date,
    group: RateGroup = "item",
    unit: str | None = None,
    item: str | None = None,
    department: str | None = None,
    scope: ColumnElement[bool] | None = None,
) -> PrefillRateReport:
    """Prefill rate of the applications accepted from ``start`` to ``end`` (inclusive), in total and per
    ``group``; ``unit`` filters by handling unit, ``item`` by item code, ``department`` by department, ``scope``
    is the caller's visibility (`gateway.cases.access.scope_filter`)."""
    a, m = applications.c, application_materials.c
    conditions: list[ColumnElement[bool]] = [
        a.accepted_on.is_not(None),
        a.accepted_on >= start,
        a.accepted_on <= end,
        m.required.is_(True),
    ]
    if unit:
        conditions.append(a.handling_unit == unit)
    if item:
        conditions.append(a.item_code == item)
    if department:
        conditions.append(a.department == department)
    if scope is not None:
        conditions.append(scope)
    keys: dict[str, Any] = {
        "item": a.item_code,
        "unit": a.handling_unit,
        "department": a.department,
        "day": a.accepted_on,
        "month": a.accepted_on,
    }
    key_column = keys[group]
    joined = applications.join(application_materials, m.application_id == a.id)
    # A verified copy reused from the evidence store has no scan of its own in this application; one verified here
    # does (its upload).
    brought = m.file_sha256.is_not(None).label("brought")
    by_level = await conn.execute(
        select(key_column, m.level, brought, func.count())
        .select_from(joined)
        .where(*conditions)
        .group_by(key_column, m.level, brought)
    )
    per_key = await conn.execute(
        select(key_column, func.count(func.distinct(a.id))).select_from(joined).where(*conditions).group_by(key_column)
    )
    per_key_rows = list(per_key)
    names: dict[str, str] = {}
    if group == "item" and per_key_rows:
        names = {
            str(r[0]): str(r[1])
            for r in await conn.execute(
                select(a.item_code, func.max(a.item_name))
                .where(a.item_code.in_([str(r[0]) for r in per_key_rows]))
                .group_by(a.item_code)
            )
        }
    rows: dict[str, RateRow] = {}
    totals = RateCounts()
    for key, n in per_key_rows:
        row = rows.setdefault(_bucket(key, group), RateRow(key=_bucket(key, group)))
        row.applications += int(n)
        totals.applications += int(n)
    for key, level, scanned, n in by_level:
        row = rows.setdefault(_bucket(key, group), RateRow(key=_bucket(key, group)))
        _add(row, level, int(n), brought=bool(scanned))
        _add(totals, level, int(n), brought=bool(scanned))
    for row in rows.values():
        row.name = names.get(row.key, "")
        _finish(row)
    _finish(totals)
    return PrefillRateReport(
        start=start,
        end=end,
        group=group,
        unit=unit,
        item=item,
        totals=totals,
        rows=sorted(rows.values(), key=lambda r: r.key),
    )


def _bucket(key: object, group: str) -> str:
    if isinstance(key, dt.date):
        return key.strftime("%Y-%m") if group == "month" else key.isoformat()
    return str(key)


async def application_rate(conn: AsyncConnection, application_id: str) -> ApplicationRate:
    """The same count for one application (any status: a draft's rate is what it would be if accepted now)."""
    m = application_materials.c
    rows = await conn.execute(
        select(m.key, m.level, m.state, m.file_sha256)
        .where(m.application_id == application_id, m.required.is_(True))
        .order_by(m.position)
    )
    out = ApplicationRate(application_id=application_id, applications=1)
    for key, level, state, scan in rows:
        present = state in ("prefilled", "provided")
        out.levels[key] = level if present else None
        _add(out, level if present else None, 1, brought=scan is not None)
    _finish(out)
    return out


__all__ = ["RATE_GROUPS", "RateGroup", "application_rate", "prefill_rates"]
