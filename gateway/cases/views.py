"""How a case is shown wherever it is shown: the item it is for, the applicant (masked), its materials.

A view is built from the stored row alone — the masked forms were written at intake — so showing a case never
decrypts personal data. Intake, lifecycle and tracking all answer with these shapes.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

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
    "FileView",
    "ItemRef",
    "MaterialState",
    "MaterialView",
    "applicant_view",
    "load_materials",
    "material_view",
    "missing_required",
]
