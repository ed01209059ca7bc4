"""`onewindow connectors sync|check|rejections`: pull certificates into the store; probe every department system;
list the department records that were quarantined.

* ``sync [DEPT…] [--full] [--json]`` — every (or the named) department, concurrently: incremental from the stored
  cursor unless ``--full``; a progress bar per department on stderr (only on a terminal, never with ``--json``);
  a summary table. With ``--json`` the last line of stdout has the shape docs/api.md#command-line fixes,
  ``{"departments": [{"code", "fetched", "stored", "rejected", "errors"}…], "stored": N}``.
  Each entry also says how many records were quarantined (could not be decoded or mapped), their share and
  whether that makes the department ``degraded`` (above its ``[quality] max_rejected_share``).
* ``check [--json]`` — each department file decoded and checked, then its health endpoint and one authenticated
  list call whose first record is shown mapped (personal fields masked), so an operator sees what the value rules
  make of it; with the last sync's quality from the store (``degraded``). An invalid file is named with the field
  (``file: field: message``).
* ``rejections [DEPT] [--limit N] [--json]`` — the newest quarantined records: where (page, position, masked
  identifier) and why (field, the department's field, value kind, rule), never a value.

Departments live where their files say, or on the simulators with ``--simulators-url http://127.0.0.1:8100``
(or ``ONEWINDOW_SIMULATOR_BASE_HOST``). Exit status: 0 all good, 1 a department failed / is unreachable /
is misconfigured, 2 bad arguments, settings or keys.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.commands.support import add_settings_options, cli_actor, command_settings, migrated_database
from gateway.settings import Settings

#: How long ``check`` waits for one department, retries included.
CHECK_SECONDS = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("connectors", help="department connectors: sync certificates, check the systems")
    actions = p.add_subparsers(dest="connectors_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        add_settings_options(q, data_dir_help="data directory (default ./var)")
        q.add_argument(
            "--simulators-url",
            metavar="URL",
            help="the department simulators' control URL (e.g. http://127.0.0.1:8100); the departments are "
            "reached there instead of at their files' base_url",
        )
        q.add_argument("--json", action="store_true", help="machine-readable output (last line of stdout)")

    sync = actions.add_parser("sync", help="pull certificates from the departments into the store")
    sync.add_argument("departments", nargs="*", metavar="DEPT", help="department codes (default: all)")
    sync.add_argument("--full", action="store_true", help="ignore the stored cursors: fetch everything")
    sync.add_argument(
        "--verify-processes",
        type=int,
        metavar="N",
        help="verify signatures in N worker processes (default: 1 with --full on a multi-core machine, else 0)",
    )
    common(sync)
    sync.set_defaults(handler=run_sync)

    check = actions.add_parser("check", help="probe every department system (config, health, authenticated call)")
    common(check)
    check.set_defaults(handler=run_check)

    rejections = actions.add_parser("rejections", help="list quarantined department records (masked)")
    rejections.add_argument("department", nargs="?", metavar="DEPT", help="one department code (default: all)")
    rejections.add_argument("--limit", type=int, default=100, metavar="N", help="newest N (default 100)")
    add_settings_options(rejections, data_dir_help="data directory (default ./var)")
    rejections.add_argument("--json", action="store_true", help="machine-readable output (last line of stdout)")
    rejections.set_defaults(handler=run_rejections)


def department_file_problems(settings: Settings) -> list[str]:
    """Every problem of the department files under the settings' config dir, one ``file: field: message`` line
    each (value rules included); [] when they all load. ``serve`` refuses to start on any."""
    from pathlib import Path

    from connectors.registry import load_departments
    from connectors.spec import SpecError

    if not (Path(settings.config_dir) / "departments").is_dir():
        return []  # no departments configured: the gateway serves without connectors
    try:
        load_departments(settings.config_dir)
    except SpecError as exc:
        return list(exc.problems)
    return []


def _fail(message: str, code: int = 2) -> int:
    print(f"onewindow connectors: {message}", file=sys.stderr)
    return code


# --- sync ---------------------------------------------------------------------------------------------------


class _DepartmentLine(msgspec.Struct):
    """The per-department entry of ``connectors sync --json`` (fixed in docs/api.md#command-line)."""

    code: str
    fetched: int
    stored: int
    rejected: int
    errors: list[str]
    quarantined: int = 0
    rejected_share: float = 0.0
    degraded: bool = False


class _SyncSummary(msgspec.Struct):
    departments: list[_DepartmentLine]
    stored: int


def run_sync(args: argparse.Namespace) -> int:
    import asyncio

    settings = command_settings(args, "connectors")
    if settings is None:
        return 2
    return asyncio.run(_sync(settings, args))


async def _sync(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from connectors.breaker import breaker_store_for
    from connectors.client import ConnectorPool
    from connectors.registry import load_trust
    from connectors.spec import SpecError
    from connectors.sync import sync_all
    from connectors.trust import TrustError
    from gateway.certificates.runtime import department_specs
    from gateway.certificates.store import CertificateStore
    from gateway.privacy import FieldCipher, KeyRing, KeyRingError
    from gateway.stores import redis_client

    try:
        specs = await department_specs(settings, simulators_url=args.simulators_url)
        trust = load_trust(settings.config_dir)
    except SpecError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    except (TrustError, ValueError) as exc:
        return _fail(str(exc), 1)
    known = [spec.code for spec in specs]
    unknown = [code for code in args.departments if code not in known]
    if unknown:
        return _fail(f"unknown department(s) {', '.join(unknown)}; configured: {', '.join(known) or 'none'}")
    codes: list[str] = list(dict.fromkeys(args.departments)) or known
    workers = args.verify_processes
    if workers is None:
        # A full sync verifies thousands of signatures: worth a second core. An incremental one rarely is.
        workers = 1 if args.full and (os.cpu_count() or 1) > 1 else 0
    if workers < 0:
        return _fail("--verify-processes must be 0 or more")
    try:
        cipher = FieldCipher(KeyRing.load(settings.data_dir))
    except KeyRingError as exc:
        return _fail(str(exc))

    err = Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.fields[fetched]:>7} fetched, {task.fields[pages]:>4} pages"),
        TimeElapsedColumn(),
        console=err,
        disable=args.json or not err.is_terminal,
        transient=False,
    )
    tasks = {code: progress.add_task(code, total=None, fetched=0, pages=0) for code in codes}

    def on_progress(department: str, fetched: int, pages: int) -> None:
        progress.update(tasks[department], fetched=fetched, pages=pages)

    async with migrated_database(settings) as db:
        store = CertificateStore(db, cipher, actor=cli_actor(), purpose="sync")
        breakers = breaker_store_for(redis_client(settings.redis_url) if settings.redis_url else None, owns_client=True)
        try:
            async with ConnectorPool(
                specs, data_dir=settings.data_dir, breaker_store=breakers, trust=trust, verify_processes=workers
            ) as pool:
                with progress:
                    reports = await sync_all(pool, store, codes, full=args.full, progress=on_progress)
                    for report in reports:
                        progress.update(tasks[report.code], total=1, completed=1)
        finally:
            await breakers.aclose()

    summary = _SyncSummary(
        departments=[
            _DepartmentLine(
                code=r.code,
                fetched=r.fetched,
                stored=r.stored,
                rejected=r.rejected,
                errors=list(r.errors),
                quarantined=r.quarantined,
                rejected_share=r.rejected_share,
                degraded=r.degraded,
            )
            for r in reports
        ],
        stored=sum(r.stored for r in reports),
    )
    if args.json:
        sys.stdout.write(msgspec.json.encode(summary).decode("utf-8") + "\n")
    else:
        _print_sync_table(reports)
    return 1 if any(r.errors for r in reports) else 0


def _console() -> Any:
    """Rich console for stdout; wide enough for the tables when stdout is a file or a pipe."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _print_sync_table(reports: Sequence[Any]) -> None:
    from rich.table import Table

    table = Table(title="Certificate sync")
    numeric = ("fetched", "stored", "rejected", "quarantined", "pages", "seconds")
    for column in ("department", "mode", *numeric, "result"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for r in reports:
        rejections = ", ".join(f"{k} {v}" for k, v in sorted(r.rejections.items()))
        result = "[red]" + "; ".join(r.errors) if r.errors else "[green]ok" + (f" ({rejections})" if rejections else "")
        if r.degraded:
            result = f"[yellow]degraded: {r.rejected_share:.1%} of records quarantined[/] " + result
        mode = "full" if r.full or r.since is None else "incremental"
        table.add_row(
            r.code,
            mode,
            str(r.fetched),
            str(r.stored),
            str(r.rejected),
            str(r.quarantined),
            str(r.pages),
            f"{r.seconds:.2f}",
            result,
        )
    total = sum(r.stored for r in reports)
    console = _console()
    console.print(table)
    console.print(f"{total} certificates stored")


# --- check --------------------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    import asyncio

    settings = command_settings(args, "connectors")
    if settings is None:
        return 2
    return asyncio.run(_check(settings, args))


async def _check(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from connectors.client import ConnectorPool
    from connectors.registry import load_trust, type_problems
    from connectors.spec import SpecError
    from connectors.sync import ProbeResult, probe
    from connectors.trust import TrustError
    from gateway.certificates.runtime import department_specs, lookup_specs

    try:
        specs = await department_specs(settings, simulators_url=args.simulators_url)
    except SpecError as exc:
        if args.json:
            sys.stdout.write(msgspec.json.encode({"ok": False, "problems": exc.problems}).decode() + "\n")
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    except ValueError as exc:
        return _fail(str(exc), 1)
    problems: list[str] = []
    try:
        trust = load_trust(settings.config_dir)
    except TrustError as exc:
        problems.extend(str(exc).splitlines())
        trust = None
    problems.extend(type_problems(specs, _catalog_types(settings)))
    results: list[ProbeResult] = []
    if trust is not None:
        async with ConnectorPool(lookup_specs(specs, CHECK_SECONDS), data_dir=settings.data_dir, trust=trust) as pool:
            results = list(await asyncio.gather(*(probe(pool, spec.code) for spec in specs)))
    quality = await _last_quality(settings)
    ok = not problems and all(r.ok for r in results)
    entries = [_check_entry(r, quality.get(r.code)) for r in results]
    if args.json:
        document = {"ok": ok, "problems": problems, "departments": entries}
        sys.stdout.write(msgspec.json.encode(document).decode("utf-8") + "\n")
    else:
        _print_check_table(specs, results, problems, entries)
    return 0 if ok else 1


async def _last_quality(settings: Settings) -> dict[str, Any]:
    """The last sync quality of every department from the store ({} when the store cannot be read)."""
    from gateway.certificates.quarantine import qualities

    try:
        async with migrated_database(settings) as db:
            return dict(await qualities(db))
    except Exception as exc:  # the check is about the departments; a store it cannot read is noted, not fatal
        print(f"onewindow connectors: last sync quality unavailable ({type(exc).__name__})", file=sys.stderr)
        return {}


def _check_entry(result: Any, quality: Any) -> dict[str, Any]:
    """One department of ``check --json``: the probe, its sample record masked, and the last sync's quality."""
    from gateway.certificates.samples import masked_sample

    entry: dict[str, Any] = msgspec.to_builtins(result)
    entry["sample"] = masked_sample(result.sample) if result.sample is not None else None
    entry["degraded"] = bool(quality.degraded) if quality is not None else False
    entry["last_sync"] = (
        None
        if quality is None
        else {
            "at": quality.at.isoformat(),
            "received": quality.received,
            "quarantined": quality.quarantined,
            "rejected_share": round(quality.share, 4),
            "degraded": quality.degraded,
        }
    )
    return entry


def _catalog_types(settings: Settings) -> dict[str, tuple[str, str]]:
    """The catalog registry's certificate types (type code, issuing department), if the catalog loads."""
    try:
        from catalog.loader import cached_catalog

        catalog = cached_catalog(settings.config_dir)
    except Exception:  # the catalog has its own check command; here it only cross-checks the types
        return {}
    return {t.key: (t.type_code, t.issuing_department) for t in catalog.certificate_types}


def _print_check_table(
    specs: Sequence[Any], results: Sequence[Any], problems: Sequence[str], entries: Sequence[dict[str, Any]]
) -> None:
    from rich.table import Table

    urls = {spec.code: spec.base_url for spec in specs}
    table = Table(title="Department systems")
    for column in ("department", "base URL", "health", "authenticated call", "breaker", "ms", "records", "error"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for r, entry in zip(results, entries, strict=True):
        last = entry["last_sync"]
        records = "-" if last is None else f"{last['rejected_share']:.1%} quarantined"
        if entry["degraded"]:
            records = f"[yellow]degraded ({records})"
        table.add_row(
            r.code,
            urls.get(r.code, ""),
            "[green]ok" if r.health else "[red]down",
            "[green]ok" if r.list else ("[red]failed" if r.health else "-"),
            r.breaker,
            f"{r.milliseconds:.0f}",
            records,
            r.error or "",
        )
    console = _console()
    console.print(table)
    for r, entry in zip(results, entries, strict=True):
        if entry["sample"] is not None:
            fields = ", ".join(f"{k}={v}" for k, v in entry["sample"].items() if k != "signature")
            console.print(f"[bold]{r.code}[/] sample record: {fields}", highlight=False)
        elif r.sample_rejection is not None:
            q = r.sample_rejection
            console.print(
                f"[bold]{r.code}[/] sample record [red]rejected[/]: {q.field} ({q.source}) {q.value_kind}: {q.rule}",
                highlight=False,
            )
    for line in problems:
        console.print(f"[red]{line}", highlight=False)
    down = [r.code for r in results if not r.ok]
    console.print(
        f"{len(results) - len(down)}/{len(results)} departments reachable"
        + (f"; {len(problems)} configuration problem(s)" if problems else ""),
        highlight=False,
    )


# --- rejections ---------------------------------------------------------------------------------------------


def run_rejections(args: argparse.Namespace) -> int:
    import asyncio

    settings = command_settings(args, "connectors")
    if settings is None:
        return 2
    if args.limit < 1:
        return _fail("--limit must be 1 or more")
    return asyncio.run(_rejections(settings, args))


async def _rejections(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.certificates.quarantine import qualities, rejections

    async with migrated_database(settings) as db:
        found = await rejections(db, args.department, limit=args.limit)
        quality = await qualities(db)
    if args.json:
        document = {
            "rejections": [msgspec.to_builtins(r) for r in found],
            "departments": {
                code: {"received": q.received, "quarantined": q.quarantined, "degraded": q.degraded}
                for code, q in quality.items()
                if not args.department or code == args.department
            },
        }
        sys.stdout.write(msgspec.json.encode(document).decode("utf-8") + "\n")
        return 0
    from rich.table import Table

    table = Table(title="Quarantined department records" + (f" — {args.department}" if args.department else ""))
    for column in ("at", "department", "page", "#", "identifier", "field", "department field", "value", "rule"):
        table.add_column(column)
    for r in found:
        table.add_row(
            r.at.strftime("%Y-%m-%d %H:%M:%S"),
            r.department,
            str(r.page),
            str(r.position) if r.position >= 0 else "page",
            r.identifier or "-",
            r.field,
            r.source or "-",
            r.value_kind,
            r.rule,
        )
    console = _console()
    console.print(table)
    console.print(f"{len(found)} rejection(s) shown (newest first)", highlight=False)
    return 0
