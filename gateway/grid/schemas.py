"""Grid request and response bodies (msgspec)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from gateway.cases.views import ItemRef

Stage = Literal["before", "during", "after"]
TaskStatus = Literal["open", "done"]

#: What a completed task may record, by kind.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "accepted": ("informed", "unreachable"),
    "correction": ("informed", "unreachable"),
    "special_procedure": ("informed", "unreachable"),
    "due_soon": ("informed", "unreachable"),
    "overdue": ("informed", "escalated", "unreachable"),
    # 办理后评价: the status page's QR code handed over, or a paper evaluation recorded on the resident's behalf.
    "follow_up": ("qr_handed", "paper_evaluation", "unreachable"),
    # 回访 of a bad review's rectification.
    "callback": ("satisfied", "not_satisfied", "unreachable"),
}


class TaskView(msgspec.Struct, kw_only=True):
    id: str
    application_id: str | None
    stage: Stage
    kind: str
    due_on: dt.date
    status: TaskStatus
    grid: str
    opened_on: dt.date
    #: Open past its due date (shown to the community supervisor).
    overdue: bool
    tracking_number: str | None = None
    item: ItemRef | None = None
    completed_on: dt.date | None = None
    outcome: str | None = None
    note: str | None = None
    evaluation_id: str | None = None


class TaskList(msgspec.Struct, kw_only=True):
    items: list[TaskView]
    total: int


class PaperEvaluation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The resident's answers on the paper form (5 非常满意 … 1 非常不满意)."""

    level: int | None = None
    comment: Annotated[str, msgspec.Meta(max_length=500)] = ""


class CompleteTask(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/grid/tasks/{id}/complete``."""

    outcome: Annotated[str, msgspec.Meta(max_length=32)] = ""
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    #: Required with ``outcome: paper_evaluation``.
    evaluation: PaperEvaluation | None = None


class NewConsultation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/grid/consultations`` (办理前解答)."""

    item_code: Annotated[str, msgspec.Meta(max_length=64)] = ""
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    #: The resident agreed to a certificate lookup (then ``id_number`` is used once and never stored).
    consent: bool = False
    id_number: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class NoticeMaterial(msgspec.Struct, kw_only=True):
    key: str
    name: str
    required: bool
    source: str
    certificate_type: str | None
    #: With consent: ``covered`` when the resident's e-certificate already supplies it, else ``bring``.
    coverage: str | None = None


class ConsultationView(msgspec.Struct, kw_only=True):
    id: str
    grid: str
    item: ItemRef
    materials: list[NoticeMaterial]
    consent: bool
    note: str | None
    created_at: dt.datetime
    #: The printable 一次性告知 page.
    notice_url: str


class GridCase(msgspec.Struct, kw_only=True):
    """A case as a grid worker sees it: masked, no free text."""

    id: str
    tracking_number: str | None
    item: ItemRef
    status: str
    grid: str | None
    applicant_name: str
    applicant_phone: str
    deadline: dt.date | None


class PhoneRead(msgspec.Struct, kw_only=True):
    application_id: str
    phone: str
    purpose: str


class GridCorrection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/v1/grid/cases/{id}/grid`` (clerk): the applicant's grid corrected."""

    grid: Annotated[str, msgspec.Meta(max_length=64)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class GridCoverage(msgspec.Struct, kw_only=True):
    grid: str
    name: str
    #: Cases with tasks due in the period, and those whose tasks were all done by their due dates.
    cases: int
    covered: int
    coverage: float | None
    open_overdue: int


class CoverageReport(msgspec.Struct, kw_only=True):
    unit: str
    start: dt.date
    end: dt.date
    grids: list[GridCoverage]
