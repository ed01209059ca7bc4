"""`onewindow simulate`: the seven simulated department systems, until Ctrl-C or SIGTERM.

The servers live in `demokit.simulators`, imported only when the command runs; the defaults below are what the
parser shows on every start, and `demokit` uses them too (``run_simulators()`` serves what a plain
``onewindow simulate`` serves).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from gateway.settings import SettingsError, load_settings

PROG = "onewindow simulate"
#: Seed of the synthetic citizens; the demo and the connector tests use it too.
DEFAULT_SEED = 20200501
DEFAULT_CITIZENS = 500
#: Control port; the departments listen on the next seven ports (docs/simulators.md).
DEFAULT_PORT = 8100


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run the simulated department systems (public security, civil affairs, …) on loopback",
        description="Serve the seven department systems: control page on PORT, departments on PORT+1 … PORT+7.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"control port (default {DEFAULT_PORT}; 0: ephemeral)"
    )
    p.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"seed of the synthetic citizens (default {DEFAULT_SEED})"
    )
    p.add_argument(
        "--citizens", type=int, default=DEFAULT_CITIZENS, help=f"how many citizens (default {DEFAULT_CITIZENS})"
    )
    p.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="faults to inject, e.g. '*:latency=50;civil_affairs:rate_limit=0.3' (docs/simulators.md)",
    )
    p.add_argument("--data-dir", type=Path, help="data dir; TLS material goes to <D>/simulators/pki (default ./var)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from demokit.simulators.faults import FaultSpecError, parse_fault_spec
    from demokit.simulators.registry import DEPARTMENT_CODES

    try:
        parse_fault_spec(args.faults)
    except FaultSpecError as exc:
        print(f"{PROG}: --faults: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535 - len(DEPARTMENT_CODES):
        print(f"{PROG}: --port must be 0..{65535 - len(DEPARTMENT_CODES)}, got {args.port}", file=sys.stderr)
        return 2
    if not 0 <= args.citizens <= 1_000_000:
        print(f"{PROG}: --citizens must be 0..1000000, got {args.citizens}", file=sys.stderr)
        return 2
    try:
        data_dir = load_settings(data_dir=args.data_dir).data_dir
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args, data_dir))
    except OSError as exc:  # the port is taken, the address does not exist, the data dir is not writable, …
        print(f"{PROG}: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace, data_dir: Path) -> None:
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from demokit.simulators.runner import run_simulators

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with run_simulators(
            host=args.host,
            base_port=args.port,
            seed=args.seed,
            citizens=args.citizens,
            faults=args.faults,
            data_dir=data_dir,
        ) as sims:
            console = Console(width=None if sys.stdout.isatty() else 160)
            table = Table(title=f"OneWindow department simulators (seed {sims.seed}, {len(sims.citizens)} citizens)")
            for column in ("department", "name", "style", "url", "certificates", "faults"):
                table.add_column(column, justify="right" if column == "certificates" else "left")
            for row in sims.describe():
                table.add_row(
                    row["code"], row["name"], row["style"], row["url"], str(row["certificates"]), row["faults"] or "-"
                )
            console.print(table)
            console.print(f"control page: {sims.control_url}/   TLS client material: {sims.pki_dir}")
            console.print("running; Ctrl-C or SIGTERM stops", highlight=False)
            sys.stdout.flush()
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("stopped", flush=True)
