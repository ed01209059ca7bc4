"""`onewindow connectors sync|check`: pull certificates into the store; probe every department system.

* ``sync [DEPT…] [--full] [--json]`` — every (or the named) department, concurrently: incremental from the stored
  cursor unless ``--full``; a progress bar per department on stderr (only on a terminal, never with ``--json``);
  a summary table. With ``--json`` the last line of stdout has the shape docs/api.md#command-line fixes,
  ``{"departments": [{"code", "fetched", "stored", "rejected", "errors"}…], "stored": N}``.
* ``check [--json]`` — each department file decoded and checked, then its health endpoint and one authenticated
  list call. An invalid file is named with the field (``file: field: message``).

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
            _DepartmentLine(code=r.code, fetched=r.fetched, stored=r.stored, rejected=r.rejected, errors=list(r.errors))
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
    for column in ("department", "mode", "fetched", "stored", "rejected", "pages", "seconds", "result"):
        table.add_column(
            column, justify="right" if column in ("fetched", "stored", "rejected", "pages", "seconds") else "left"
        )
    for r in reports:
        rejections = ", ".join(f"{k} {v}" for k, v in sorted(r.rejections.items()))
        result = "[red]" + "; ".join(r.errors) if r.errors else "[green]ok" + (f" ({rejections})" if rejections else "")
        mode = "full" if r.full or r.since is None else "incremental"
        table.add_row(
            r.code, mode, str(r.fetched), str(r.stored), str(r.rejected), str(r.pages), f"{r.seconds:.2f}", result
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
    ok = not problems and all(r.ok for r in results)
    if args.json:
        document = {"ok": ok, "problems": problems, "departments": [msgspec.to_builtins(r) for r in results]}
        sys.stdout.write(msgspec.json.encode(document).decode("utf-8") + "\n")
    else:
        _print_check_table(specs, results, problems)
    return 0 if ok else 1


def _catalog_types(settings: Settings) -> dict[str, tuple[str, str]]:
    """The catalog registry's certificate types (type code, issuing department), if the catalog loads."""
    try:
        from catalog.loader import cached_catalog

        catalog = cached_catalog(settings.config_dir)
    except Exception:  # the catalog has its own check command; here it only cross-checks the types
        return {}
    return {t.key: (t.type_code, t.issuing_department) for t in catalog.certificate_types}


def _print_check_table(specs: Sequence[Any], results: Sequence[Any], problems: Sequence[str]) -> None:
    from rich.table import Table

    urls = {spec.code: spec.base_url for spec in specs}
    table = Table(title="Department systems")
    for column in ("department", "base URL", "health", "authenticated call", "breaker", "ms", "error"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for r in results:
        table.add_row(
            r.code,
            urls.get(r.code, ""),
            "[green]ok" if r.health else "[red]down",
            "[green]ok" if r.list else ("[red]failed" if r.health else "-"),
            r.breaker,
            f"{r.milliseconds:.0f}",
            r.error or "",
        )
    console = _console()
    console.print(table)
    for line in problems:
        console.print(f"[red]{line}", highlight=False)
    down = [r.code for r in results if not r.ok]
    console.print(
        f"{len(results) - len(down)}/{len(results)} departments reachable"
        + (f"; {len(problems)} configuration problem(s)" if problems else ""),
        highlight=False,
    )
