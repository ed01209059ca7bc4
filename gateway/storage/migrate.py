"""Alembic without ``alembic.ini``: the script location lives inside the package, so it works when installed.

`upgrade_heads` runs on a synchronous connection inside the caller's transaction (`Database.migrate` calls it
through ``conn.run_sync``). Upgrading to *heads* (plural) lets each domain keep its own branch of revisions.

For developers, `alembic_config` also serves the ``alembic`` command line::

    python -m gateway.storage.migrate revision -m "intake tables" --head 0001_foundation --splice
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` pointing at the packaged migrations; ``connection`` is handed to env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_heads(connection: Connection) -> None:
    """``alembic upgrade heads`` on ``connection`` (already in a transaction)."""
    command.upgrade(alembic_config(connection), "heads")


def script_heads() -> tuple[str, ...]:
    """The head revisions of the packaged migrations."""
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is at."""
    return tuple(MigrationContext.configure(connection).get_current_heads())


def pending_revisions(connection: Connection) -> set[str]:
    """Revisions of the packaged migrations not yet applied to the database (empty when up to date)."""
    script = ScriptDirectory.from_config(alembic_config())
    return _with_ancestors(script, script.get_heads()) - _with_ancestors(script, current_revisions(connection))


def _with_ancestors(script: ScriptDirectory, revisions: Iterable[str]) -> set[str]:
    """The revisions and everything they rest on (down revisions and ``depends_on``)."""
    seen: set[str] = set()
    todo = list(revisions)
    while todo:
        rev = script.get_revision(todo.pop())
        if rev is None or rev.revision in seen:
            continue
        seen.add(rev.revision)
        for parents in (rev.down_revision, rev.dependencies):
            if isinstance(parents, str):
                todo.append(parents)
            elif parents:
                todo.extend(parents)
    return seen


def main(argv: list[str] | None = None) -> None:
    """Run an ``alembic`` sub-command (``revision``, ``heads``, ``history`` …) against the packaged scripts.

    Commands that need a database use ``ONEWINDOW_DATABASE_URL`` (or the embedded SQLite file), synchronously.
    """
    from alembic.config import CommandLine

    cli = CommandLine(prog="python -m gateway.storage.migrate")
    options = cli.parser.parse_args(argv if argv is not None else sys.argv[1:])
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(), options)


if __name__ == "__main__":
    main()
