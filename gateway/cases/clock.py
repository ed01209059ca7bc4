"""The promised-time clock (承诺时限) of one case, in working days.

The clock starts at acceptance: the deadline is the ``promised_days``-th working day after the acceptance date
(docs/domain.md#the-clock). A correction request or a special procedure stops it; the working days left at that
moment are kept, and when the case goes back into review the deadline becomes the same number of working days
after the resume date. Completion (approved, denied) or withdrawal stops it for good.

What a case stores (`ClockState`) is small and never depends on "today"; `view` computes what is shown — days
used and left, paused, due soon (at least 80 % of the promised time used) and overdue — for a given day.

Counting convention (the calendar's): ``working_days_between(a, b)`` counts the working days after ``a`` up to and
including ``b``, so on the acceptance day all promised days are left, and the day a clock pauses counts as used.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from typing import Any

import msgspec

from catalog.calendar import CalendarEstimateWarning, WorkingCalendar

log = logging.getLogger("onewindow.cases.clock")

#: Share of the promised time after which a case is "due soon".
DUE_SOON_SHARE = (4, 5)  # 80 %, kept as a fraction so the comparison stays exact in integers


class ClockState(msgspec.Struct, frozen=True, kw_only=True):
    """What a case stores about its clock."""

    promised_days: int
    deadline: dt.date
    deadline_estimated: bool = False
    #: The day the clock was stopped by a correction request or special procedure (None while running).
    paused_on: dt.date | None = None
    #: Working days left on ``paused_on`` (negative when the deadline had already passed).
    days_left_at_pause: int | None = None
    #: The day the case was completed or withdrawn: the clock is frozen there.
    stopped_on: dt.date | None = None


class ClockView(msgspec.Struct, frozen=True, kw_only=True):
    """The promised-time clock as shown on a given day (working days); cases answer with it as ``clock``."""

    promised_days: int
    deadline: dt.date
    deadline_estimated: bool
    working_days_used: int
    working_days_left: int
    paused: bool
    stopped: bool
    #: At least 80 % of the promised time used and not yet overdue.
    due_soon: bool
    overdue: bool


def _deadline(calendar: WorkingCalendar, start: dt.date, days: int) -> tuple[dt.date, bool]:
    # The estimate is surfaced as ``deadline_estimated``; the calendar's warning would only reach the log twice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalendarEstimateWarning)
        result = calendar.deadline(start, days)
    if result.estimated:
        log.warning("deadline %s estimated (Monday-Friday) for years %s", result.date.isoformat(), result.unknown_years)
    return result.date, result.estimated


def _working_days_before(calendar: WorkingCalendar, end: dt.date, days: int) -> dt.date:
    """The latest date ``d`` before ``end`` with ``working_days_between(d, end) >= days`` (days >= 1)."""
    d = end - dt.timedelta(days=1)
    while calendar.working_days_between(d, end) < days:
        d -= dt.timedelta(days=1)
    return d


def start(calendar: WorkingCalendar, accepted_on: dt.date, promised_days: int) -> ClockState:
    """The clock at acceptance."""
    deadline, estimated = _deadline(calendar, accepted_on, promised_days)
    return ClockState(promised_days=promised_days, deadline=deadline, deadline_estimated=estimated)


def pause(calendar: WorkingCalendar, state: ClockState, on: dt.date) -> ClockState:
    """Stop the clock on ``on``, keeping the working days left then. Pausing a paused clock changes nothing."""
    if state.paused_on is not None or state.stopped_on is not None:
        return state
    left = calendar.working_days_between(on, state.deadline)
    if on > state.deadline:
        # Already late: keep at least one day of lateness so resuming cannot make the case punctual again.
        left = min(left, -1)
    return msgspec.structs.replace(state, paused_on=on, days_left_at_pause=left)


def resume(calendar: WorkingCalendar, state: ClockState, on: dt.date) -> ClockState:
    """Run the clock again from ``on`` with the working days left at the pause."""
    if state.paused_on is None or state.days_left_at_pause is None:
        return state
    left = state.days_left_at_pause
    if left >= 0:
        deadline, estimated = _deadline(calendar, on, left)
    else:
        # The case was overdue when it paused: it resumes exactly as overdue as it was.
        deadline, estimated = _working_days_before(calendar, on, -left), state.deadline_estimated
    return msgspec.structs.replace(
        state, deadline=deadline, deadline_estimated=estimated, paused_on=None, days_left_at_pause=None
    )


def stop(calendar: WorkingCalendar, state: ClockState, on: dt.date) -> ClockState:
    """Freeze the clock on completion or withdrawal (a paused clock freezes with the days it had left)."""
    if state.stopped_on is not None:
        return state
    return msgspec.structs.replace(state, stopped_on=on)


def view(calendar: WorkingCalendar, state: ClockState, today: dt.date) -> ClockView:
    """Days used and left, paused, due soon and overdue, as of ``today``."""
    paused = state.paused_on is not None
    if paused and state.days_left_at_pause is not None:
        left = state.days_left_at_pause
        late = left < 0
    else:
        at = state.stopped_on or today
        left = calendar.working_days_between(at, state.deadline)
        late = at > state.deadline
        if late:
            left = min(left, -1)
    stopped = state.stopped_on is not None
    used = state.promised_days - left
    # A stopped clock is never "due soon" or "overdue": those flags drive queues and alarms for open cases.
    overdue = late and not stopped
    num, den = DUE_SOON_SHARE
    due_soon = not stopped and not overdue and used * den >= state.promised_days * num
    return ClockView(
        promised_days=state.promised_days,
        deadline=state.deadline,
        deadline_estimated=state.deadline_estimated,
        working_days_used=used,
        working_days_left=left,
        paused=paused,
        stopped=stopped,
        due_soon=due_soon,
        overdue=overdue,
    )


# --- as stored on the application row ----------------------------------------------------------------------
#: The application columns that hold a `ClockState`.
COLUMNS: tuple[str, ...] = (
    "promised_days",
    "deadline",
    "deadline_estimated",
    "paused_on",
    "days_left_at_pause",
    "stopped_on",
)


def clock_state(row: Any) -> ClockState | None:
    """The clock stored on an application row (or any row with `COLUMNS`), or None before acceptance."""
    if row.deadline is None or row.promised_days is None:
        return None
    return ClockState(
        promised_days=row.promised_days,
        deadline=row.deadline,
        deadline_estimated=bool(row.deadline_estimated),
        paused_on=row.paused_on,
        days_left_at_pause=row.days_left_at_pause,
        stopped_on=row.stopped_on,
    )


def clock_columns(state: ClockState) -> dict[str, Any]:
    """The column values that store ``state``."""
    return {name: getattr(state, name) for name in COLUMNS}


__all__ = [
    "COLUMNS",
    "DUE_SOON_SHARE",
    "ClockState",
    "ClockView",
    "clock_columns",
    "clock_state",
    "pause",
    "resume",
    "start",
    "stop",
    "view",
]
