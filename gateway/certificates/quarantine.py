"""Reading what the certificate store keeps about bad department records: the quarantined records
(``record_rejections``) and each department's last sync quality (``department_quality``).

Both are written by `gateway.certificates.store.CertificateStore` (the sync sink); these readers need only the
database (no keys), so ``connectors check``, ``connectors rejections`` and readiness can use them. Nothing here
holds a record's values: a rejection says where the record was and why it failed (field, value kind, rule).
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec
from sqlalchemy import select

from gateway.certificates.tables import department_quality, record_rejections
from gateway.storage import Database

_LONG_NUMBER = re.compile(r"\d{8,}[\dXx]?")
_IDENTIFIER = re.compile(r"1\.2\.156\.[0-9A-Z.]+")


class RecordRejection(msgspec.Struct, frozen=True, kw_only=True):
    """One quarantined department record as stored."""

    department: str
    at: dt.datetime
    page: int
    position: int
    identifier: str
    field: str
    source: str
    value_kind: str
    rule: str
    message: str
    request_id: str


class QualityRow(msgspec.Struct, frozen=True, kw_only=True):
    """A department's last sync that received records."""

    department: str
    received: int
    quarantined: int
    degraded: bool
    at: dt.datetime

    @property
    def share(self) -> float:
        return self.quarantined / self.received if self.received else 0.0


def mask_identifier(identifier: str) -> str:
    """An identifier as listed: a GB/T 36904 identifier as it is (it names a certificate, not a person), anything
    else with its long digit runs (where an ID number could hide) masked."""
    if _IDENTIFIER.fullmatch(identifier):
        return identifier
    return _LONG_NUMBER.sub("…", identifier)


async def qualities(db: Database) -> dict[str, QualityRow]:
    """Every department's last recorded sync quality, by department."""
    async with db.read() as conn:
        rows = await conn.execute(select(department_quality))
        return {row.department: QualityRow(**dict(row._mapping)) for row in rows}


async def rejections(db: Database, department: str | None = None, *, limit: int = 100) -> list[RecordRejection]:
    """The newest quarantined records (of one department, or of all), newest first, identifiers masked."""
    r = record_rejections.c
    query = select(record_rejections).order_by(r.at.desc(), r.page.desc(), r.position.desc()).limit(limit)
    if department:
        query = query.where(r.department == department)
    async with db.read() as conn:
        rows = await conn.execute(query)
        found = [RecordRejection(**{k: v for k, v in row._mapping.items() if k != "id"}) for row in rows]
    return [msgspec.structs.replace(f, identifier=mask_identifier(f.identifier)) for f in found]


__all__ = ["QualityRow", "RecordRejection", "mask_identifier", "qualities", "rejections"]
