"""Report periods in Beijing dates: a week starts on Monday, a month on its first day.

The scheduled runs cover the period that ended most recently: on a Monday the week before, on the first of a month
the month before (and any day after that, the same — a run missed on the day is caught up later).
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal

from gateway.problems import FieldError, Unprocessable

Period = Literal["weekly", "monthly"]
PERIODS: Final = ("weekly", "monthly")


def check_start(period: Period, start: dt.date) -> None:
    """422 naming ``start`` when it does not begin a period."""
    if period == "weekly" and start.weekday() != 0:
        raise Unprocessable(
            "A weekly report starts on a Monday.", errors=[FieldError("start", f"{start.isoformat()} is not a Monday")]
        )
    if period == "monthly" and start.day != 1:
        raise Unprocessable(
            "A monthly report starts on the first of a month.",
            errors=[FieldError("start", f"{start.isoformat()} is not the first day of a month")],
        )


def period_end(period: Period, start: dt.date) -> dt.date:
    """The last day of the period (inclusive)."""
    if period == "weekly":
        return start + dt.timedelta(days=6)
    return next_start(period, start) - dt.timedelta(days=1)


def next_start(period: Period, start: dt.date) -> dt.date:
    if period == "weekly":
        return start + dt.timedelta(days=7)
    return dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)


def previous_start(period: Period, start: dt.date) -> dt.date:
    if period == "weekly":
        return start - dt.timedelta(days=7)
    return dt.date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)


def current_start(period: Period, today: dt.date) -> dt.date:
    """The start of the period ``today`` lies in."""
    if period == "weekly":
        return today - dt.timedelta(days=today.weekday())
    return today.replace(day=1)


def last_complete(period: Period, today: dt.date) -> dt.date:
    """The start of the most recent period that has ended by ``today``."""
    return previous_start(period, current_start(period, today))


def trailing(period: Period, start: dt.date, count: int = 12) -> list[dt.date]:
    """``count`` period starts ending with ``start``, oldest first."""
    out = [start]
    while len(out) < count:
        out.append(previous_start(period, out[-1]))
    return out[::-1]


__all__ = [
    "PERIODS",
    "Period",
    "check_start",
    "current_start",
    "last_complete",
    "next_start",
    "period_end",
    "previous_start",
    "trailing",
]
