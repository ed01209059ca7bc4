"""Bodies of the public tracking API and of the evaluation (好差评) and rectification views."""

from __future__ import annotations

import datetime as dt

import msgspec

from gateway.cases.views import ItemRef

#: GB/T 39734: 5 非常满意 … 1 非常不满意.
LEVEL_NAMES: dict[int, str] = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
#: Reviews at or below this level are bad (差评) and open a rectification task.
BAD_REVIEW_MAX_LEVEL = 2
#: Bad reviews are verified and rectified within this many working days (docs/domain.md#evaluation).
RECTIFICATION_WORKING_DAYS = 15
COMMENT_MAX_CHARS = 500


class TimelineEntry(msgspec.Struct, kw_only=True):
    status: str
    at: dt.datetime
    status_name: str = ""


class TrackView(msgspec.Struct, kw_only=True):
    """``GET /api/v1/track/{tracking_number}?code=``: what a citizen may see; never the ID number or phone."""

    tracking_number: str
    item: ItemRef
    status: str
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


class Dimensions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The window (offline) evaluation dimensions, each 1..5."""

    overall: int | None = None
    efficiency: int | None = None
    service: int | None = None
    attitude: int | None = None


class EvaluationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/track/{tracking_number}/evaluation?code=``."""

    level: int | None = None
    comment: str = ""
    dimensions: Dimensions | None = None


class RectificationRef(msgspec.Struct, kw_only=True):
    id: str
    due_on: dt.date
    due_estimated: bool = False


class EvaluationOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    tracking_number: str
    level: int
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
    level: int
    level_name: str
    comment: str
    status: str
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

    outcome: str = ""


__all__ = [
    "BAD_REVIEW_MAX_LEVEL",
    "COMMENT_MAX_CHARS",
    "LEVEL_NAMES",
    "RECTIFICATION_WORKING_DAYS",
    "CloseRectification",
    "Dimensions",
    "EvaluationIn",
    "EvaluationOut",
    "RectificationRef",
    "RectificationView",
    "Rectifications",
    "TimelineEntry",
    "TrackView",
]
