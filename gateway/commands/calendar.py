"""`onewindow calendar`: deadlines in working days, and a check of the operator override file."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import warnings
from pathlib import Path

from catalog.calendar import (
    OVERRIDES_FILE,
    CalendarConfigError,
    CalendarEstimateWarning,
    WorkingCalendar,
    load_calendar,
)
from gateway.settings import SettingsError, load_settings

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("calendar", help="working-day calendar: deadlines and the override file")
    actions = p.add_subparsers(dest="calendar_command", required=True, metavar="ACTION")

    d = actions.add_parser("deadline", help="print the DAYS-th working day after START (START not counted)")
    d.add_argument("start", metavar="START", help="date the clock starts from, YYYY-MM-DD (e.g. the acceptance date)")
    d.add_argument("days", metavar="DAYS", help="working days, 0 or more")
    d.add_argument("--config-dir", type=Path, help="config directory (default: settings' config_dir)")
    d.set_defaults(handler=run_deadline)

    c = actions.add_parser("check", help=f"validate <config dir>/{OVERRIDES_FILE.as_posix()}")
    c.add_argument("config_dir", metavar="DIR", nargs="?", type=Path, help="config directory")
    c.set_defaults(handler=run_check)


def _calendar(prog: str, config_dir: Path | None) -> WorkingCalendar | None:
    """Load the calendar, printing why not on stderr."""
    try:
        directory = config_dir if config_dir is not None else load_settings().config_dir
        return load_calendar(directory)
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
    except CalendarConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
    return None


def run_deadline(args: argparse.Namespace) -> int:
    prog = "onewindow calendar deadline"
    raw_start: str = args.start
    raw_days: str = args.days
    try:
        if not _ISO_DATE.match(raw_start):
            raise ValueError
        start = dt.date.fromisoformat(raw_start)
    except ValueError:
        print(f"{prog}: START must be a real date as YYYY-MM-DD, got {raw_start!r}", file=sys.stderr)
        return 2
    if not re.fullmatch(r"\d{1,6}", raw_days.strip()):
        print(f"{prog}: DAYS must be a whole number of working days (0 or more), got {raw_days!r}", file=sys.stderr)
        return 2
    calendar = _calendar(prog, args.config_dir)
    if calendar is None:  # a broken override file is not a usage error
        return 1
    # The warning is reported below as one plain stderr line, not as Python's warning format.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalendarEstimateWarning)
        try:
            result = calendar.deadline(start, int(raw_days))
        except ValueError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
    print(result.date.isoformat())
    if result.estimated:
        years = ", ".join(str(y) for y in result.unknown_years)
        print(
            f"warning: estimated on Monday–Friday: no official holiday arrangement known for {years}; "
            f"enter the State Council notice in config/{OVERRIDES_FILE.as_posix()}",
            file=sys.stderr,
        )
    return 0


def run_check(args: argparse.Namespace) -> int:
    calendar = _calendar("onewindow calendar check", args.config_dir)
    if calendar is None:
        return 1
    years = calendar.package_years
    print(f"chinesecalendar: {years.start}-{years.stop - 1}")
    for override in calendar.overrides:
        print(
            f"{override.year}: {override.source} "
            f"({len(override.holidays)} holidays, {len(override.workdays)} make-up working days)"
        )
    return 0
