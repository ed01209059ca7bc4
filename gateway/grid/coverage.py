"""Grid follow-up coverage: the share of cases whose grid tasks were done on time.

For a period, a case counts when at least one of its grid tasks fell due in the period; it is covered when every
such task was completed on or before its due date. One definition, used by the grid's coverage page and by the
weekly and monthly reports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any


def task_on_time(task: Any) -> bool:
    """Done on or before its due date."""
    return task.completed_on is not None and task.completed_on <= task.due_on


def case_coverage(tasks: Iterable[Any], start: dt.date, end: dt.date) -> dict[str, bool]:
    """application id -> covered, for the cases with a task due in ``start..end`` (inclusive)."""
    out: dict[str, bool] = {}
    for t in tasks:
        if t.application_id is None or not start <= t.due_on <= end:
            continue
        out[t.application_id] = out.get(t.application_id, True) and task_on_time(t)
    return out


__all__ = ["case_coverage", "task_on_time"]
