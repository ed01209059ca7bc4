"""Bodies of the case lifecycle API: the application as officers and windows see it, transitions, queues and the
supervisor's summary."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from gateway.cases.clock import ClockView
from gateway.cases.history import NOTE_MAX_CHARS, HistoryEntry
from gateway.cases.machine import Status
from gateway.cases.views import ApplicantView, ItemRef, MaterialView

#: The longest decision text (审批结果).
RESULT_MAX_CHARS = 2000


class TransitionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/applications/{id}/transitions``."""

    #: The status to move to (one of the statuses in docs/api.md#statuses).
    to: Status
    #: Why: required when refusing, asking for correction, opening a special procedure or denying.
    note: Annotated[str, msgspec.Meta(max_length=NOTE_MAX_CHARS)] | None = None
    #: The decision (审批结果) when completing: required for approved and denied.
    result: Annotated[str, msgspec.Meta(max_length=RESULT_MAX_CHARS)] | None = None


class ApplicationView(msgspec.Struct, kw_only=True):
    """``GET /api/v1/applications/{id}``; the ``ETag`` header carries the row version for ``If-Match``."""

    id: str
    status: Status
    status_name: str
    item: ItemRef
    filing_unit: str
    handling_unit: str
    applicant: ApplicantView
    materials: list[MaterialView]
    history: list[HistoryEntry]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    #: Statuses the caller may move the application to now (through the transitions endpoint).
    allowed_transitions: list[Status]
    grid: str | None = None
    tracking_number: str | None = None
    accepted_at: dt.datetime | None = None
    deadline: dt.date | None = None
    deadline_estimated: bool = False
    clock: ClockView | None = None
    result: str | None = None
    #: Why the data is processed (stated at intake). Left out, with the notes and the result, for systems.
    purpose: str | None = None


class QueueEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    status: Status
    item: ItemRef
    filing_unit: str
    handling_unit: str
    applicant_name: str
    created_at: dt.datetime
    tracking_number: str | None = None
    accepted_at: dt.datetime | None = None
    deadline: dt.date | None = None
    clock: ClockView | None = None


class Queue(msgspec.Struct, kw_only=True):
    """``GET /api/v1/applications``: the caller's cases, earliest deadline first."""

    items: list[QueueEntry]
    total: int
    limit: int
    offset: int


class SummaryRow(msgspec.Struct, kw_only=True):
    item_code: str
    item_name: str
    department: str
    unit: str
    total: int
    by_status: dict[Status, int]
    open: int
    overdue: int
    due_soon: int
    #: Cases whose after-the-fact check of a commitment (事后核查) failed: flagged for the supervisors.
    flagged: int = 0
    #: Commitment checks still open past their due date.
    checks_overdue: int = 0


class Summary(msgspec.Struct, kw_only=True):
    """``GET /api/v1/supervision/summary``: counts per item and handling unit."""

    as_of: dt.date
    rows: list[SummaryRow]
    totals: SummaryRow


__all__ = ["ApplicationView", "Queue", "QueueEntry", "Summary", "SummaryRow", "TransitionIn"]
