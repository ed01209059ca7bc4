"""Every figure of a report, defined once, computed from the case tables with grouped range reads.

The reads group by (place, department, item) — place is the community of the case's grid, or the window that
filed it when no grid is recorded — so a district-wide month is a few grouped queries (run side by side on
connections sharing one snapshot, `gateway.reports.snapshot`), and every unit's report is then summed in memory
from the same groups (`gateway.reports.build`). On PostgreSQL working days used are summed in SQL from the
calendar's working-day ordinals (`_working_days`); on SQLite per distinct clock. The definitions, for a period
``start..end`` of Beijing dates:

    received               applications filed (created) in the period
    accepted               accepted in the period (acceptance date)
    not_accepted           history rows 不予受理 in the period
    completed              completed (approved / denied, incl. delivered since) with the clock stopped in the period
    completed_on_time      of those, within the promised working days: the completion day is on or before the
                           deadline (which already moved by every pause), or the clock was paused with days left
    working_days_used      promised days minus the working days left at completion (average over completed)
    open_at_end            accepted by the end, not completed or withdrawn by the end
    overdue_open           of those, past the deadline at the end (a clock paused by then: with no days left);
                           the clock as it stood at the end (replayed when it paused or resumed since)
    corrections            history rows 补齐补正 in the period;  special_procedures: rows 特别程序 in the period
    evaluations            evaluations made in the period; satisfied = 非常满意 (5) + 满意 (4)
    bad_reviews            evaluations of level 1 or 2 in the period; rectified_in_time: their rectification
                           closed on or before its due date, and by the period's end
    grid_cases / covered   cases with a grid task due in the period / all those tasks done by their due dates
                           (the definition of `gateway.grid.coverage`, as SQL)
    materials_satisfied    required materials of cases accepted in the period that were satisfied (any trust level);
                           materials_prefilled: of those, satisfied without paper (`without_paper`: A, D, reused B)

Rates are fractions 0..1, or None when their denominator is 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

from sqlalchemy import Date, Integer, and_, case, column, func, literal_column, not_, select, values
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import DISTRICT_TZ, WorkingCalendar, local_date
from catalog.catalog import Catalog
from gateway.cases import clock
from gateway.cases.machine import CLOCK_PAUSED, CLOCK_RUNNING, COMPLETED
from gateway.cases.tables import application_history, application_materials, applications
from gateway.grid.tables import grid_tasks
from gateway.tracking.tables import evaluations, rectifications

#: Counted figures (summed over groups).
COUNTS: Final = (
    "received",
    "accepted",
    "not_accepted",
    "completed",
    "completed_on_time",
    "working_days_used",
    "open_at_end",
    "overdue_open",
    "corrections",
    "special_procedures",
    "evaluations",
    "satisfied",
    "bad_reviews",
    "rectified_in_time",
    "grid_collected_evaluations",
    "grid_cases",
    "grid_covered",
    "materials_satisfied",
    "materials_prefilled",
)
#: Rates: name -> (numerator, denominator).
RATES: Final = {
    "on_time_rate": ("completed_on_time", "completed"),
    "avg_working_days_used": ("working_days_used", "completed"),
    "satisfaction_rate": ("satisfied", "evaluations"),
    "rectified_in_time_rate": ("rectified_in_time", "bad_reviews"),
    "grid_coverage": ("grid_covered", "grid_cases"),
    "prefill_rate": ("materials_prefilled", "materials_satisfied"),
}
SATISFIED_MIN_LEVEL: Final = 4
BAD_REVIEW_MAX_LEVEL: Final = 2

#: (place, department, item code)
GroupKey = tuple[str, str, str]


def without_paper(level: str | None, brought: bool) -> bool | None:
    """Whether a required material was satisfied without paper; None when it was not satisfied at all.

    The trust level decides (`gateway.evidence.levels`, the same rule as `gateway.evidence.rates`): an
    e-certificate (A), a commitment (D) and a verified copy reused from the evidence store (B with no scan of its
    own in this application) are paperless; an upload (C) and a copy verified here (B with its own scan,
    ``brought``) were brought on paper.
    """
    if level in ("A", "D"):
        return True
    if level == "B":
        return not brought
    if level == "C":
        return False
    return None


def on_time(state: clock.ClockState) -> bool:
    """A stopped clock finished within the promised working days (pauses honoured: the deadline moved)."""
    if state.paused_on is not None and state.days_left_at_pause is not None:
        return state.days_left_at_pause >= 0
    assert state.stopped_on is not None
    return state.stopped_on <= state.deadline


def overdue_at(state: clock.ClockState, end: dt.date) -> bool:
    """An open case is past its deadline at the end of ``end`` (a pause after ``end`` did not exist yet)."""
    if state.paused_on is not None and state.paused_on <= end and state.days_left_at_pause is not None:
        return state.days_left_at_pause < 0
    return end > state.deadline


def utc_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The instants the Beijing dates ``start..end`` cover: [start 00:00 +08:00, end+1 00:00 +08:00)."""
    lo = dt.datetime.combine(start, dt.time(0), DISTRICT_TZ)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), DISTRICT_TZ)
    return lo.astimezone(dt.UTC), hi.astimezone(dt.UTC)


def rates(tally: dict[str, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, (num, den) in RATES.items():
        out[name] = tally[num] / tally[den] if tally[den] else None
    return out


def summary(tally: dict[str, int]) -> dict[str, Any]:
    """Counts and rates of one row (the average of working days is rounded to 2 places)."""
    out: dict[str, Any] = dict(tally)
    for name, value in rates(tally).items():
        out[name] = round(value, 2) if name == "avg_working_days_used" and value is not None else value
    return out


class Tallies:
    """Counts per (place, department, item) for one period."""

    def __init__(self) -> None:
        self.groups: dict[GroupKey, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))

    def add(self, key: GroupKey, field: str, n: int = 1) -> None:
        self.groups[key][field] += n


def _place() -> Any:
    """The community (or, for a street's own filing without a grid, the street) a case belongs to: the first 12
    digits of its grid or filing unit. Reports break down to communities, so grids collapse here, in the read."""
    # Literal bounds: the same expression text in SELECT and GROUP BY (PostgreSQL compares bound parameters apart).
    return func.substr(
        func.coalesce(applications.c.grid, applications.c.filing_unit), literal_column("1"), literal_column("12")
    )


def _keyed(*extra: Any) -> list[Any]:
    return [_place().label("place"), applications.c.department, applications.c.item_code, *extra]


def _key(r: Any) -> GroupKey:
    """The group of a row selected with `_keyed` (its first three columns; by position, the cheaper access)."""
    return (r[0], r[1], r[2])


def _clock_of(r: Any) -> clock.ClockState:
    return clock.ClockState(
        promised_days=r.promised_days,
        deadline=r.deadline,
        paused_on=r.paused_on,
        days_left_at_pause=r.days_left_at_pause,
        stopped_on=r.stopped_on,
    )


#: History statuses that pause or resume a clock.
_CLOCK_EVENTS: Final = (*CLOCK_PAUSED, *CLOCK_RUNNING)


async def _clocks_at(
    conn: AsyncConnection, calendar: WorkingCalendar, cases: list[Any], before: dt.datetime
) -> dict[str, clock.ClockState]:
    """The clocks of ``cases`` as they stood at ``before``, replayed from acceptance and history (one read)."""
    states = {c.id: clock.start(calendar, c.accepted_on, c.promised_days) for c in cases}
    ids = sorted(states)
    for first in range(0, len(ids), 500):
        rows = await conn.execute(
            select(application_history.c.application_id, application_history.c.status, application_history.c.at)
            .where(
                application_history.c.application_id.in_(ids[first : first + 500]), application_history.c.at < before
            )
            .order_by(application_history.c.application_id, application_history.c.position)
        )
        for r in rows:
            if r.status in CLOCK_PAUSED:
                states[r.application_id] = clock.pause(calendar, states[r.application_id], local_date(r.at))
            elif r.status in CLOCK_RUNNING:
                states[r.application_id] = clock.resume(calendar, states[r.application_id], local_date(r.at))
    return states


#: Days on each side of the period whose working-day ordinals the completion read joins (`_working_days`); a
#: completion whose deadline lies farther out is counted from its own clock in Python (exact either way).
CALENDAR_WINDOW_DAYS = 400


def _working_days(calendar: WorkingCalendar, first: dt.date, last: dt.date) -> Any:
    """A CTE (day, ordinal) for every date ``first..last``: the working days after ``first`` up to the day, so
    ``ordinal(b) - ordinal(a)`` is `WorkingCalendar.working_days_between` (a, b) for any two of its dates."""
    rows = []
    ordinal = 0
    day = first
    while day <= last:
        if day > first and calendar.is_working_day(day):
            ordinal += 1
        rows.append((day, ordinal))
        day += dt.timedelta(days=1)
    return values(column("day", Date), column("ordinal", Integer), name="working_days").data(rows).cte()


def _left_at_stop(calendar: WorkingCalendar, stopped_on: dt.date, deadline: dt.date) -> int:
    """Working days left when a running clock stopped (`gateway.cases.clock.view`: at least one day late)."""
    left = calendar.working_days_between(stopped_on, deadline)
    return min(left, -1) if stopped_on > deadline else left


#: One grouped read: it adds what it counted to the tallies when its rows are in.
Read = Callable[[AsyncConnection], Awaitable[None]]


async def load_tallies(
    conns: Sequence[AsyncConnection], calendar: WorkingCalendar, start: dt.date, end: dt.date
) -> Tallies:
    """Every count of every group for ``start..end``: a dozen grouped reads, spread over ``conns`` (connections
    that share one snapshot, `gateway.reports.snapshot`), the slowest first."""
    t = Tallies()
    a, h = applications, application_history
    lo, hi = utc_bounds(start, end)
    n = func.count().label("n")

    async def grouped(conn: AsyncConnection, query: Any) -> Iterable[Any]:
        return (await conn.execute(query)).all()

    async def received(conn: AsyncConnection) -> None:
        query = select(*_keyed(n)).where(a.c.created_at >= lo, a.c.created_at < hi).group_by(*_keyed())
        for r in await grouped(conn, query):
            t.add(_key(r), "received", r.n)

    async def accepted(conn: AsyncConnection) -> None:
        query = select(*_keyed(n)).where(a.c.accepted_on >= start, a.c.accepted_on <= end).group_by(*_keyed())
        for r in await grouped(conn, query):
            t.add(_key(r), "accepted", r.n)

    # Status events in the period.
    events = {
        "not_accepted": "not_accepted",
        "correction_required": "corrections",
        "special_procedure": "special_procedures",
    }

    async def status_events(conn: AsyncConnection) -> None:
        query = (
            select(*_keyed(h.c.status, n))
            .join(h, h.c.application_id == a.c.id)
            .where(h.c.status.in_(tuple(events)), h.c.at >= lo, h.c.at < hi)
            .group_by(*_keyed(h.c.status))
        )
        for r in await grouped(conn, query):
            t.add(_key(r), events[r.status], r.n)

    # Completed in the period (a filter shared by both forms of the read below). coalesce(): the completion-date
    # index serves this read, not the status one (SQLite chooses without statistics, and the status index would
    # visit every completed case ever).
    completed_in_period = (
        a.c.stopped_on >= start,
        a.c.stopped_on <= end,
        func.coalesce(a.c.status, "").in_(tuple(COMPLETED)),
        a.c.deadline.is_not(None),
    )

    async def completions_by_clock(conn: AsyncConnection) -> None:
        """Completions grouped by their clock, each distinct clock's punctuality and working days used counted in
        Python (`on_time`, `gateway.cases.clock.view`). SQLite's form: it scans a CTE once per row it joins, so
        the ordinals below would cost more there than the clocks (a few thousand at 100,000 cases)."""
        clock_cols = [a.c.promised_days, a.c.deadline, a.c.paused_on, a.c.days_left_at_pause, a.c.stopped_on]
        found: dict[tuple[Any, ...], tuple[bool, int]] = {}
        query = select(*_keyed(*clock_cols, n)).where(*completed_in_period).group_by(*_keyed(*clock_cols))
        for r in await grouped(conn, query):
            state_key = (r.promised_days, r.deadline, r.paused_on, r.days_left_at_pause, r.stopped_on)
            counted = found.get(state_key)
            if counted is None:
                state = _clock_of(r)
                used = clock.view(calendar, state, r.stopped_on).working_days_used
                counted = found[state_key] = (on_time(state), used)
            t.add(_key(r), "completed", r.n)
            if counted[0]:
                t.add(_key(r), "completed_on_time", r.n)
            t.add(_key(r), "working_days_used", counted[1] * r.n)

    async def completions(conn: AsyncConnection) -> None:
        """Completions grouped by (on time, deadline far outside the period): punctuality and the working days
        used (`on_time`, `gateway.cases.clock.view`) in SQL, with the calendar's working-day ordinals of the
        dates around the period as a CTE (PostgreSQL hashes it). A deadline outside that window stays a group of
        its own and its working days are counted here."""
        span = dt.timedelta(days=CALENDAR_WINDOW_DAYS)
        wd = _working_days(calendar, start - span, end + span)
        due, stop = wd.alias("due"), wd.alias("stop")
        paused = and_(a.c.paused_on.is_not(None), a.c.days_left_at_pause.is_not(None))
        far = and_(not_(paused), due.c.ordinal.is_(None))
        punctual = case(
            (paused, case((a.c.days_left_at_pause >= 0, 1), else_=0)),
            (a.c.stopped_on <= a.c.deadline, 1),
            else_=0,
        ).label("punctual")
        left = case(
            (paused, a.c.days_left_at_pause),
            (far, 0),  # counted in Python below
            (and_(a.c.stopped_on > a.c.deadline, due.c.ordinal == stop.c.ordinal), -1),
            else_=due.c.ordinal - stop.c.ordinal,
        )
        far_deadline = case((far, a.c.deadline)).label("far_deadline")
        far_stop = case((far, a.c.stopped_on)).label("far_stop")
        query = (
            select(*_keyed(punctual, far_deadline, far_stop, n, func.sum(a.c.promised_days - left).label("used")))
            .select_from(a)
            .join(stop, stop.c.day == a.c.stopped_on)
            .outerjoin(due, due.c.day == a.c.deadline)
            .where(*completed_in_period)
            .group_by(*_keyed(punctual, far_deadline, far_stop))
        )
        for r in await grouped(conn, query):
            key = _key(r)
            t.add(key, "completed", r.n)
            if r.punctual:
                t.add(key, "completed_on_time", r.n)
            used = int(r.used)
            if r.far_deadline is not None:
                used -= r.n * _left_at_stop(calendar, r.far_stop, r.far_deadline)
            t.add(key, "working_days_used", used)

    # Open at the end (two reads, each on one index: still running, or stopped after the end). The stored clock
    # is the clock at the end unless it was paused or resumed after the end: those few cases are replayed from
    # their history up to the end.
    # `overdue_at` as SQL, so that the read groups by (place, department, item, late) only.
    paused_by_end = and_(a.c.paused_on.is_not(None), a.c.paused_on <= end, a.c.days_left_at_pause.is_not(None))
    late = case(
        (paused_by_end, case((a.c.days_left_at_pause < 0, 1), else_=0)),
        (a.c.deadline < end, 1),
        else_=0,
    ).label("late")
    moved = select(h.c.application_id).where(h.c.at >= hi, h.c.status.in_(_CLOCK_EVENTS))

    def open_at_end(still_open: Any) -> Read:
        async def read(conn: AsyncConnection) -> None:
            replayed = list(
                await grouped(
                    conn,
                    select(*_keyed(a.c.id, a.c.promised_days, a.c.accepted_on)).where(
                        still_open, a.c.accepted_on <= end, a.c.deadline.is_not(None), a.c.id.in_(moved)
                    ),
                )
            )
            states = await _clocks_at(conn, calendar, replayed, hi)
            for r in replayed:
                t.add(_key(r), "open_at_end")
                if overdue_at(states[r.id], end):
                    t.add(_key(r), "overdue_open")
            for r in await grouped(
                conn,
                select(*_keyed(late, n))
                .where(still_open, a.c.accepted_on <= end, a.c.deadline.is_not(None), a.c.id.not_in(moved))
                .group_by(*_keyed(late)),
            ):
                t.add(_key(r), "open_at_end", r.n)
                if r.late:
                    t.add(_key(r), "overdue_open", r.n)

        return read

    # Evaluations: levels and whether the grid collected them.
    async def evaluated(conn: AsyncConnection) -> None:
        collected = select(grid_tasks.c.evaluation_id).where(grid_tasks.c.evaluation_id.is_not(None))
        by_grid = evaluations.c.id.in_(collected).label("by_grid")
        for r in await grouped(
            conn,
            select(*_keyed(evaluations.c.level, by_grid, n))
            .join(evaluations, evaluations.c.application_id == a.c.id)
            .where(evaluations.c.created_at >= lo, evaluations.c.created_at < hi)
            .group_by(*_keyed(evaluations.c.level, by_grid)),
        ):
            key = _key(r)
            t.add(key, "evaluations", r.n)
            if r.level >= SATISFIED_MIN_LEVEL:
                t.add(key, "satisfied", r.n)
            if r.level <= BAD_REVIEW_MAX_LEVEL:
                t.add(key, "bad_reviews", r.n)
            if r.by_grid:
                t.add(key, "grid_collected_evaluations", r.n)

    async def rectified(conn: AsyncConnection) -> None:
        for r in await grouped(
            conn,
            select(*_keyed(rectifications.c.due_on, rectifications.c.closed_at))
            .join(evaluations, evaluations.c.application_id == a.c.id)
            .join(rectifications, rectifications.c.evaluation_id == evaluations.c.id)
            .where(
                evaluations.c.created_at >= lo,
                evaluations.c.created_at < hi,
                evaluations.c.level <= BAD_REVIEW_MAX_LEVEL,
                rectifications.c.closed_at.is_not(None),
            ),
        ):
            closed_on = local_date(r.closed_at)
            if closed_on <= r.due_on and closed_on <= end:
                t.add(_key(r), "rectified_in_time")

    # Grid follow-up coverage (`gateway.grid.coverage`, as SQL): per case with a task due in the period, whether
    # every such task was done by its due date; then counted per group.
    async def coverage(conn: AsyncConnection) -> None:
        done_in_time = case(
            (and_(grid_tasks.c.completed_on.is_not(None), grid_tasks.c.completed_on <= grid_tasks.c.due_on), 1),
            else_=0,
        )
        per_case = (
            select(grid_tasks.c.application_id, func.min(done_in_time).label("covered"))
            .where(grid_tasks.c.due_on >= start, grid_tasks.c.due_on <= end, grid_tasks.c.application_id.is_not(None))
            .group_by(grid_tasks.c.application_id)
            .subquery()
        )
        for r in await grouped(
            conn,
            select(*_keyed(func.count().label("cases"), func.sum(per_case.c.covered).label("covered")))
            .join(per_case, per_case.c.application_id == a.c.id)
            .group_by(*_keyed()),
        ):
            t.add(_key(r), "grid_cases", r.cases)
            t.add(_key(r), "grid_covered", int(r.covered or 0))

    # Materials of the cases accepted in the period.
    async def materials(conn: AsyncConnection) -> None:
        m = application_materials
        brought = m.c.file_sha256.is_not(None).label("brought")
        for r in await grouped(
            conn,
            select(*_keyed(m.c.level, brought, n))
            .join(m, m.c.application_id == a.c.id)
            .where(a.c.accepted_on >= start, a.c.accepted_on <= end, m.c.required.is_(True))
            .group_by(*_keyed(m.c.level, brought)),
        ):
            paperless = without_paper(r.level, bool(r.brought))
            if paperless is not None:
                t.add(_key(r), "materials_satisfied", r.n)
                if paperless:
                    t.add(_key(r), "materials_prefilled", r.n)

    # The slowest first (measured at 1,000,000 cases), so the connections finish close together.
    reads: list[Read] = [
        coverage,
        materials,
        evaluated,
        open_at_end(a.c.stopped_on.is_(None)),
        completions_by_clock if conns[0].dialect.name == "sqlite" else completions,
        received,
        accepted,
        status_events,
        rectified,
        open_at_end(a.c.stopped_on > end),
    ]
    pending = iter(reads)

    async def reader(conn: AsyncConnection) -> None:
        for read in pending:
            await read(conn)

    async with asyncio.TaskGroup() as group:  # one read failing cancels the others before the connections close
        for conn in conns:
            group.create_task(reader(conn))
    return t


class Places:
    """Street and community of a place code (grid, community or street), from the catalog's unit tree."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._cache: dict[str, tuple[str | None, str | None]] = {}

    def of(self, code: str) -> tuple[str | None, str | None]:
        """(street, community) of ``code``."""
        found = self._cache.get(code)
        if found is not None:
            return found
        street = community = None
        unit = self.catalog.unit(code)
        while unit is not None:
            if unit.level == "community":
                community = unit.code
            elif unit.level == "street":
                street = unit.code
            unit = self.catalog.unit(unit.parent) if unit.parent else None
        self._cache[code] = (street, community)
        return street, community

    def name(self, code: str) -> str:
        unit = self.catalog.unit(code)
        return unit.name if unit else code


def in_unit(places: Places, place: str, unit: str, district: str) -> bool:
    if unit == district:
        return True
    street, community = places.of(place)
    return unit in (street, community)


__all__ = [
    "COUNTS",
    "RATES",
    "Places",
    "Tallies",
    "in_unit",
    "load_tallies",
    "on_time",
    "overdue_at",
    "rates",
    "summary",
    "utc_bounds",
    "without_paper",
]
