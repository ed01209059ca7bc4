"""Request and response bodies of the intake API (msgspec Structs; the OpenAPI schema is generated from them).

Request fields are all optional at the decoding level on purpose: the service checks them together and answers
one 422 that names every problem (``applicant.id_number``, ``consent``, …), instead of stopping at the first.
The OpenAPI document still marks them required (``api_required``, gateway/openapi.py) and shows the shapes the
service checks (``documented``): only types and sizes are refused by the decoder itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

import msgspec

from gateway.cases.views import ApplicantView, FileView, ItemRef, MaterialState, MaterialView

#: The longest free text a request field takes (names, addresses, purposes are shorter: the service says so).
TEXT_MAX = 2000


def documented(**schema: Any) -> msgspec.Meta:
    """Constraints the service checks, shown in the OpenAPI document (not enforced by the decoder)."""
    return msgspec.Meta(extra_json_schema={"extra": schema})


class ApplicantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The citizen applying: validated, then stored encrypted (never logged, never echoed unmasked)."""

    api_required: ClassVar[tuple[str, ...]] = ("id_number", "name", "phone")

    #: 公民身份号码 (GB 11643): 17 digits and a check character; the birth date and check character are checked.
    id_number: Annotated[str, msgspec.Meta(max_length=64), documented(pattern=r"^[0-9]{17}[0-9Xx]$")] = ""
    name: Annotated[str, msgspec.Meta(max_length=TEXT_MAX), documented(max_length=50)] = ""
    #: A mobile (11 digits) or a landline with its area code; +86, spaces and hyphens are allowed.
    phone: Annotated[str, msgspec.Meta(max_length=64)] = ""
    address: Annotated[str, msgspec.Meta(max_length=TEXT_MAX), documented(max_length=200)] | None = None
    #: 网格 code (15 digits): must lie under the clerk's unit.
    grid: Annotated[str, msgspec.Meta(max_length=64), documented(pattern=r"^[0-9]{15}$")] | None = None


class CreateApplication(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/applications``."""

    api_required: ClassVar[tuple[str, ...]] = ("item_code", "applicant", "consent")

    #: A published service item's code (``GET /api/v1/catalog/items``).
    item_code: Annotated[str, msgspec.Meta(max_length=64)] = ""
    applicant: ApplicantIn | None = None
    #: The applicant agreed that departments' certificates about them are looked up for this application: true.
    consent: bool | None = None
    #: Why the data is processed; defaults to the item's name.
    purpose: Annotated[str, msgspec.Meta(max_length=TEXT_MAX), documented(max_length=200)] | None = None
    #: Accept in the same transaction (or store nothing and answer 422 with the missing materials).
    accept: bool = False
    #: Material keys the applicant replaces with the catalog's written commitment (告知承诺, level D); each must
    #: allow one (422 naming ``commitments.<key>`` otherwise).
    commitments: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=50)] = []


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
    #: Trust level: an upload is C until a clerk verifies it against the original (B).
    level: str | None = None


class MaterialLevel(MaterialView, kw_only=True, omit_defaults=True):
    """``200`` of a verification (C → B) or a commitment (D): the material as it now stands."""

    application_id: str = ""


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
    "MaterialLevel",
    "MaterialUploaded",
    "PurgeResult",
]
