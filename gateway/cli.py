"""`onewindow` command line. Each group lives in `gateway.commands.<group>` and exposes ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Sub-command modules, in help order. A module that is missing is skipped (work in progress never
#: breaks the other commands).
COMMAND_MODULES = (
    "serve",
    "demo",
    "simulate",
    "catalog",
    "calendar",
    "connectors",
    "tokens",
    "keys",
    "audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onewindow", description="OneWindow (一窗通) government-services gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gateway.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gateway.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.privacy.masking import install_log_masking

    install_log_masking()  # no ID or mobile number reaches a log line, whichever command logs it
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
