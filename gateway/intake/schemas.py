"""Request and response bodies of the intake API (msgspec Structs; the OpenAPI schema is generated from them).

Request fields are all optional at the decoding level on purpose: the service checks them together and answers
one 422 that names every problem (``applicant.id_number``, ``consent``, …), instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from gateway.cases.views import ApplicantView, FileView, ItemRef, MaterialState, MaterialView


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
    #: Expired drafts deleted.
    drafts: int
    #: Their uploads deleted (those no other material references).
    files: int
    #: Orphaned uploads swept (files no material references, older than the grace period).
    orphans: int = 0


__all__ = [
    "Acceptance",
    "ApplicantIn",
    "ApplicationCreated",
    "CreateApplication",
    "MaterialUploaded",
    "PurgeResult",
]
