"""`onewindow province reconcile|status`: the provincial platform (办件汇聚).

``reconcile [--day YYYY-MM-DD] [--json]`` compares one local day's reported case steps by status with the platform's
counts and lists every difference (exit 1 when there is one, 2 when the platform does not answer); ``status`` shows
the reporting backlog.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from gateway.commands.support import add_settings_options, command_settings, run_on_database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("province", help="reporting cases to the provincial platform")
    actions = p.add_subparsers(dest="province_command", required=True, metavar="ACTION")
    check = actions.add_parser("reconcile", help="compare a day's counts by status with the platform")
    check.add_argument("--day", type=dt.date.fromisoformat, help="local date YYYY-MM-DD (default: yesterday)")
    check.add_argument("--json", action="store_true", help="print the reconciliation as JSON")
    check.set_defaults(handler=_reconcile)
    show = actions.add_parser("status", help="steps sent, waiting and retrying")
    show.set_defaults(handler=_status)
    for parser in (check, show):
        add_settings_options(parser)


def _reconcile(args: argparse.Namespace) -> int:
    import msgspec

    from catalog.calendar import district_today
    from gateway.province.reconcile import reconcile
    from gateway.province.target import PlatformError, TargetError, load_target

    settings = command_settings(args, "province reconcile")
    if settings is None:
        return 2
    try:
        target = load_target(settings.config_dir, settings.province_url)
    except TargetError as exc:
        print(f"onewindow province reconcile: {exc}", file=sys.stderr)
        return 2
    if target is None or not target.enabled:
        print("onewindow province reconcile: no provincial platform is configured", file=sys.stderr)
        return 2
    day = args.day or district_today() - dt.timedelta(days=1)
    try:
        result = run_on_database(settings, lambda db: reconcile(db, target, day))
    except PlatformError as exc:
        print(f"onewindow province reconcile: the platform did not answer: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        print(f"{result.day} {result.region}: ours {sum(result.ours.values())}, platform {sum(result.theirs.values())}")
        for diff in result.differences:
            print(f"difference: {diff.status}: ours {diff.ours}, platform {diff.theirs}")
        if result.pending:
            print(f"{result.pending} step(s) of the day not yet taken by the platform")
        if result.ok:
            print("no differences")
    return 0 if result.ok else 1


def _status(args: argparse.Namespace) -> int:
    import msgspec

    from gateway.province.status import reporting_status

    settings = command_settings(args, "province status")
    if settings is None:
        return 2
    print(msgspec.json.encode(run_on_database(settings, reporting_status)).decode())
    return 0
