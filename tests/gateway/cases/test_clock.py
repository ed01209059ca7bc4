"""The working-day clock over real 2026 holidays: start, pause, resume, due soon, overdue."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.calendar import WorkingCalendar
from gateway.cases import clock

D = dt.date


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar()


def test_start_counts_from_the_day_after_acceptance(cal: WorkingCalendar) -> None:
    # Thursday 2026-04-30; 5/1-5/5 Labour Day; 5/9 (Saturday) is a make-up working day.
    state = clock.start(cal, D(2026, 4, 30), 3)
    assert state.deadline == D(2026, 5, 8)
    assert not state.deadline_estimated
    v = clock.view(cal, state, D(2026, 4, 30))
    assert (v.working_days_used, v.working_days_left, v.overdue, v.due_soon) == (0, 3, False, False)


def test_due_soon_at_80_percent_and_overdue_after_deadline(cal: WorkingCalendar) -> None:
    state = clock.start(cal, D(2026, 3, 2), 5)  # Monday -> deadline Monday 3/9
    assert state.deadline == D(2026, 3, 9)
    assert not clock.view(cal, state, D(2026, 3, 4)).due_soon  # 2 of 5 used
    v = clock.view(cal, state, D(2026, 3, 6))  # 4 of 5 used = 80 %
    assert v.due_soon and not v.overdue and v.working_days_left == 1
    v = clock.view(cal, state, D(2026, 3, 9))
    assert v.due_soon and v.working_days_left == 0 and not v.overdue
    v = clock.view(cal, state, D(2026, 3, 10))
    assert v.overdue and not v.due_soon and v.working_days_left == -1
    # A weekend right after the deadline is still late.
    state = clock.start(cal, D(2026, 3, 5), 1)  # deadline Friday 3/6
    v = clock.view(cal, state, D(2026, 3, 7))
    assert v.overdue and v.working_days_left < 0


def test_pause_over_spring_festival_and_resume_with_days_left(cal: WorkingCalendar) -> None:
    # Accepted Monday 2026-02-09 with 10 working days: 2/10..2/13, 2/14 (make-up Saturday), 2/24..2/27 after the
    # Spring Festival break (2/15-2/23) and 2/28 (make-up Saturday).
    state = clock.start(cal, D(2026, 2, 9), 10)
    assert state.deadline == D(2026, 2, 28)
    # Correction requested on Wednesday 2/11: two working days used (2/10, 2/11), eight left.
    paused = clock.pause(cal, state, D(2026, 2, 11))
    v = clock.view(cal, paused, D(2026, 3, 20))  # however long the citizen takes, the clock does not move
    assert v.paused and v.working_days_left == 8 and v.working_days_used == 2 and not v.overdue
    assert clock.pause(cal, paused, D(2026, 2, 12)) == paused
    # Resubmitted during the holiday (Friday 2/20): eight working days after it: 2/24..3/3 (2/28 is a make-up day).
    resumed = clock.resume(cal, paused, D(2026, 2, 20))
    assert resumed.paused_on is None and resumed.days_left_at_pause is None
    assert cal.working_days_between(D(2026, 2, 20), resumed.deadline) == 8
    assert resumed.deadline == D(2026, 3, 4)
    v = clock.view(cal, resumed, D(2026, 2, 20))
    assert v.working_days_left == 8 and v.working_days_used == 2


def test_pause_when_already_late_stays_late(cal: WorkingCalendar) -> None:
    state = clock.start(cal, D(2026, 3, 2), 1)  # deadline 3/3
    paused = clock.pause(cal, state, D(2026, 3, 5))  # two working days late
    assert paused.days_left_at_pause == -2
    assert clock.view(cal, paused, D(2026, 3, 9)).overdue
    resumed = clock.resume(cal, paused, D(2026, 3, 16))
    v = clock.view(cal, resumed, D(2026, 3, 16))
    assert v.overdue and v.working_days_left == -2


def test_stop_freezes_and_clears_flags(cal: WorkingCalendar) -> None:
    state = clock.start(cal, D(2026, 3, 2), 5)
    done = clock.stop(cal, state, D(2026, 3, 4))
    v = clock.view(cal, done, D(2026, 6, 1))
    assert v.stopped and not v.overdue and not v.due_soon
    assert v.working_days_used == 2 and v.working_days_left == 3


def test_estimated_deadline_outside_known_years(cal: WorkingCalendar) -> None:
    state = clock.start(cal, D(2099, 12, 20), 5)
    assert state.deadline_estimated
