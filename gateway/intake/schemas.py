"""Request and response bodies of the intake API (msgspec Structs; the OpenAPI schema is generated from them).

Request fields are all optional at the decoding level on purpose: the service checks them together and answers
one 422 that names every problem (``applicant.id_number``, ``consent``, …), instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

MaterialState = Literal["prefilled", "missing", "provided", "unavailable"]


class ApplicantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The citizen applying: validated, then stored encrypted (never logged, never echoed unmasked)."""

    id_number: str = ""
    name: str = ""
    phone: str = ""
    address: str | None = None
    #: 网格 code (15 digits): must lie under the clerk's unit.
    grid: str | None = None


class CreateApplication(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/applications``."""

    item_code: str = ""
    applicant: ApplicantIn | None = None
    #: The applicant agreed that departments' certificates about them are looked up for this application.
    consent: bool | None = None
    #: Why the data is processed; defaults to the item's name.
    purpose: str | None = None
    #: Accept in the same transaction (or store nothing and answer 422 with the missing materials).
    accept: bool = False


class ItemRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    code: str
    name: str
    department: str | None = None
    department_name: str | None = None
    promised_days: int | None = None


class CertificateView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A prefilled certificate as the window shows it: the issuer's facts, the holder masked, no ID number."""

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
    holder_name: str = ""
    department: str = ""
    #: ``store`` (the gateway's copy) or ``live`` (pulled from the department for this application).
    source: str | None = None
    fetched_at: dt.datetime | None = None


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


class ApplicationCreated(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``201`` of ``POST /api/v1/applications``; with ``accept: true`` also the acceptance fields."""

    id: str
    status: str
    item: ItemRef
    materials: list[MaterialView]
    filing_unit: str
    handling_unit: str
    applicant: ApplicantView
    created_at: dt.datetime
    missing: list[str] = []
    grid: str | None = None
    tracking_number: str | None = None
    #: Shown once, on acceptance: only its keyed hash is stored.
    query_code: str | None = None
    deadline: dt.date | None = None
    deadline_estimated: bool = False


class Acceptance(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``200`` of ``POST /api/v1/applications/{id}/accept``."""

    id: str
    tracking_number: str
    query_code: str
    status: str
    deadline: dt.date
    accepted_at: dt.datetime
    promised_days: int
    deadline_estimated: bool = False


class MaterialUploaded(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``200`` of a material upload: the material with ``state: provided``."""

    key: str
    name: str
    required: bool
    source: str
    state: MaterialState
    file: FileView
    application_id: str
    certificate_type: str | None = None


class PurgeResult(msgspec.Struct, kw_only=True):
    drafts: int
    files: int


__all__ = [
    "Acceptance",
    "ApplicantIn",
    "ApplicantView",
    "ApplicationCreated",
    "CertificateView",
    "CreateApplication",
    "FileView",
    "ItemRef",
    "MaterialState",
    "MaterialUploaded",
    "MaterialView",
    "PurgeResult",
]
