"""Grid tasks that open themselves: derived from a case's history rows, its clock and its rectification.

Nothing in intake or lifecycle calls this: `catch_up` reads what they wrote and inserts the tasks that are due to
exist. Each task has a unique key (case, kind, trigger), so deriving it twice — in the periodic job of several
processes, or before a task list is served — inserts it once.

    history status               task (stage)                         due (working days after the event)
    accepted                     accepted (during): tell the resident         1
    correction_required          correction (during): say what is missing     1
    special_procedure            special_procedure (during): explain          2
    approved / denied            follow_up (after): confirm delivery, help    3
                                 the resident evaluate (QR or paper form)
    clock: due soon (>= 80 %)    due_soon (during): keep the resident posted  on the case's deadline
    clock: overdue               overdue (during): tell the resident, escalate 1 after the deadline
    rectification opened         callback (after): the follow-up call (回访)  on the rectification's due date
"""

from __future__ import annotations

import datetime as dt
import warnings
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import CalendarEstimateWarning, WorkingCalendar, local_date
from gateway.cases import clock
from gateway.cases.machine import CLOCK_RUNNING
from gateway.cases.tables import application_history, applications
from gateway.grid.tables import grid_sync, grid_tasks
from gateway.storage.database import Database
from gateway.storage.metadata import new_id, utcnow
from gateway.storage.prepared import PreparedRead

#: history status -> (task kind, stage, working days to do it).
HISTORY_TASKS: Final[dict[str, tuple[str, str, int]]] = {
    "accepted": ("accepted", "during", 1),
    "correction_required": ("correction", "during", 1),
    "special_procedure": ("special_procedure", "during", 2),
    "approved": ("follow_up", "after", 3),
    "denied": ("follow_up", "after", 3),
}
STAGES: Final = ("before", "during", "after")
KINDS: Final = (
    "consultation",
    "accepted",
    "correction",
    "special_procedure",
    "due_soon",
    "overdue",
    "follow_up",
    "callback",
)
#: History rows are scanned again this far behind the watermark: a transaction that stamped its rows earlier may
#: commit after a later one did (the unique key makes the overlap harmless).
OVERLAP = dt.timedelta(minutes=10)
#: Open cases whose deadline is further away than this cannot be due soon yet (promised times are < 1 year).
_DUE_SOON_HORIZON = dt.timedelta(days=400)


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A task that should exist."""

    application_id: str
    grid: str
    stage: str
    kind: str
    trigger: str
    opened_on: dt.date
    due_on: dt.date


def _after(calendar: WorkingCalendar, day: dt.date, days: int) -> dt.date:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalendarEstimateWarning)
        return calendar.deadline(day, days).date


def from_history(
    calendar: WorkingCalendar, *, application_id: str, grid: str, status: str, position: int, at: dt.datetime
) -> TaskSpec | None:
    """The task a history row opens, if any."""
    rule = HISTORY_TASKS.get(status)
    if rule is None:
        return None
    kind, stage, days = rule
    day = local_date(at)
    return TaskSpec(
        application_id=application_id,
        grid=grid,
        stage=stage,
        kind=kind,
        trigger=f"h{position}",
        opened_on=day,
        due_on=_after(calendar, day, days),
    )


def from_clock(calendar: WorkingCalendar, row: Any, today: dt.date) -> TaskSpec | None:
    """The due-soon or overdue task of an open case on ``today`` (keyed by the deadline, so a deadline moved by
    a pause opens a new one)."""
    if row.status not in CLOCK_RUNNING or row.grid is None:
        return None
    state = clock.clock_state(row)
    if state is None:
        return None
    view = clock.view(calendar, state, today)
    if view.overdue:
        return TaskSpec(
            application_id=row.id,
            grid=row.grid,
            stage="during",
            kind="overdue",
            trigger=f"d{state.deadline.isoformat()}",
            opened_on=today,
            due_on=_after(calendar, state.deadline, 1),
        )
    if view.due_soon:
        return TaskSpec(
            application_id=row.id,
            grid=row.grid,
            stage="during",
            kind="due_soon",
            trigger=f"d{state.deadline.isoformat()}",
            opened_on=today,
            due_on=state.deadline,
        )
    return None


def from_rectification(
    *, application_id: str, grid: str, rectification_id: str, opened_at: dt.datetime, due_on: dt.date
) -> TaskSpec:
    return TaskSpec(
        application_id=application_id,
        grid=grid,
        stage="after",
        kind="callback",
        trigger=f"r{rectification_id}",
        opened_on=local_date(opened_at),
        due_on=due_on,
    )


async def insert_tasks(conn: AsyncConnection, specs: Iterable[TaskSpec], now: dt.datetime) -> int:
    """Insert the tasks that do not exist yet (the unique key skips the others); how many were new."""
    rows = [
        {
            "id": new_id(),
            "application_id": s.application_id,
            "grid": s.grid,
            "stage": s.stage,
            "kind": s.kind,
            "trigger": s.trigger,
            "opened_on": s.opened_on,
            "due_on": s.due_on,
            "status": "open",
            "created_at": now,
        }
        for s in specs
    ]
    if not rows:
        return 0
    keys = ["application_id", "kind", "trigger"]
    if conn.dialect.name == "postgresql":
        statement: Any = pg_insert(grid_tasks).on_conflict_do_nothing(index_elements=keys)
    elif conn.dialect.name == "sqlite":
        statement = sqlite_insert(grid_tasks).on_conflict_do_nothing(index_elements=keys)
    else:  # pragma: no cover - the two supported databases are above
        statement = insert(grid_tasks)
    inserted = 0
    for start in range(0, len(rows), 500):
        result = await conn.execute(statement.returning(grid_tasks.c.id), rows[start : start + 500])
        inserted += len(result.fetchall())
    return inserted


def _rectifications_table() -> Any:
    # The rectifications table belongs to tracking; it is read by name so that grid does not import tracking.
    from sqlalchemy import Date, String, column, table

    return table(
        "rectifications",
        column("id", String()),
        column("application_id", String()),
        column("opened_at", applications.c.created_at.type),
        column("due_on", Date()),
    )


async def _rectification_specs(conn: AsyncConnection, since: dt.datetime | None) -> list[TaskSpec]:
    rect = _rectifications_table()
    query = (
        select(rect.c.id, rect.c.application_id, rect.c.opened_at, rect.c.due_on, applications.c.grid)
        .join(applications, applications.c.id == rect.c.application_id)
        .where(applications.c.grid.is_not(None))
    )
    if since is not None:
        query = query.where(rect.c.opened_at >= since)
    return [
        from_rectification(
            application_id=r.application_id,
            grid=r.grid,
            rectification_id=r.id,
            opened_at=r.opened_at,
            due_on=r.due_on,
        )
        for r in await conn.execute(query)
    ]


async def _missing(conn: AsyncConnection, specs: list[TaskSpec]) -> list[TaskSpec]:
    """The specs whose task does not exist yet (a read, so that a caught-up list costs no write)."""
    if not specs:
        return []
    ids = sorted({s.application_id for s in specs})
    have: set[tuple[str, str, str]] = set()
    for start in range(0, len(ids), 500):
        rows = await conn.execute(
            select(grid_tasks.c.application_id, grid_tasks.c.kind, grid_tasks.c.trigger).where(
                grid_tasks.c.application_id.in_(ids[start : start + 500])
            )
        )
        have.update((r.application_id, r.kind, r.trigger) for r in rows)
    return [s for s in specs if (s.application_id, s.kind, s.trigger) not in have]


#: Per database, per grid: (scan start, `_inputs`) of its last catch-up that found nothing missing (this process).
_QUIET: weakref.WeakKeyDictionary[Database, dict[str, tuple[dt.datetime, tuple[Any, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def _inputs_read() -> PreparedRead:
    """`_inputs` as one prepared statement (equalities instead of ``IN`` lists, which a prepared read cannot
    carry; the database plans both the same way)."""
    h, a = application_history, applications
    rect = _rectifications_table()
    since, now = bindparam("since", type_=h.c.at.type), bindparam("now", type_=h.c.at.type)
    history = (or_(*(h.c.status == s for s in sorted(HISTORY_TASKS))), h.c.at >= since, h.c.at <= now)
    running = (a.c.grid == bindparam("grid"), or_(*(a.c.status == s for s in sorted(CLOCK_RUNNING))))
    return PreparedRead(
        select(
            select(grid_sync.c.last_at).where(grid_sync.c.name == "history").scalar_subquery().label("mark"),
            select(func.count()).select_from(h).where(*history).scalar_subquery().label("history_rows"),
            select(func.max(h.c.at)).where(*history).scalar_subquery().label("history_newest"),
            select(func.count()).select_from(rect).where(rect.c.opened_at >= since).scalar_subquery().label("rects"),
            select(func.max(rect.c.opened_at)).where(rect.c.opened_at >= since).scalar_subquery().label("rects_newest"),
            select(func.count()).select_from(a).where(*running).scalar_subquery().label("running"),
            select(func.max(a.c.updated_at)).where(*running).scalar_subquery().label("running_newest"),
            select(func.sum(a.c.version)).where(*running).scalar_subquery().label("running_versions"),
        ),
        name="grid.catch_up_inputs",
        step_budget=1000,  # a grid's running cases and the history rows since the watermark: a few thousand rows
    )


_INPUTS = _inputs_read()


async def _inputs(db: Database, since: dt.datetime, now: dt.datetime, grid: str) -> tuple[Any, ...]:
    """In one read (one statement: one snapshot), what one grid's tasks derive from: the watermark, the history
    rows and rectifications the scan from ``since`` would see (count, newest), the grid's running cases (count,
    newest change, sum of versions — every change to a case bumps its version) and the date (due soon and overdue
    move with it). A prepared read: inline on SQLite, no statement to build per call."""
    row = (await db.fetch(_INPUTS, since=since, now=now, grid=grid))[0]
    return (local_date(now), *row)


async def catch_up(
    db: Database,
    calendar: WorkingCalendar,
    *,
    now: dt.datetime | None = None,
    grid: str | None = None,
) -> int:
    """Open every task that should exist by ``now``: history rows since the watermark (all grids), then the clock
    tasks of open cases (of ``grid`` only when given: a grid worker's list catches up its own grid quickly).

    Reads first; a write transaction only when a task is missing or the watermark moves, so serving a list that is
    already caught up writes nothing. For one grid, a caught-up scan also remembers (per process) what its tasks
    derive from — `_inputs` —, and the next call that reads the same inputs returns at once after that one read.
    """
    now = now or utcnow()
    today = local_date(now)
    h, a = application_history, applications
    quiet = _QUIET.setdefault(db, {}) if grid is not None else None
    if quiet is not None and grid in quiet:
        seen_since, seen = quiet[grid]
        if await _inputs(db, seen_since, now, grid) == seen:
            return 0  # nothing a task derives from has changed since the last catch-up of this grid
    inputs = None
    if quiet is not None and grid is not None:
        # Read before the scan: a change that lands after this read changes the next reading.
        async with db.read() as conn:
            mark = (await conn.execute(select(grid_sync.c.last_at).where(grid_sync.c.name == "history"))).scalar()
        if mark is not None:
            inputs = (mark - OVERLAP, await _inputs(db, mark - OVERLAP, now, grid))
    async with db.read() as conn:
        mark = (await conn.execute(select(grid_sync.c.last_at).where(grid_sync.c.name == "history"))).scalar()
        since = mark - OVERLAP if mark is not None else None
        if inputs is not None and inputs[0] != since:
            inputs = None  # the watermark moved between the two reads: do not remember this scan
        query = (
            select(h.c.application_id, h.c.status, h.c.position, h.c.at, a.c.grid)
            .join(a, a.c.id == h.c.application_id)
            .where(a.c.grid.is_not(None), h.c.status.in_(tuple(HISTORY_TASKS)), h.c.at <= now)
        )
        if since is not None:
            query = query.where(h.c.at >= since)
        specs: list[TaskSpec] = []
        latest = mark
        for r in await conn.execute(query):
            latest = r.at if latest is None or r.at > latest else latest
            spec = from_history(
                calendar, application_id=r.application_id, grid=r.grid, status=r.status, position=r.position, at=r.at
            )
            if spec is not None:
                specs.append(spec)
        specs.extend(await _rectification_specs(conn, since))
        cols = [a.c.id, a.c.grid, a.c.status, *(a.c[name] for name in clock.COLUMNS)]
        open_cases = select(*cols).where(
            a.c.status.in_(tuple(CLOCK_RUNNING)),
            a.c.deadline <= today + _DUE_SOON_HORIZON,
        )
        open_cases = open_cases.where(a.c.grid == grid) if grid is not None else open_cases.where(a.c.grid.is_not(None))
        specs.extend(s for s in (from_clock(calendar, r, today) for r in await conn.execute(open_cases)) if s)
        missing = await _missing(conn, specs)
    # The watermark moves to the newest row seen (never past it: a row stamped earlier may still be committing).
    advance = latest is not None and (mark is None or latest > mark)
    if quiet is not None and grid is not None:
        quiet.pop(grid, None)
        if inputs is not None and not missing and not advance:
            quiet[grid] = inputs
    if not missing and not advance:
        return 0
    async with db.transaction() as conn:
        inserted = await insert_tasks(conn, missing, now)
        if advance and latest is not None:
            if mark is None:
                statement: Any = insert(grid_sync).values(name="history", last_at=latest)
                try:
                    async with conn.begin_nested():
                        await conn.execute(statement)
                except IntegrityError:
                    mark = latest  # another process inserted it meanwhile: advance it below
            if mark is not None:
                await conn.execute(
                    update(grid_sync)
                    .where(grid_sync.c.name == "history", grid_sync.c.last_at < latest)
                    .values(last_at=latest)
                )
    return inserted


def specs_for_case(
    calendar: WorkingCalendar,
    case: Any,
    history: Sequence[Any],
    rectifications: Sequence[Any],
    today: dt.date,
) -> list[TaskSpec]:
    """Every task one case should have on ``today`` (the naive form of `catch_up`, for checks)."""
    if case.grid is None:
        return []
    out = [
        s
        for s in (
            from_history(
                calendar, application_id=case.id, grid=case.grid, status=h.status, position=h.position, at=h.at
            )
            for h in history
        )
        if s is not None
    ]
    tick = from_clock(calendar, case, today)
    if tick is not None:
        out.append(tick)
    out.extend(
        from_rectification(
            application_id=case.id, grid=case.grid, rectification_id=r.id, opened_at=r.opened_at, due_on=r.due_on
        )
        for r in rectifications
    )
    return out


__all__ = [
    "HISTORY_TASKS",
    "KINDS",
    "STAGES",
    "TaskSpec",
    "catch_up",
    "from_clock",
    "from_history",
    "from_rectification",
    "insert_tasks",
    "specs_for_case",
]
