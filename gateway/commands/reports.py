"""`onewindow reports generate weekly|monthly [--start YYYY-MM-DD] [--unit CODE]`: generate (or regenerate) a
report now and print where it is stored (the ``reports`` table row: period, start, unit, version, SHA-256).

Without ``--start``: the most recent complete week or month (Beijing dates). Without ``--unit``: the district and
every street and community, as the schedule does. Earlier versions are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from gateway.commands.support import add_settings_options, cli_actor, command_settings, run_on_database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reports", help="generate weekly and monthly reports")
    actions = p.add_subparsers(dest="reports_command", required=True, metavar="ACTION")
    gen = actions.add_parser("generate", help="generate a report now (a new version; earlier ones are kept)")
    gen.add_argument("period", choices=("weekly", "monthly"))
    gen.add_argument("--start", type=dt.date.fromisoformat, help="a Monday (weekly) or the 1st (monthly)")
    gen.add_argument("--unit", help="district, street or community code (default: all of them)")
    add_settings_options(gen)
    gen.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from catalog.calendar import cached_calendar, district_today
    from catalog.loader import cached_catalog
    from gateway.problems import ProblemError
    from gateway.reports.periods import check_start, last_complete
    from gateway.reports.services import ReportService, StoredReport
    from gateway.storage.database import Database

    settings = command_settings(args, "reports generate")
    if settings is None:
        return 2
    start = args.start or last_complete(args.period, district_today())
    catalog = cached_catalog(settings.config_dir)
    try:
        check_start(args.period, start)
    except ProblemError as exc:
        print(f"onewindow reports generate: --start: {exc.detail}", file=sys.stderr)
        return 2
    if args.unit and (catalog.unit(args.unit) is None or catalog.unit(args.unit).level == "grid"):  # type: ignore[union-attr]
        print(
            f"onewindow reports generate: --unit: {args.unit!r} is not a district, street or community code",
            file=sys.stderr,
        )
        return 2

    async def work(db: Database) -> dict[str, StoredReport]:
        service = ReportService(database=db, calendar=cached_calendar(settings.config_dir), catalog=catalog)
        units = [args.unit] if args.unit else service.all_units()
        return await service.generate(args.period, start, units, actor=cli_actor())

    stored = run_on_database(settings, work)
    where = settings.database_url.split("@")[-1] if settings.database_url else str(settings.data_dir)
    for unit, report in stored.items():
        print(f"{args.period} {start.isoformat()} {unit} version {report.version} sha256 {report.sha256}")
    print(f"stored in the reports table of {where} ({len(stored)} reports)")
    return 0


__all__ = ["register"]
