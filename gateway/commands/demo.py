"""`onewindow demo`: department simulators + gateway together, certificates synced, a token per role,
``<data dir>/demo.json`` written, URLs printed; Ctrl-C / SIGTERM stops everything (exit 0)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="department simulators + gateway with demo data and tokens",
        description=(
            "Start the seven department simulators and the gateway on embedded defaults, sync the certificates, "
            "create one token per role and write DATA_DIR/demo.json. Ctrl-C or SIGTERM stops everything."
        ),
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="gateway port (default 8000); the simulators use PORT+100 … PORT+106")
    p.add_argument("--data-dir", type=Path, help="database, keys and demo.json (default ./var)")
    p.set_defaults(handler=run)


def _loop_factory() -> object | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return None
    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    import asyncio

    from demokit.demo.runner import DemoError, StopFlag, run_demo
    from gateway.settings import SettingsError, load_settings

    try:
        settings = load_settings(
            None,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            # The demo's receivers (simulators, a developer's script) listen on loopback; an operator's own
            # ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS still wins.
            webhook_allowed_networks=None if "ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS" in os.environ else "127.0.0.0/8",
        )
    except SettingsError as exc:
        print(f"onewindow demo: {exc}", file=sys.stderr)
        return 2
    stop = StopFlag()
    factory = _loop_factory()
    try:
        with stop.installed(), asyncio.Runner(loop_factory=factory) as runner:  # type: ignore[arg-type]
            return runner.run(run_demo(settings, stop=stop))
    except DemoError as exc:
        print(f"onewindow demo: {exc}", file=sys.stderr)
        return 1
