"""The case state machine, as data: `TRANSITIONS` lists every allowed move, who may make it and what it does
to the working-day clock.

Statuses are the fixed ones of docs/api.md#statuses. The flow (docs/domain.md#case-statuses)::

    draft ──accept──▶ accepted ──▶ in_review ──▶ approved ──▶ delivered
      │                  │            │  ▲   └──▶ denied ────▶ delivered
      ▼                  ▼            │  │
    not_accepted      withdrawn       ▼  │ (resubmission / resume: the clock runs again with the days left)
    withdrawn                correction_required, special_procedure (the clock stops)

``draft → accepted`` is made by ``POST /applications/{id}/accept`` (it assigns the tracking number, query code and
deadline), never by the transitions endpoint; `allowed_targets` leaves it out for that reason.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

import msgspec

Status = Literal[
    "draft",
    "accepted",
    "not_accepted",
    "correction_required",
    "in_review",
    "special_procedure",
    "approved",
    "denied",
    "delivered",
    "withdrawn",
]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)

Role = Literal["clerk", "officer", "supervisor", "admin", "system", "department"]

#: What a transition does to the promised-time clock.
ClockEffect = Literal["none", "start", "pause", "resume", "stop"]
#: Which endpoint makes the move.
Via = Literal["transitions", "accept"]

#: Chinese names as windows and citizens read them (docs/domain.md#case-statuses).
STATUS_NAMES: Final[dict[Status, str]] = {
    "draft": "已接件",
    "accepted": "已受理",
    "not_accepted": "不予受理",
    "correction_required": "补齐补正",
    "in_review": "审查中",
    "special_procedure": "特别程序",
    "approved": "办结（准予）",
    "denied": "办结（不予）",
    "delivered": "已送达",
    "withdrawn": "已撤回",
}

#: Statuses in which the promised-time clock runs.
CLOCK_RUNNING: Final[frozenset[Status]] = frozenset({"accepted", "in_review"})
#: Statuses in which the clock is stopped until the case goes back into review.
CLOCK_PAUSED: Final[frozenset[Status]] = frozenset({"correction_required", "special_procedure"})
#: The case is decided (办结): evaluation becomes possible.
COMPLETED: Final[frozenset[Status]] = frozenset({"approved", "denied", "delivered"})
#: Nothing can follow.
FINAL: Final[frozenset[Status]] = frozenset({"not_accepted", "delivered", "withdrawn"})
#: Cases whose clock is open: counted for due-soon / overdue.
OPEN: Final[frozenset[Status]] = CLOCK_RUNNING | CLOCK_PAUSED


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """One allowed move. ``note_required`` / ``result_required`` are enforced before anything is written."""

    source: Status
    target: Status
    roles: frozenset[Role]
    clock: ClockEffect = "none"
    via: Via = "transitions"
    note_required: bool = False
    result_required: bool = False
    #: The clerk's resubmission after a correction request: some material must have been uploaded since.
    needs_new_upload: bool = False
    description: str = ""


_CLERK: Final = frozenset[Role]({"clerk"})
#: A department's own system makes the same moves as its officers (docs/departments.md), except resubmission.
_OFFICER: Final = frozenset[Role]({"officer", "department"})
_HANDOVER: Final = frozenset[Role]({"officer", "clerk", "department"})

TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(
        source="draft", target="accepted", roles=_CLERK, clock="start", via="accept", description="受理: accept"
    ),
    Transition(
        source="draft",
        target="not_accepted",
        roles=_CLERK,
        note_required=True,
        description="不予受理: refuse to accept, with the reason",
    ),
    Transition(source="draft", target="withdrawn", roles=_CLERK, description="the applicant withdraws the draft"),
    Transition(source="accepted", target="in_review", roles=_OFFICER, description="the department takes the case"),
    Transition(source="accepted", target="withdrawn", roles=_CLERK, clock="stop", description="撤回 before review"),
    Transition(
        source="in_review",
        target="correction_required",
        roles=_OFFICER,
        clock="pause",
        note_required=True,
        description="补齐补正: ask for corrected materials; the clock stops",
    ),
    Transition(
        source="in_review",
        target="special_procedure",
        roles=_OFFICER,
        clock="pause",
        note_required=True,
        description="特别程序 (inspection, expert review, public notice); the clock stops",
    ),
    Transition(
        source="in_review",
        target="approved",
        roles=_OFFICER,
        clock="stop",
        result_required=True,
        description="办结: approved, with the result",
    ),
    Transition(
        source="in_review",
        target="denied",
        roles=_OFFICER,
        clock="stop",
        note_required=True,
        result_required=True,
        description="办结: denied, with the result and the reason",
    ),
    Transition(source="in_review", target="withdrawn", roles=_CLERK, clock="stop", description="撤回 during review"),
    Transition(
        source="correction_required",
        target="in_review",
        roles=frozenset[Role]({"officer", "clerk"}),
        clock="resume",
        needs_new_upload=True,
        description="resubmission of corrected materials; the clock resumes with the working days left",
    ),
    Transition(
        source="correction_required",
        target="withdrawn",
        roles=_CLERK,
        clock="stop",
        description="the applicant gives up instead of correcting",
    ),
    Transition(
        source="special_procedure",
        target="in_review",
        roles=_OFFICER,
        clock="resume",
        description="special procedure ends; the clock resumes with the working days left",
    ),
    Transition(source="approved", target="delivered", roles=_HANDOVER, description="送达: the result is handed over"),
    Transition(source="denied", target="delivered", roles=_HANDOVER, description="送达: the decision is handed over"),
)

_BY_PAIR: Final[dict[tuple[Status, Status], Transition]] = {(t.source, t.target): t for t in TRANSITIONS}


def transition(source: str, target: str) -> Transition | None:
    """The transition from ``source`` to ``target``, or None when the table has no such move."""
    return _BY_PAIR.get((source, target))  # type: ignore[arg-type]


def allowed_targets(source: str, role: str | None = None, *, via: Via = "transitions") -> list[Status]:
    """Statuses reachable from ``source`` through the ``via`` endpoint (by ``role`` when given), in table order."""
    return [t.target for t in TRANSITIONS if t.source == source and t.via == via and (role is None or role in t.roles)]


def is_status(value: object) -> TypeGuard[Status]:
    return value in STATUSES


__all__ = [
    "CLOCK_PAUSED",
    "CLOCK_RUNNING",
    "COMPLETED",
    "FINAL",
    "OPEN",
    "STATUSES",
    "STATUS_NAMES",
    "TRANSITIONS",
    "ClockEffect",
    "Role",
    "Status",
    "Transition",
    "Via",
    "allowed_targets",
    "is_status",
    "transition",
]
