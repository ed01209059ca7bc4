"""How a case is shown wherever it is shown: the item it is for, the applicant (masked), its materials.

A view is built from the stored row alone — the masked forms were written at intake — so showing a case never
decrypts personal data. Intake, lifecycle and tracking all answer with these shapes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_time
from gateway.cases.tables import application_materials
from gateway.certificates.lookup import CertificateView

MaterialState = Literal["prefilled", "missing", "provided", "unavailable"]


class ItemRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    code: str
    name: str
    department: str | None = None
    department_name: str | None = None
    promised_days: int | None = None


class FileView(msgspec.Struct, kw_only=True):
    sha256: str
    content_type: str
    size: int


class EvidenceSource(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a reused verified copy (level B) came from: the case, item and window where a clerk checked it against
    the original, who and when, and until when it may be reused."""

    evidence_id: str
    application_id: str
    item_code: str
    unit: str
    verified_by: str
    verified_at: dt.datetime
    valid_until: dt.date
    sha256: str | None = None


class MaterialView(msgspec.Struct, kw_only=True, omit_defaults=True):
    key: str
    name: str
    required: bool
    source: str
    state: MaterialState
    certificate_type: str | None = None
    reason: str | None = None
    certificate: CertificateView | None = None
    file: FileView | None = None
    #: Trust level: A e-certificate, B copy verified against the original, C upload, D commitment (告知承诺).
    level: str | None = None
    level_set_by: str | None = None
    level_set_at: dt.datetime | None = None
    #: The commitment the applicant signed in place of the material (level D).
    commitment: str | None = None
    #: A reused verified copy's provenance.
    evidence: EvidenceSource | None = None


class ApplicantView(msgspec.Struct, kw_only=True):
    """Masked: the full values are only ever decrypted for a stated purpose."""

    name: str
    id_number: str
    phone: str


def applicant_view(row: Row[Any]) -> ApplicantView:
    """The masked forms stored at intake."""
    return ApplicantView(
        name=row.applicant_name_masked,
        id_number=row.applicant_id_number_masked,
        phone=row.applicant_phone_masked,
    )


def material_view(row: Row[Any]) -> MaterialView:
    certificate = None
    if row.certificate:
        certificate = msgspec.convert(row.certificate, CertificateView)
    file = None
    if row.file_sha256:
        file = FileView(sha256=row.file_sha256, content_type=row.file_type or "", size=row.file_size or 0)
    mapping = row._mapping
    evidence = mapping.get("evidence")
    set_at = mapping.get("level_set_at")
    return MaterialView(
        key=row.key,
        name=row.name,
        required=row.required,
        source=row.source,
        state=row.state,
        certificate_type=row.certificate_type,
        reason=row.reason,
        certificate=certificate,
        file=file,
        level=mapping.get("level"),
        level_set_by=mapping.get("level_set_by"),
        level_set_at=local_time(set_at) if set_at is not None else None,
        commitment=mapping.get("commitment"),
        evidence=msgspec.convert(evidence, EvidenceSource) if evidence else None,
    )


async def load_materials(conn: AsyncConnection, application_id: str) -> list[Row[Any]]:
    rows = await conn.execute(
        select(application_materials)
        .where(application_materials.c.application_id == application_id)
        .order_by(application_materials.c.position)
    )
    return list(rows)


def missing_required(materials: list[MaterialView]) -> list[MaterialView]:
    """Required materials neither prefilled from a certificate nor provided as a scan."""
    return [m for m in materials if m.required and m.state not in ("prefilled", "provided")]


__all__ = [
    "ApplicantView",
    "EvidenceSource",
    "FileView",
    "ItemRef",
    "MaterialState",
    "MaterialView",
    "applicant_view",
    "load_materials",
    "material_view",
    "missing_required",
]
