"""`onewindow` command line. Each group lives in `gateway.commands.<group>` and exposes ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Sub-command modules, in help order. Each one must import: a broken or missing module stops the command line
#: with an `ImportError` naming it, rather than silently dropping a command.
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
    "backup",
    "restore",
    "province",
    "worker",
    "webhooks",
    "reports",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onewindow", description="OneWindow (一窗通) government-services gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"gateway.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(
                f"onewindow: the {name!r} command cannot be loaded: importing {module_name} failed: {exc}",
                name=exc.name,
                path=exc.path,
            ) from exc
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
