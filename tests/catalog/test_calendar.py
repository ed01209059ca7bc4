"""The working-day calendar: 2026 fixed points (docs/domain.md#working-days), estimates beyond known years,
overrides, properties.

Expected dates are derived by hand from the 2026 arrangement: 2026-01-01 is a Thursday, so Feb 1 is a Sunday,
May 1 a Friday, Jun 1 a Monday, Sep 1 a Tuesday and Oct 1 a Thursday; 2027-01-01 is a Friday.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.calendar import (
    DEFAULT_CONFIG_DIR,
    CalendarConfigError,
    CalendarEstimateWarning,
    Deadline,
    WorkingCalendar,
    deadline,
    default_calendar,
    load_calendar,
    working_days_between,
)

D = dt.date


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar()


def write_overrides(config_dir: Path, text: str) -> Path:
    path = config_dir / "calendar" / "overrides.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the package really has the 2026 arrangement -------------------------------------------------------
MAKE_UP_DAYS_2026 = [D(2026, 1, 4), D(2026, 2, 14), D(2026, 2, 28), D(2026, 5, 9), D(2026, 9, 20), D(2026, 10, 10)]
HOLIDAYS_2026 = (
    [D(2026, 2, d) for d in range(15, 24)]
    + [D(2026, 5, d) for d in range(1, 6)]
    + [D(2026, 6, d) for d in range(19, 22)]
    + [D(2026, 10, d) for d in range(1, 8)]
)


@pytest.mark.parametrize("day", MAKE_UP_DAYS_2026)
def test_make_up_days_2026_are_weekend_working_days(cal: WorkingCalendar, day: dt.date) -> None:
    assert day.weekday() >= 5
    assert chinese_calendar.is_workday(day)
    assert cal.is_working_day(day)


@pytest.mark.parametrize("day", HOLIDAYS_2026)
def test_holidays_2026_are_days_off(cal: WorkingCalendar, day: dt.date) -> None:
    assert not chinese_calendar.is_workday(day)
    assert not cal.is_working_day(day)


def test_ordinary_days(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(D(2026, 3, 10))  # Tuesday
    assert not cal.is_working_day(D(2026, 3, 14))  # Saturday
    assert not cal.is_working_day(D(2026, 3, 15))  # Sunday


# --- fixed points --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (D(2026, 9, 30), 1, D(2026, 10, 8)),  # Oct 1-7 off; Oct 8 is a Thursday
        (D(2026, 9, 30), 3, D(2026, 10, 10)),  # Thu 8, Fri 9, Sat 10 (make-up)
        (D(2026, 9, 30), 4, D(2026, 10, 12)),  # then Monday
        (D(2026, 10, 9), 1, D(2026, 10, 10)),  # Saturday make-up day
        (D(2026, 2, 13), 1, D(2026, 2, 14)),  # Friday -> Saturday make-up day
        (D(2026, 2, 14), 1, D(2026, 2, 24)),  # Spring Festival Feb 15-23 off; Tuesday
        (D(2026, 2, 13), 2, D(2026, 2, 24)),
        # Feb 14, 24, 25, 26, 27, 28 (Sat make-up), Mar 2-6, Mar 9-13, Mar 16-19 -> 20th is Thu Mar 19
        (D(2026, 2, 13), 20, D(2026, 3, 19)),
        (D(2026, 2, 27), 1, D(2026, 2, 28)),  # Saturday make-up day
        (D(2025, 12, 31), 1, D(2026, 1, 4)),  # Jan 1-3 off; Sunday Jan 4 is worked
        (D(2026, 1, 1), 1, D(2026, 1, 4)),
        (D(2026, 4, 30), 1, D(2026, 5, 6)),  # Labour Day May 1-5 off; Wednesday
        (D(2026, 4, 30), 4, D(2026, 5, 9)),  # May 6, 7, 8, then Saturday May 9 (make-up)
        (D(2026, 4, 30), 5, D(2026, 5, 11)),
        (D(2026, 6, 18), 1, D(2026, 6, 22)),  # Dragon Boat Jun 19-21 off; Monday
        (D(2026, 9, 18), 1, D(2026, 9, 20)),  # Friday -> Sunday make-up day
        (D(2026, 3, 6), 5, D(2026, 3, 13)),  # an ordinary week
        (D(2026, 3, 7), 1, D(2026, 3, 9)),  # from a Saturday
    ],
)
def test_deadline_fixed_points(cal: WorkingCalendar, start: dt.date, n: int, expected: dt.date) -> None:
    result = cal.deadline(start, n)
    assert result == Deadline(expected, estimated=False, unknown_years=())
    assert cal.add_working_days(start, n).date == expected


def test_module_level_deadline_uses_the_repository_config() -> None:
    assert deadline(D(2026, 9, 30), 1).date == D(2026, 10, 8)
    assert working_days_between(D(2026, 9, 30), D(2026, 10, 12)) == 4
    assert default_calendar() is default_calendar()


def test_zero_days_is_the_start_itself_and_negative_is_refused(cal: WorkingCalendar) -> None:
    assert cal.deadline(D(2026, 10, 3), 0) == Deadline(D(2026, 10, 3), estimated=False, unknown_years=())
    assert cal.deadline(D(2030, 1, 1), 0).estimated is False  # no day was counted
    with pytest.raises(ValueError, match="0 or more"):
        cal.deadline(D(2026, 1, 1), -1)
    with pytest.raises(TypeError):
        cal.deadline(D(2026, 1, 1), 1.5)  # type: ignore[arg-type]


def test_working_days_between(cal: WorkingCalendar) -> None:
    assert cal.working_days_between(D(2026, 9, 30), D(2026, 10, 7)) == 0
    assert cal.working_days_between(D(2026, 9, 30), D(2026, 10, 8)) == 1
    assert cal.working_days_between(D(2026, 9, 30), D(2026, 10, 10)) == 3
    assert cal.working_days_between(D(2026, 9, 30), D(2026, 9, 30)) == 0
    assert cal.working_days_between(D(2026, 10, 10), D(2026, 9, 30)) == -3  # overdue: days left go negative
    assert cal.working_days_between(D(2025, 12, 31), D(2026, 1, 4)) == 1


# --- beyond the known years ----------------------------------------------------------------------------
def test_known_years(cal: WorkingCalendar) -> None:
    assert cal.is_known(2004) and cal.is_known(2026)
    assert not cal.is_known(2003) and not cal.is_known(2027)


def test_deadline_into_an_unknown_year_is_estimated_and_warns(cal: WorkingCalendar) -> None:
    # Dec 31 (Thu) is counted in 2026; 2027 is Monday-Friday: Jan 1 (Fri), Jan 4, 5, 6.
    with pytest.warns(CalendarEstimateWarning, match="2027"):
        result = cal.deadline(D(2026, 12, 30), 5)
    assert result == Deadline(D(2027, 1, 6), estimated=True, unknown_years=(2027,))


def test_deadline_within_unknown_years_names_each(cal: WorkingCalendar) -> None:
    with pytest.warns(CalendarEstimateWarning, match="2027, 2028"):
        result = cal.deadline(D(2027, 12, 30), 2)  # Fri Dec 31, 2027 -> Mon Jan 3, 2028
    assert result == Deadline(D(2028, 1, 3), estimated=True, unknown_years=(2027, 2028))


def test_years_before_the_package_are_estimated_too(cal: WorkingCalendar) -> None:
    with pytest.warns(CalendarEstimateWarning, match="2003"):
        result = cal.deadline(D(2003, 12, 26), 1)  # Friday -> Monday Dec 29, 2003
    assert result == Deadline(D(2003, 12, 29), estimated=True, unknown_years=(2003,))
    # Starting on the last day of an unknown year counts no day in it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalendarEstimateWarning)
        later = cal.deadline(D(2003, 12, 31), 1)
    assert later.estimated is False and later.date.year == 2004


def test_known_deadline_does_not_warn(cal: WorkingCalendar) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalendarEstimateWarning)
        cal.deadline(D(2026, 11, 2), 30)


def test_unknown_years_between(cal: WorkingCalendar) -> None:
    assert cal.unknown_years(D(2026, 12, 31), D(2027, 1, 1)) == (2027,)
    assert cal.unknown_years(D(2027, 1, 1), D(2026, 12, 31)) == (2027,)
    assert cal.unknown_years(D(2026, 12, 1), D(2026, 12, 31)) == ()


# --- overrides -----------------------------------------------------------------------------------------
OVERRIDE_2027 = """
[2027]
source = "国务院办公厅关于2027年部分节假日安排的通知"
holidays = [2027-01-01, "2027-02-06..2027-02-12", ["2027-05-01", "2027-05-05"]]
workdays = ["2027-01-02"]
"""


def test_override_makes_2027_known_and_changes_the_result(tmp_path: Path) -> None:
    write_overrides(tmp_path, OVERRIDE_2027)
    cal = load_calendar(tmp_path)
    assert cal.is_known(2027)
    assert cal.source(2027) == "overrides: 国务院办公厅关于2027年部分节假日安排的通知"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalendarEstimateWarning)
        # Without the override: Fri Jan 1 (estimated). With it: Jan 1 off, Saturday Jan 2 worked.
        assert cal.deadline(D(2026, 12, 31), 1) == Deadline(D(2027, 1, 2), estimated=False, unknown_years=())
        # Fri Feb 5 -> Feb 6-12 off -> Sat Feb 13 is an ordinary weekend day -> Mon Feb 15
        assert cal.deadline(D(2027, 2, 5), 1).date == D(2027, 2, 15)
        # The [first, last] range: Fri Apr 30 -> May 1-5 off -> Thu May 6
        assert cal.deadline(D(2027, 4, 30), 1).date == D(2027, 5, 6)
    assert not cal.is_known(2028)


def test_override_wins_over_the_package_for_a_known_year(tmp_path: Path) -> None:
    write_overrides(
        tmp_path,
        """
        [2026]
        source = "a correction"
        holidays = [2026-10-08]
        workdays = [2026-10-11]
        """,
    )
    cal = load_calendar(tmp_path)
    assert cal.deadline(D(2026, 9, 30), 1).date == D(2026, 10, 9)  # Oct 8 now off
    assert cal.deadline(D(2026, 10, 10), 1).date == D(2026, 10, 11)  # Sunday Oct 11 now worked
    assert cal.deadline(D(2026, 2, 13), 1).date == D(2026, 2, 14)  # other package days unchanged


def test_december_of_the_previous_year_is_allowed(tmp_path: Path) -> None:
    write_overrides(tmp_path, '[2028]\nsource = "x"\nholidays = ["2027-12-31..2028-01-02"]\n')
    cal = load_calendar(tmp_path)
    assert not cal.is_working_day(D(2027, 12, 31))
    assert not cal.is_known(2027)


def test_missing_file_or_directory_means_no_overrides(tmp_path: Path) -> None:
    cal = load_calendar(tmp_path)
    assert cal.overrides == ()
    assert not cal.is_known(2027)


def test_shipped_override_file_is_valid() -> None:
    load_calendar(DEFAULT_CONFIG_DIR)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[2027]\nsource = "n"\nholidays = ["2027-02-30"]\n', ":2027:holidays[0]: '2027-02-30' is not a real date"),
        ('[2027]\nsource = "n"\nholidays = ["27-02-03"]\n', ":2027:holidays[0]: '27-02-03' is not a date"),
        (
            '[2027]\nsource = "n"\nholidays = [2027-01-01T08:00:00]\n',
            ":2027:holidays[0]: 2027-01-01T08:00:00 has a time",
        ),
        ('[2027]\nsource = "n"\nholidays = "2027-01-01"\n', ":2027:holidays: must be a list"),
        ('[2027]\nsource = "n"\nholidays = ["2026-06-01"]\n', ":2027:holidays[0]: 2026-06-01 is not in 2027"),
        ('[2027]\nsource = "n"\nholidays = ["2027-02-12..2027-02-06"]\n', "ends before it starts"),
        ('[2027]\nsource = "n"\nholidays = ["2027-01-01..2027-03-01"]\n', "is 60 days; at most 31"),
        ('[2027]\nsource = "n"\nholidays = [[2027-01-01]]\n', "a range is [first, last], got 1 elements"),
        ('[2027]\nsource = "n"\nholidays = [2027-01-01]\nworkdays = [2027-01-04]\n', "2027-01-04 is a weekday"),
        ('[2027]\nsource = "n"\nholidays = ["2027-01-02"]\nworkdays = [2027-01-02]\n', "also listed in holidays"),
        ("[2027]\nholidays = [2027-01-01]\n", ":2027:source: name the notice"),
        ('[2027]\nsource = "n"\n', ":2027:holidays: required for a year chinesecalendar does not know"),
        ('[2027]\nsource = "n"\nholidays = []\n', ":2027:holidays: empty"),
        ('[2027]\nsource = "n"\nholidays = [2027-01-01]\nholiday = []\n', ":2027:holiday: unknown field"),
        ('[next]\nsource = "n"\n', ":next: top-level keys are years"),
        ("2027 = 5\n", ":2027: must be a table"),
        ("[2027\n", ": not valid TOML"),
    ],
)
def test_override_errors_name_file_year_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write_overrides(tmp_path, text)
    with pytest.raises(CalendarConfigError) as info:
        load_calendar(tmp_path)
    assert any(line.startswith(str(path)) and expected in line for line in info.value.problems), info.value.problems


def test_a_date_cannot_be_off_in_one_notice_and_worked_in_another(tmp_path: Path) -> None:
    # Sunday Dec 26, 2027: a holiday in the 2028 notice, a make-up day in the 2027 one.
    write_overrides(
        tmp_path,
        '[2027]\nsource = "a"\nholidays = [2027-01-01]\nworkdays = [2027-12-26]\n'
        '[2028]\nsource = "b"\nholidays = [2027-12-26]\n',
    )
    with pytest.raises(CalendarConfigError, match=r":2028:holidays: 2027-12-26 is listed in \[2027\] workdays"):
        load_calendar(tmp_path)


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    write_overrides(
        tmp_path,
        '[2027]\nholidays = ["2027-02-30", 2027-01-01]\nworkdays = [2027-01-05]\n[2028]\nsource = "x"\nextra = 1\n',
    )
    with pytest.raises(CalendarConfigError) as info:
        load_calendar(tmp_path)
    fields = [line.split(":")[2] for line in info.value.problems]
    assert {"source", "holidays[0]", "workdays[0]", "extra", "holidays"} <= set(fields)
    assert str(info.value).count("\n") == len(info.value.problems) - 1


# --- properties ----------------------------------------------------------------------------------------
STARTS = st.dates(min_value=D(2002, 1, 1), max_value=D(2029, 12, 31))
KNOWN_STARTS = st.dates(min_value=D(2004, 1, 1), max_value=D(2026, 8, 31))
DAYS = st.integers(min_value=0, max_value=60)

# Properties range over unknown years too; the warning itself is tested above.
quiet_estimates = pytest.mark.filterwarnings("ignore::catalog.calendar.CalendarEstimateWarning")


@quiet_estimates
@given(start=STARTS, n=st.integers(min_value=1, max_value=60))
def test_deadline_is_a_working_day_strictly_after_start(start: dt.date, n: int) -> None:
    cal = default_calendar()
    result = cal.deadline(start, n).date
    assert result > start
    assert cal.is_working_day(result)
    assert cal.working_days_between(start, result) == n


@quiet_estimates
@given(start=STARTS, n=DAYS)
def test_deadline_is_monotone_in_n(start: dt.date, n: int) -> None:
    cal = default_calendar()
    assert cal.deadline(start, n).date < cal.deadline(start, n + 1).date


@quiet_estimates
@given(start=STARTS, a=DAYS, b=DAYS)
def test_deadlines_compose(start: dt.date, a: int, b: int) -> None:
    cal = default_calendar()
    assert cal.deadline(start, a + b).date == cal.deadline(cal.deadline(start, a).date, b).date


@quiet_estimates
@given(a=STARTS, b=STARTS, c=STARTS)
def test_working_days_between_is_additive(a: dt.date, b: dt.date, c: dt.date) -> None:
    cal = default_calendar()
    assert cal.working_days_between(a, b) + cal.working_days_between(b, c) == cal.working_days_between(a, c)


@settings(max_examples=60)
@given(start=KNOWN_STARTS, n=st.integers(min_value=1, max_value=60))
def test_deadline_agrees_with_counting_day_by_day_in_the_package(start: dt.date, n: int) -> None:
    day, counted = start, 0
    while counted < n:
        day += dt.timedelta(days=1)
        counted += chinese_calendar.is_workday(day)
    result = default_calendar().deadline(start, n)
    assert result == Deadline(day, estimated=False, unknown_years=())


@quiet_estimates
@given(start=STARTS, n=st.integers(min_value=1, max_value=60))
def test_estimated_exactly_when_a_counted_day_is_in_an_unknown_year(start: dt.date, n: int) -> None:
    cal = default_calendar()
    result = cal.deadline(start, n)
    first = start + dt.timedelta(days=1)
    years = {y for y in range(first.year, result.date.year + 1)}
    assert result.unknown_years == tuple(sorted(y for y in years if not cal.is_known(y)))
    assert result.estimated == bool(result.unknown_years)


@quiet_estimates
def test_deadline_is_fast() -> None:
    cal = WorkingCalendar()
    starts = [D(2024, 1, 1) + dt.timedelta(days=i) for i in range(900)]
    began = time.process_time()  # CPU time: other processes on a busy machine do not count
    for start in starts:
        cal.deadline(start, 60)
    per_call = (time.process_time() - began) / len(starts)
    assert per_call < 0.001, f"{per_call * 1e6:.0f} µs of CPU per deadline"
