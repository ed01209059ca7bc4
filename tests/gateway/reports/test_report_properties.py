"""Every report figure equals a naive recomputation from the raw rows (hypothesis, SQLite and PostgreSQL).

Random case histories are written straight into the case tables the way intake, lifecycle, tracking and the grid
write them (the stored clock comes from `gateway.cases.clock`): acceptances across the 2026 Spring Festival and its
make-up working days (调休), corrections and special procedures pausing the clock, completions on the last day and
one working day late, withdrawals, evaluations and their rectifications, grid tasks and materials. The naive side
reads every row back and recomputes each figure with its own day-by-day working-day counting and its own replay of
the clock from the history rows — no grouping, no index, no shared helper but the calendar's per-day answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from catalog.calendar import DEFAULT_CONFIG_DIR, DISTRICT_TZ, cached_calendar
from catalog.loader import cached_catalog
from gateway.cases import clock
from gateway.cases.tables import application_history, application_materials, applications
from gateway.grid.tables import grid_tasks
from gateway.reports import figures
from gateway.reports.build import BREAKDOWNS
from gateway.reports.figures import COUNTS
from gateway.reports.services import ReportService
from gateway.settings import Settings
from gateway.storage import Database
from gateway.storage.metadata import new_id
from gateway.tracking.tables import evaluations, rectifications

CATALOG = cached_catalog(DEFAULT_CONFIG_DIR)
CAL = cached_calendar(DEFAULT_CONFIG_DIR)
#: 2026-01-26 (a Monday) … : the window spans the Spring Festival (2/15-2/23) and the 调休 days 2/14 and 2/28.
BASE = dt.date(2026, 1, 26)
STREET_A, STREET_B = "430302001000", "430302002000"
COMMUNITY_A, COMMUNITY_B = "430302001001", "430302002001"
#: Where a case lives: a grid (under a community) or, without a grid, the window that filed it.
PLACES = (COMMUNITY_A + "001", COMMUNITY_A + "002", COMMUNITY_B + "001", COMMUNITY_A, STREET_B)
ITEMS = ("0205006100", "0720003100", "0107001100")
PERIODS = [("weekly", BASE + dt.timedelta(days=7 * k)) for k in range(6)] + [
    ("monthly", dt.date(2026, 2, 1)),
    ("monthly", dt.date(2026, 3, 1)),
]
UNITS = ("430302000000", STREET_A, COMMUNITY_A)

days = st.integers(min_value=0, max_value=45)
case_plans = st.fixed_dictionaries(
    {
        "place": st.sampled_from(PLACES),
        "item": st.sampled_from(ITEMS),
        "created": days,
        "hour": st.integers(min_value=0, max_value=23),
        "decision": st.sampled_from(["draft", "not_accepted", "accepted", "accepted", "accepted"]),
        "delay": st.integers(min_value=0, max_value=3),
        "pauses": st.lists(
            st.tuples(
                st.sampled_from(["correction_required", "special_procedure"]),
                st.integers(min_value=0, max_value=12),
                st.integers(min_value=1, max_value=15),
            ),
            max_size=2,
        ),
        "resume_last": st.booleans(),
        "ending": st.sampled_from(["open", "last_day", "one_late", "random", "withdrawn"]),
        "end_after": st.integers(min_value=0, max_value=30),
        "verdict": st.sampled_from(["approved", "denied"]),
        "evaluation": st.none() | st.tuples(st.integers(1, 5), st.integers(0, 10), st.none() | st.integers(0, 30)),
        "tasks": st.lists(st.tuples(days, st.none() | st.integers(-3, 3)), max_size=3),
        # (trust level, own scan in this application, required): A certificate, B reused or verified here, C upload,
        # D commitment, None missing.
        "materials": st.lists(
            st.tuples(
                st.sampled_from([("A", False), ("B", False), ("B", True), ("C", True), ("D", False), (None, False)]),
                st.booleans(),
            ),
            max_size=4,
        ),
    }
)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), DISTRICT_TZ).astimezone(dt.UTC)


def rows_for(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The rows one case leaves in the tables."""
    item = CATALOG.item(plan["item"])
    assert item is not None
    place, hour = plan["place"], plan["hour"]
    grid = place if len(place) == 15 else None
    filing = place[:12] if grid else place
    case_id = new_id()
    created = BASE + dt.timedelta(days=plan["created"])
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    history = out["application_history"]

    def step(status: str, day: dt.date, from_status: str | None) -> None:
        history.append(
            {
                "id": new_id(),
                "application_id": case_id,
                "position": len(history) + 1,
                "status": status,
                "from_status": from_status,
                "at": at(day, hour),
                "actor": "t",
                "actor_role": "officer",
            }
        )

    row: dict[str, Any] = {
        "id": case_id,
        "item_code": item.code,
        "item_name": item.name,
        "item_version": 1,
        "department": item.department,
        "filing_unit": filing,
        "handling_unit": filing,
        "grid": grid,
        "status": "draft",
        "version": 1,
        "applicant_id_number": "x",
        "applicant_id_index": "x",
        "applicant_id_number_masked": "x",
        "applicant_name": "x",
        "applicant_name_masked": "x",
        "applicant_phone": "x",
        "applicant_phone_masked": "x",
        "consent": True,
        "purpose": "p",
        "created_by": "t",
        "created_at": at(created, hour),
        "updated_at": at(created, hour),
        "deadline_estimated": False,
    }
    step("draft", created, None)
    decided = created + dt.timedelta(days=plan["delay"])
    if plan["decision"] == "not_accepted":
        step("not_accepted", decided, "draft")
        row["status"] = "not_accepted"
    elif plan["decision"] == "accepted":
        state = clock.start(CAL, decided, item.promised_days)
        row |= {"accepted_on": decided, "accepted_at": at(decided, hour)}
        step("accepted", decided, "draft")
        step("in_review", decided, "accepted")
        status, day = "in_review", decided
        for n, (kind, after, length) in enumerate(plan["pauses"]):
            day += dt.timedelta(days=after)
            step(kind, day, status)
            state = clock.pause(CAL, state, day)
            status = kind
            if n < len(plan["pauses"]) - 1 or plan["resume_last"]:
                day += dt.timedelta(days=length)
                step("in_review", day, status)
                state = clock.resume(CAL, state, day)
                status = "in_review"
        ending = plan["ending"]
        if status != "in_review":
            ending = "open"  # still paused
        if ending in ("last_day", "one_late", "random", "withdrawn"):
            if ending == "last_day":
                final = max(day, state.deadline)
            elif ending == "one_late":
                final = max(day, CAL.deadline(state.deadline, 1).date)
            else:
                final = day + dt.timedelta(days=plan["end_after"])
            target = "withdrawn" if ending == "withdrawn" else plan["verdict"]
            step(target, final, status)
            state = clock.stop(CAL, state, final)
            status = target
            if target != "withdrawn" and plan["evaluation"] is not None:
                level, after_days, closed_after = plan["evaluation"]
                when = at(final + dt.timedelta(days=after_days), hour)
                evaluation_id = new_id()
                out["evaluations"].append(
                    {"id": evaluation_id, "application_id": case_id, "level": level, "comment": "c", "created_at": when}
                )
                if level <= 2:
                    due = CAL.deadline(when.astimezone(DISTRICT_TZ).date(), 15).date
                    closed = when + dt.timedelta(days=closed_after) if closed_after is not None else None
                    out["rectifications"].append(
                        {
                            "id": new_id(),
                            "application_id": case_id,
                            "evaluation_id": evaluation_id,
                            "status": "closed" if closed else "open",
                            "level": level,
                            "item_code": item.code,
                            "department": item.department,
                            "handling_unit": filing,
                            "opened_at": when,
                            "due_on": due,
                            "due_estimated": False,
                            "closed_at": closed,
                        }
                    )
        row |= clock.clock_columns(state) | {"status": status}
    if grid is not None:
        for due_after, late in plan["tasks"]:
            due = BASE + dt.timedelta(days=due_after)
            done = None if late is None else due + dt.timedelta(days=late)
            out["grid_tasks"].append(
                {
                    "id": new_id(),
                    "application_id": case_id,
                    "grid": grid,
                    "stage": "during",
                    "kind": "accepted",
                    "trigger": f"h{due_after}-{len(out['grid_tasks'])}",
                    "opened_on": BASE,
                    "due_on": due,
                    "status": "done" if done else "open",
                    "completed_on": done,
                    "created_at": at(BASE, 9),
                }
            )
    for i, ((level, scanned), required) in enumerate(plan["materials"]):
        state_name = {"A": "prefilled", None: "missing"}.get(level, "provided")
        out["application_materials"].append(
            {
                "id": new_id(),
                "application_id": case_id,
                "key": f"m{i}",
                "position": i,
                "name": "m",
                "required": required,
                "source": "applicant",
                "state": state_name,
                "level": level,
                "file_sha256": "0" * 64 if scanned else None,
                "updated_at": at(created, hour),
            }
        )
    out["applications"].append(row)
    return out


# --- the naive side ------------------------------------------------------------------------------------------
def wd_between(a: dt.date, b: dt.date) -> int:
    """Working days after ``a`` up to and including ``b`` (negative when b < a), one day at a time."""
    if b < a:
        return -wd_between(b, a)
    return sum(1 for k in range(1, (b - a).days + 1) if CAL.is_working_day(a + dt.timedelta(days=k)))


def wd_after(a: dt.date, n: int) -> dt.date:
    d = a
    while n > 0:
        d += dt.timedelta(days=1)
        n -= CAL.is_working_day(d)
    return d


def local(t: dt.datetime) -> dt.date:
    return t.astimezone(DISTRICT_TZ).date()


def replay(case: Any, history: list[Any], until: dt.date | None) -> dict[str, Any]:
    """The clock from the history rows (up to the end of ``until``): deadline, paused days left, completion."""
    deadline = wd_after(case.accepted_on, case.promised_days)
    left_at_pause: int | None = None
    done: dt.date | None = None
    for h in history:
        day = local(h.at)
        if until is not None and day > until:
            break
        if h.status in ("correction_required", "special_procedure") and left_at_pause is None:
            left_at_pause = wd_between(day, deadline)
            if day > deadline:
                left_at_pause = min(left_at_pause, -1)
        elif h.status == "in_review" and left_at_pause is not None:
            if left_at_pause >= 0:
                deadline = wd_after(day, left_at_pause)
            else:
                d = day - dt.timedelta(days=1)
                while wd_between(d, day) < -left_at_pause:
                    d -= dt.timedelta(days=1)
                deadline = d
            left_at_pause = None
        elif h.status in ("approved", "denied", "withdrawn"):
            done = day
            break
    return {"deadline": deadline, "left_at_pause": left_at_pause, "done": done}


def naive(raw: dict[str, list[Any]], start: dt.date, end: dt.date) -> dict[tuple[str, str, str], dict[str, int]]:
    """Counts per (place, department, item) from the raw rows."""
    out: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    cases = {c.id: c for c in raw["applications"]}
    key = {c.id: (c.grid or c.filing_unit, c.department, c.item_code) for c in cases.values()}
    history: dict[str, list[Any]] = defaultdict(list)
    for h in sorted(raw["application_history"], key=lambda h: (h.application_id, h.position)):
        history[h.application_id].append(h)

    def inside(d: dt.date) -> bool:
        return start <= d <= end

    for c in cases.values():
        k = out[key[c.id]]
        k["received"] += inside(local(c.created_at))
        for h in history[c.id]:
            k["not_accepted"] += h.status == "not_accepted" and inside(local(h.at))
            k["corrections"] += h.status == "correction_required" and inside(local(h.at))
            k["special_procedures"] += h.status == "special_procedure" and inside(local(h.at))
        if c.accepted_on is None:
            continue
        k["accepted"] += inside(c.accepted_on)
        full = replay(c, history[c.id], None)
        verdicts = [h for h in history[c.id] if h.status in ("approved", "denied")]
        if verdicts and inside(local(verdicts[0].at)):
            day = local(verdicts[0].at)
            k["completed"] += 1
            if full["left_at_pause"] is not None:
                punctual, left = full["left_at_pause"] >= 0, full["left_at_pause"]
            else:
                punctual, left = day <= full["deadline"], wd_between(day, full["deadline"])
                if day > full["deadline"]:
                    left = min(left, -1)
            k["completed_on_time"] += punctual
            k["working_days_used"] += c.promised_days - left
        if c.accepted_on <= end:
            then = replay(c, history[c.id], end)
            if then["done"] is None:
                k["open_at_end"] += 1
                late = then["left_at_pause"] < 0 if then["left_at_pause"] is not None else end > then["deadline"]
                k["overdue_open"] += late
        if inside(c.accepted_on):
            for m in raw["application_materials"]:
                if m.application_id == c.id and m.required and m.level is not None:
                    k["materials_satisfied"] += 1
                    k["materials_prefilled"] += m.level in ("A", "D") or (m.level == "B" and m.file_sha256 is None)
    collected = {t.evaluation_id for t in raw["grid_tasks"] if t.evaluation_id}
    for e in raw["evaluations"]:
        if not inside(local(e.created_at)):
            continue
        k = out[key[e.application_id]]
        k["evaluations"] += 1
        k["satisfied"] += e.level >= 4
        k["bad_reviews"] += e.level <= 2
        k["grid_collected_evaluations"] += e.id in collected
        for r in raw["rectifications"]:
            if r.evaluation_id == e.id and r.closed_at is not None:
                closed = local(r.closed_at)
                k["rectified_in_time"] += closed <= r.due_on and closed <= end
    per_case: dict[str, list[Any]] = defaultdict(list)
    for t in raw["grid_tasks"]:
        if t.application_id and inside(t.due_on):
            per_case[t.application_id].append(t)
    for case_id, tasks in per_case.items():
        k = out[key[case_id]]
        k["grid_cases"] += 1
        k["grid_covered"] += all(t.completed_on is not None and t.completed_on <= t.due_on for t in tasks)
    return out


def expected_rows(
    groups: dict[tuple[str, str, str], dict[str, int]], unit: str
) -> dict[tuple[str, str], dict[str, int]]:
    """Sum the naive groups by breakdown for ``unit``'s report, plus the totals (breakdown ``total``)."""
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for (place, department, item), counts in groups.items():
        street = place[:9] + "000"
        community = place[:12] if len(place) >= 12 and not place.endswith("000") else None
        if unit != "430302000000" and unit not in (street, community):
            continue
        targets = [("total", unit), ("department", department), ("item", item)]
        targets.append(("street", street))
        if community:
            targets.append(("community", community))
        for target in targets:
            for name, value in counts.items():
                sums[target][name] += value
    return sums


async def scenario(
    db_settings: Settings, plans: list[dict[str, Any]], period: str, start: dt.date, window: int | None = None
) -> None:
    """Write the plans' rows, compute the report and compare every figure with the naive recount. ``window``: the
    days around the period whose working-day ordinals the completion read takes from SQL (0: only the period's
    own, so most deadlines take the Python path for deadlines outside the window)."""
    db = Database.from_settings(db_settings)
    tables = (grid_tasks, rectifications, evaluations, application_materials, application_history, applications)
    try:
        async with db.transaction() as conn:
            for table in tables:
                await conn.execute(delete(table))
            combined: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for plan in plans:
                for name, rows in rows_for(plan).items():
                    combined[name].extend(rows)
            for table in reversed(tables):
                if combined[table.name]:
                    rows = [{c.name: r.get(c.name) for c in table.columns} for r in combined[table.name]]
                    await conn.execute(insert(table), rows)
        raw: dict[str, list[Any]] = {}
        async with db.read() as conn:
            for table in tables:
                raw[table.name] = list(await conn.execute(select(table)))
        service = ReportService(database=db, calendar=CAL, catalog=CATALOG)
        with mock.patch.object(
            figures, "CALENDAR_WINDOW_DAYS", figures.CALENDAR_WINDOW_DAYS if window is None else window
        ):
            bodies = await service.compute(period, start, list(UNITS))  # type: ignore[arg-type]
        end = dt.date.fromisoformat(bodies[UNITS[0]]["end"])
        groups = naive(raw, start, end)
        for unit, body in bodies.items():
            want = expected_rows(groups, unit)
            got = {("total", unit): body["totals"]} | {(r["breakdown"], r["code"]): r for r in body["rows"]}
            for where, counts in want.items():
                if where not in got:
                    # Only groups where something happened get a department or item row; streets and communities
                    # outside the unit have none.
                    assert where[0] in ("street", "community") or not any(counts.values()), (unit, where, counts)
                    continue
                for name in COUNTS:
                    assert got[where][name] == counts[name], (unit, where, name, got[where][name], counts[name])
            for where, row in got.items():
                if where not in want:
                    assert all(row[name] == 0 for name in COUNTS), (unit, where)
            totals = body["totals"]
            if totals["completed"]:
                assert totals["on_time_rate"] == totals["completed_on_time"] / totals["completed"]
            else:
                assert totals["on_time_rate"] is None
            if totals["evaluations"]:
                assert totals["satisfaction_rate"] == totals["satisfied"] / totals["evaluations"]
            assert {r["breakdown"] for r in body["rows"]} <= set(BREAKDOWNS)
    finally:
        await db.dispose()


@settings(
    max_examples=30,
    deadline=None,
    # No shrinking: each example is a database round trip; a failure prints its full example instead.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plans=st.lists(case_plans, min_size=1, max_size=12),
    period=st.sampled_from(PERIODS),
    window=st.sampled_from([None, 0, 3]),
)
def test_every_figure_equals_a_naive_recount(
    db_settings: Settings, plans: list[dict[str, Any]], period: tuple[str, dt.date], window: int | None
) -> None:
    asyncio.run(scenario(db_settings, plans, *period, window=window))


def test_a_known_history_counts_as_expected(db_settings: Settings) -> None:
    """A hand-made check of the naive side itself: accepted Friday 2026-02-13, 1 promised working day — the 14th
    is a make-up working day (调休), so completing on the 14th is on time and on the 24th (after the festival) late."""
    assert wd_after(dt.date(2026, 2, 13), 1) == dt.date(2026, 2, 14)
    assert wd_after(dt.date(2026, 2, 14), 1) == dt.date(2026, 2, 24)
    on_time = {
        "place": PLACES[0],
        "item": "0720003100",
        "created": 18,
        "hour": 10,
        "decision": "accepted",
        "delay": 0,
        "pauses": [],
        "resume_last": True,
        "ending": "last_day",
        "end_after": 0,
        "verdict": "approved",
        "evaluation": (5, 0, None),
        "tasks": [],
        "materials": [(("A", False), True)],
    }
    late = on_time | {"ending": "one_late", "evaluation": (1, 0, 2)}
    # Open at the end of February: due on the 28th (a make-up working day) is not overdue yet, due on the 27th is.
    due_on_last_day = on_time | {"created": 32, "ending": "open", "evaluation": None}
    due_the_day_before = due_on_last_day | {"created": 31}
    assert wd_after(dt.date(2026, 2, 27), 1) == dt.date(2026, 2, 28)
    plans = [on_time, late, due_on_last_day, due_the_day_before]
    asyncio.run(scenario(db_settings, plans, "monthly", dt.date(2026, 2, 1)))
    # Completed on Sunday 1 March, the day after its deadline (Saturday 28 February, a make-up working day): no
    # working day lies between, and it still counts as one day late — through the working-day ordinals in SQL,
    # and (window 0: the deadline lies outside it) through the clock in Python.
    sunday_after = due_on_last_day | {"ending": "random", "end_after": 2}
    assert not CAL.is_working_day(dt.date(2026, 3, 1))
    for window in (None, 0):
        asyncio.run(scenario(db_settings, [sunday_after], "monthly", dt.date(2026, 3, 1), window=window))
    groups = naive(
        {
            "applications": [],
            "application_history": [],
            "evaluations": [],
            "rectifications": [],
            "grid_tasks": [],
            "application_materials": [],
        },
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 28),
    )
    assert groups == {}


pytestmark = pytest.mark.slow
