"""Bodies of the public tracking API and of the evaluation (好差评) and rectification views."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

import msgspec

from gateway.cases.clock import ClockView
from gateway.cases.history import NOTE_MAX_CHARS
from gateway.cases.machine import Status
from gateway.cases.views import ItemRef

#: GB/T 39734: 5 非常满意 … 1 非常不满意.
LEVEL_NAMES: dict[int, str] = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
#: Reviews at or below this level are bad (差评) and open a rectification task.
BAD_REVIEW_MAX_LEVEL = 2
#: Bad reviews are verified and rectified within this many working days (docs/domain.md#evaluation).
RECTIFICATION_WORKING_DAYS = 15
COMMENT_MAX_CHARS = 500

#: 5 非常满意 … 1 非常不满意 (also each window dimension).
Level = Annotated[int, msgspec.Meta(ge=1, le=5)]
RectificationStatus = Literal["open", "closed"]


class TimelineEntry(msgspec.Struct, kw_only=True):
    status: Status
    at: dt.datetime
    status_name: str = ""


class TrackView(msgspec.Struct, kw_only=True):
    """``GET /api/v1/track/{tracking_number}?code=``: what a citizen may see; never the ID number or phone."""

    tracking_number: str
    item: ItemRef
    status: Status
    status_name: str
    deadline: dt.date | None
    timeline: list[TimelineEntry]
    #: Masked (张*).
    applicant_name: str
    accepted_at: dt.datetime | None = None
    deadline_estimated: bool = False
    #: True once the case is completed and not yet evaluated.
    can_evaluate: bool = False
    evaluated: bool = False
    #: The promised-time clock today: working days left, paused (补齐补正 / 特别程序) or stopped (completed).
    clock: ClockView | None = None


class Dimensions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The window (offline) evaluation dimensions, each 1..5."""

    overall: Level | None = None
    efficiency: Level | None = None
    service: Level | None = None
    attitude: Level | None = None


class EvaluationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/track/{tracking_number}/evaluation?code=``."""

    #: Required (the service names it when missing); a comment is required with a level of 2 or less.
    api_required: ClassVar[tuple[str, ...]] = ("level",)

    level: Level | None = None
    comment: Annotated[str, msgspec.Meta(max_length=COMMENT_MAX_CHARS)] = ""
    dimensions: Dimensions | None = None


class RectificationRef(msgspec.Struct, kw_only=True):
    id: str
    due_on: dt.date
    due_estimated: bool = False


class EvaluationOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    tracking_number: str
    level: Level
    level_name: str
    comment: str
    created_at: dt.datetime
    dimensions: Dimensions | None = None
    #: Opened for a bad review (level 1 or 2): the district answers within 15 working days.
    rectification: RectificationRef | None = None


class RectificationView(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    application_id: str
    tracking_number: str
    item: ItemRef
    department: str
    unit: str
    level: Level
    level_name: str
    comment: str
    status: RectificationStatus
    opened_at: dt.datetime
    due_on: dt.date
    due_estimated: bool
    working_days_left: int
    overdue: bool
    closed_at: dt.datetime | None = None
    outcome: str | None = None


class Rectifications(msgspec.Struct, kw_only=True):
    """``GET /api/v1/supervision/rectifications``: earliest due first."""

    items: list[RectificationView]
    total: int


class CloseRectification(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/supervision/rectifications/{id}/close``: what was done and what the follow-up call found."""

    api_required: ClassVar[tuple[str, ...]] = ("outcome",)

    outcome: Annotated[str, msgspec.Meta(max_length=NOTE_MAX_CHARS)] = ""


__all__ = [
    "BAD_REVIEW_MAX_LEVEL",
    "COMMENT_MAX_CHARS",
    "LEVEL_NAMES",
    "RECTIFICATION_WORKING_DAYS",
    "CloseRectification",
    "Dimensions",
    "EvaluationIn",
    "EvaluationOut",
    "Level",
    "RectificationRef",
    "RectificationStatus",
    "RectificationView",
    "Rectifications",
    "TimelineEntry",
    "TrackView",
]
