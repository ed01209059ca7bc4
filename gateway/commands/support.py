"""What the command modules share; not a command group (`gateway.cli.COMMAND_MODULES` does not list it).

It imports nothing heavy: every command module, and so this one, is imported to build the parser on each start.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from gateway.storage.database import Database

T = TypeVar("T")


def add_settings_options(parser: argparse.ArgumentParser, *, data_dir_help: str | None = None) -> None:
    """``--data-dir`` and ``--config``, read by `command_settings`."""
    parser.add_argument("--data-dir", type=Path, help=data_dir_help)
    parser.add_argument("--config", type=Path, help="TOML settings file ([gateway] table)")


def command_settings(args: argparse.Namespace, command: str) -> Settings | None:
    """Settings from ``--config`` and ``--data-dir``; when they do not load, the reason on stderr as
    ``onewindow <command>: …`` and None (the caller exits 2)."""
    try:
        return load_settings(args.config, data_dir=args.data_dir)
    except SettingsError as exc:
        print(f"onewindow {command}: {exc}", file=sys.stderr)
        return None


def cli_actor() -> str:
    """The audit actor for a command run by an operator: ``cli:<login>``, cut to the 100 characters the actor
    columns hold."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:100]


@contextlib.asynccontextmanager
async def migrated_database(settings: Settings) -> AsyncIterator[Database]:
    """The settings' database at the newest schema, disposed on exit."""
    from gateway.storage.database import Database

    db = Database.from_settings(settings)
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()


def run_on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the migrated database in a fresh event loop: the body of most commands."""
    import asyncio

    async def main() -> T:
        async with migrated_database(settings) as db:
            return await work(db)

    return asyncio.run(main())
