"""Request and response bodies of the evidence routes (msgspec Structs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

import msgspec

TEXT_MAX = 2000


class CheckView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A check of a commitment (事后核查)."""

    id: str
    application_id: str
    item_code: str
    material_key: str
    material_name: str
    #: The commitment the applicant signed.
    commitment: str
    department: str
    handling_unit: str
    opened_at: dt.datetime
    due_on: dt.date
    #: ``open``, ``passed`` or ``failed`` (a failed check flags the case).
    status: str
    version: int
    due_estimated: bool = False
    overdue: bool = False
    closed_at: dt.datetime | None = None
    closed_by: str | None = None
    note: str | None = None


class CheckList(msgspec.Struct, kw_only=True):
    items: list[CheckView]
    total: int


class CheckOutcome(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/evidence/checks/{id}/outcome``."""

    #: True when the commitment held; false flags the case.
    passed: bool
    #: What was found (required when the check failed).
    note: Annotated[str, msgspec.Meta(max_length=TEXT_MAX)] | None = None


class VerifyMaterial(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/applications/{id}/materials/{key}/verification``: the clerk saw the original."""

    #: Must be true: the clerk compared the uploaded copy with the original (核验原件).
    original_seen: bool
    #: Until when the verified copy may be reused (e.g. the original's own expiry); default one year.
    valid_until: dt.date | None = None


class CommitMaterial(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/applications/{id}/materials/{key}/commitment``: the applicant signs the commitment."""

    #: Must be true: the applicant was shown the catalog's commitment text and signed it.
    agreed: bool


class WithdrawConsent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/evidence/consent-withdrawals``."""

    api_required: ClassVar[tuple[str, ...]] = ("id_number",)

    #: The applicant's citizen ID number (never stored or logged; only its blind index is used).
    id_number: Annotated[
        str,
        msgspec.Meta(max_length=64, extra_json_schema={"extra": {"pattern": r"^[0-9]{17}[0-9Xx]$"}}),
    ] = ""
    #: One material key; absent: every kept copy of the applicant.
    material_key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class ConsentWithdrawn(msgspec.Struct, kw_only=True):
    withdrawn: int
    material_key: str | None = None


class RateCounts(msgspec.Struct, kw_only=True):
    """Required materials by how they were satisfied, and the prefill rate: (certificate + verified + commitment) /
    (all satisfied), or null when nothing was satisfied."""

    applications: int = 0
    required: int = 0
    #: A: e-certificates.
    certificate: int = 0
    #: B reused from the applicant's evidence store (verified in an earlier application).
    verified: int = 0
    #: D: commitments.
    commitment: int = 0
    #: C: scans brought for this application.
    uploaded: int = 0
    #: B verified against the original in this application: brought as a scan, so counted with the uploads.
    verified_here: int = 0
    rate: float | None = None


class RateRow(RateCounts, kw_only=True):
    #: The group's key: an item code, a unit code or a date (YYYY-MM-DD, or YYYY-MM for months).
    key: str = ""
    name: str = ""


class PrefillRateReport(msgspec.Struct, kw_only=True):
    start: dt.date
    end: dt.date
    group: str
    unit: str | None
    item: str | None
    totals: RateCounts
    rows: list[RateRow]


class ApplicationRate(RateCounts, kw_only=True):
    application_id: str = ""
    #: Level per required material key (null when missing).
    levels: dict[str, str | None] = {}


__all__ = [
    "ApplicationRate",
    "CheckList",
    "CheckOutcome",
    "CheckView",
    "CommitMaterial",
    "ConsentWithdrawn",
    "PrefillRateReport",
    "RateCounts",
    "RateRow",
    "VerifyMaterial",
    "WithdrawConsent",
]
