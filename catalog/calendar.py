"""The working-day calendar: official holidays and make-up working days (调休) for promised time limits.

Sources, in order of precedence:

1. the operator override file ``config/calendar/overrides.toml`` — next year's State Council notice entered before a
   package update, or a correction to a year the package already knows;
2. the ``chinesecalendar`` package (``chinese_calendar``), which knows 2004-2026 and raises for other years;
3. for any other year, Monday–Friday is assumed and the result is flagged as estimated
   (`Deadline.estimated`, plus a `CalendarEstimateWarning`).

Override file format (one table per year; every problem is reported as ``file:year:field: message``)::

    [2027]
    source = "国务院办公厅关于2027年部分节假日安排的通知"
    holidays = [2027-01-01, "2027-02-06..2027-02-13", [2027-05-01, 2027-05-05]]
    workdays = [2027-02-14]   # make-up working days: Saturdays or Sundays

A date is a TOML date or a ``YYYY-MM-DD`` string; a range is ``"A..B"`` or ``[A, B]`` (both ends included).
Dates lie in the table's year, or in December of the year before (a notice often starts with New Year's Eve).
A year with a table is known; listing a date changes only that date, other dates keep the package's answer.

Deadlines count working days from the day after ``start`` (docs/domain.md#working-days): ``deadline(start, 1)``
is the first working day after ``start``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import chinese_calendar
import msgspec

__all__ = [
    "DEFAULT_CONFIG_DIR",
    "DISTRICT_TZ",
    "OVERRIDES_FILE",
    "CalendarConfigError",
    "CalendarEstimateWarning",
    "Deadline",
    "WorkingCalendar",
    "YearOverride",
    "cached_calendar",
    "deadline",
    "default_calendar",
    "district_today",
    "load_calendar",
    "local_date",
    "local_time",
    "working_days_between",
]

#: The repository's config/ (catalog must not import gateway, so it is computed here, not taken from settings).
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
#: Where the override file lives, relative to a config dir.
OVERRIDES_FILE = Path("calendar") / "overrides.toml"
#: The district keeps Beijing time (UTC+8, no daylight saving). Acceptance dates, deadlines, certificate validity
#: and every time shown to people are in it; the database stores UTC.
DISTRICT_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def local_date(at: dt.datetime) -> dt.date:
    """The district's date at an instant."""
    return at.astimezone(DISTRICT_TZ).date()


def local_time(at: dt.datetime) -> dt.datetime:
    """An instant as shown to people: ISO 8601 with the +08:00 offset."""
    return at.astimezone(DISTRICT_TZ)


def district_today() -> dt.date:
    """Today in the district (not UTC's today: between 00:00 and 08:00 Beijing time they differ)."""
    return dt.datetime.now(DISTRICT_TZ).date()


# A range longer than this is almost certainly a typo (the longest official break is 9 days).
_MAX_RANGE_DAYS = 31
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class CalendarEstimateWarning(UserWarning):
    """A deadline counted days in a year no official arrangement is known for (Monday–Friday was assumed)."""


class CalendarConfigError(ValueError):
    """The override file is invalid; ``problems`` holds one ``file:year:field: message`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Deadline(msgspec.Struct, frozen=True):
    """A computed deadline; ``estimated`` when any counted day lay in ``unknown_years`` (Monday–Friday assumed)."""

    date: dt.date
    estimated: bool
    unknown_years: tuple[int, ...] = ()


class YearOverride(msgspec.Struct, frozen=True):
    """One year's arrangement as the operator entered it."""

    year: int
    source: str
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]


def _package_years() -> range:
    """The years chinesecalendar answers for (it raises NotImplementedError outside them)."""
    days = chinese_calendar.holidays.keys()
    return range(min(days).year, max(days).year + 1)


class WorkingCalendar:
    """Working days from chinesecalendar, operator overrides on top, Monday–Friday (flagged) elsewhere.

    Each year's working days are computed once into a sorted tuple of ordinals, so a deadline or a count is a
    few binary searches, whatever ``n`` is.
    """

    def __init__(self, overrides: Iterable[YearOverride] = (), *, package_years: range | None = None) -> None:
        self.overrides: tuple[YearOverride, ...] = tuple(sorted(overrides, key=lambda o: o.year))
        self.package_years = _package_years() if package_years is None else package_years
        self._override_years = frozenset(o.year for o in self.overrides)
        # Date -> working? from the override file; it wins over the package.
        self._overridden: dict[dt.date, bool] = {}
        for o in self.overrides:
            self._overridden.update(dict.fromkeys(o.holidays, False))
            self._overridden.update(dict.fromkeys(o.workdays, True))
        self._years: dict[int, tuple[int, ...]] = {}

    # --- per-day answers ------------------------------------------------------------------------------
    def is_known(self, year: int) -> bool:
        """True when the year's official arrangement is known (package or override file)."""
        return year in self.package_years or year in self._override_years

    def is_working_day(self, d: dt.date) -> bool:
        ordinals = self._working_ordinals(d.year)
        i = bisect.bisect_left(ordinals, d.toordinal())
        return i < len(ordinals) and ordinals[i] == d.toordinal()

    def source(self, year: int) -> str | None:
        """Where the year's arrangement comes from, for operators; None when unknown."""
        for o in self.overrides:
            if o.year == year:
                return f"overrides: {o.source}"
        return "chinesecalendar" if year in self.package_years else None

    def _working_ordinals(self, year: int) -> tuple[int, ...]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        first = dt.date(year, 1, 1).toordinal()
        last = dt.date(year, 12, 31).toordinal()
        in_package = year in self.package_years
        working: list[int] = []
        for ordinal in range(first, last + 1):
            d = dt.date.fromordinal(ordinal)
            flag = self._overridden.get(d)
            if flag is None:
                flag = bool(chinese_calendar.is_workday(d)) if in_package else d.weekday() < 5
            if flag:
                working.append(ordinal)
        result = tuple(working)
        self._years[year] = result
        return result

    # --- counting -------------------------------------------------------------------------------------
    def deadline(self, start: dt.date, n: int) -> Deadline:
        """The ``n``-th working day after ``start`` (``start`` not counted); ``n == 0`` gives ``start``.

        Warns with `CalendarEstimateWarning` when a counted day lies in a year without a known arrangement.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("n must be an int (working days)")
        if n < 0:
            raise ValueError(f"n must be 0 or more working days, got {n}")
        if n == 0:
            return Deadline(start, estimated=False, unknown_years=())
        remaining = n
        after = start.toordinal()
        year = start.year
        while True:
            if year > dt.MAXYEAR:
                raise ValueError(f"{n} working days after {start.isoformat()} is beyond the year {dt.MAXYEAR}")
            ordinals = self._working_ordinals(year)
            i = bisect.bisect_right(ordinals, after)
            available = len(ordinals) - i
            if available >= remaining:
                result = dt.date.fromordinal(ordinals[i + remaining - 1])
                break
            remaining -= available
            year += 1
        unknown = self.unknown_years(start, result)
        if unknown:
            warnings.warn(
                f"deadline {result.isoformat()} is estimated (Monday–Friday) for years without a known holiday "
                f"arrangement: {', '.join(map(str, unknown))}; enter the State Council notice in "
                f"config/{OVERRIDES_FILE.as_posix()}",
                CalendarEstimateWarning,
                stacklevel=2,
            )
        return Deadline(result, estimated=bool(unknown), unknown_years=unknown)

    add_working_days = deadline

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after ``start`` up to and including ``end``; negative when ``end`` is before ``start``.

        Additive: ``between(a, b) + between(b, c) == between(a, c)`` for any dates, so "working days left" simply
        turns negative once a deadline has passed.
        """
        if end < start:
            return -self.working_days_between(end, start)
        total = 0
        for year in range(start.year, end.year + 1):
            ordinals = self._working_ordinals(year)
            hi = bisect.bisect_right(ordinals, end.toordinal())
            lo = bisect.bisect_right(ordinals, start.toordinal())
            total += hi - lo
        return total

    def unknown_years(self, start: dt.date, end: dt.date) -> tuple[int, ...]:
        """Years without a known arrangement among the days after ``start`` up to ``end`` (either order)."""
        lo, hi = (start, end) if start <= end else (end, start)
        if lo == hi:
            return ()
        first_counted = lo + dt.timedelta(days=1)
        return tuple(y for y in range(first_counted.year, hi.year + 1) if not self.is_known(y))


# --- override file -------------------------------------------------------------------------------------
def _parse_day(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value.isoformat()} has a time; give a date (YYYY-MM-DD)")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a real date") from None
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")


def _parse_entry(value: object) -> list[dt.date]:
    """A date, ``"A..B"`` or ``[A, B]`` -> the dates it covers."""
    if isinstance(value, str) and ".." in value:
        parts: list[object] = list(value.split("..", 1))
    elif isinstance(value, list):
        if len(value) != 2:
            raise ValueError(f"a range is [first, last], got {len(value)} elements")
        parts = list(value)
    else:
        return [_parse_day(value)]
    first, last = _parse_day(parts[0]), _parse_day(parts[1])
    if last < first:
        raise ValueError(f"range {first.isoformat()}..{last.isoformat()} ends before it starts")
    span = (last - first).days + 1
    if span > _MAX_RANGE_DAYS:
        raise ValueError(f"range {first.isoformat()}..{last.isoformat()} is {span} days; at most {_MAX_RANGE_DAYS}")
    return [first + dt.timedelta(days=i) for i in range(span)]


def _parse_dates(value: object, year: int, field: str, where: str, problems: list[str]) -> set[dt.date]:
    if not isinstance(value, list):
        problems.append(f"{where}:{field}: must be a list of dates or ranges")
        return set()
    days: set[dt.date] = set()
    for index, entry in enumerate(value):
        at = f"{where}:{field}[{index}]"
        try:
            covered = _parse_entry(entry)
        except ValueError as exc:
            problems.append(f"{at}: {exc}")
            continue
        for d in covered:
            if not (d.year == year or (d.year == year - 1 and d.month == 12)):
                problems.append(
                    f"{at}: {d.isoformat()} is not in {year} (only December {year - 1} may precede a year's notice)"
                )
                break
            if field == "workdays" and d.weekday() < 5:
                problems.append(
                    f"{at}: {d.isoformat()} is a weekday; make-up working days (调休) are Saturdays or Sundays"
                )
                break
            days.add(d)
    return days


def parse_overrides(data: Mapping[str, Any], file: str, *, package_years: range | None = None) -> list[YearOverride]:
    """Validate a decoded override file; raises `CalendarConfigError` listing every problem."""
    known = _package_years() if package_years is None else package_years
    problems: list[str] = []
    result: list[YearOverride] = []
    owner: dict[dt.date, tuple[int, str]] = {}
    for key, table in data.items():
        where = f"{file}:{key}"
        if not (key.isdigit() and len(key) == 4 and 1949 <= int(key) <= 2200):
            problems.append(f"{where}: top-level keys are years (a table like [2027]), got {key!r}")
            continue
        year = int(key)
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table with source, holidays and workdays")
            continue
        for unknown_field in sorted(set(table) - {"source", "holidays", "workdays"}):
            problems.append(f"{where}:{unknown_field}: unknown field (expected source, holidays, workdays)")
        source = table.get("source")
        if not isinstance(source, str) or not source.strip():
            problems.append(
                f"{where}:source: name the notice the dates come from, e.g. 国务院办公厅关于{year}年…的通知"
            )
            source = ""
        if "holidays" not in table and year not in known:
            problems.append(f"{where}:holidays: required for a year chinesecalendar does not know")
        holidays = _parse_dates(table.get("holidays", []), year, "holidays", where, problems)
        workdays = _parse_dates(table.get("workdays", []), year, "workdays", where, problems)
        if year not in known and table.get("holidays") == []:
            problems.append(f"{where}:holidays: empty; a year's notice always has holidays")
        for d in sorted(holidays & workdays):
            problems.append(f"{where}:workdays: {d.isoformat()} is also listed in holidays")
        for field, days in (("holidays", holidays), ("workdays", workdays)):
            for d in sorted(days):
                previous = owner.setdefault(d, (year, field))
                if previous[0] != year and previous[1] != field:
                    problems.append(
                        f"{where}:{field}: {d.isoformat()} is listed in [{previous[0]}] {previous[1]} as well"
                    )
        result.append(YearOverride(year, source.strip(), frozenset(holidays), frozenset(workdays)))
    if problems:
        raise CalendarConfigError(problems)
    return result


def load_overrides(path: Path, *, package_years: range | None = None) -> list[YearOverride]:
    """Read and validate one override file; a missing file means no overrides."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CalendarConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CalendarConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return parse_overrides(data, str(path), package_years=package_years)


def load_calendar(config_dir: Path = DEFAULT_CONFIG_DIR) -> WorkingCalendar:
    """The calendar for a config dir (``<config_dir>/calendar/overrides.toml``); raises `CalendarConfigError`."""
    return WorkingCalendar(load_overrides(config_dir / OVERRIDES_FILE))


@cache
def cached_calendar(config_dir: Path = DEFAULT_CONFIG_DIR) -> WorkingCalendar:
    """`load_calendar`, once per config dir and process (a calendar never changes while a process runs)."""
    return load_calendar(config_dir)


def default_calendar() -> WorkingCalendar:
    """The calendar for the repository's config/, loaded once per process."""
    return cached_calendar(DEFAULT_CONFIG_DIR)


def deadline(start: dt.date, n: int) -> Deadline:
    """The ``n``-th working day after ``start`` with the repository's config (see `WorkingCalendar.deadline`)."""
    return default_calendar().deadline(start, n)


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` with the repository's config."""
    return default_calendar().working_days_between(start, end)
