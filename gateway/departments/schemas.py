"""Bodies of ``POST /api/v1/departments/{department}/events``: what a department's system sends and what it gets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

import msgspec

from gateway.cases.history import NOTE_MAX_CHARS
from gateway.cases.machine import Status

#: The longest decision text (审批结果), as for officers' transitions.
RESULT_MAX_CHARS = 2000

EventType = Literal[
    "in_review",
    "correction_required",
    "special_procedure_started",
    "special_procedure_ended",
    "approved",
    "denied",
    "delivered",
]

ProcedureKind = Literal["inspection", "expert_review", "public_notice", "hearing", "quarantine", "other"]

#: How a special procedure's kind reads in the history and the provincial report (特别程序种类).
PROCEDURE_NAMES: Final[dict[str, str]] = {
    "inspection": "现场勘验",
    "expert_review": "专家评审",
    "public_notice": "公示",
    "hearing": "听证",
    "quarantine": "检验检测",
    "other": "其他",
}


MissingMaterial = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SpecialProcedure(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: ProcedureKind
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class DepartmentEventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One event about one case of the department's items."""

    #: The department's own id of this event: sending it again answers the first answer and changes nothing.
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
    type: EventType
    application_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: The officer's opinion or reason (required for denied).
    note: Annotated[str, msgspec.Meta(max_length=NOTE_MAX_CHARS)] | None = None
    #: correction_required only: what the applicant must bring (at least one).
    missing: Annotated[list[MissingMaterial], msgspec.Meta(max_length=50)] = []
    #: special_procedure_started only: which procedure and why.
    procedure: SpecialProcedure | None = None
    #: approved / denied only: the decision (审批结果).
    result: Annotated[str, msgspec.Meta(max_length=RESULT_MAX_CHARS)] | None = None


class DepartmentEventAnswer(msgspec.Struct, kw_only=True):
    """The case after the event (the same answer again for a replayed event id)."""

    event_id: str
    type: EventType
    application_id: str
    status: Status
    tracking_number: str | None
    recorded_at: dt.datetime


__all__ = [
    "PROCEDURE_NAMES",
    "RESULT_MAX_CHARS",
    "DepartmentEventAnswer",
    "DepartmentEventIn",
    "EventType",
    "ProcedureKind",
    "SpecialProcedure",
]
