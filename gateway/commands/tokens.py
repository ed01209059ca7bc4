"""`onewindow tokens create|list|revoke`: bearer tokens for clerks, officers, supervisors, admins and systems.

``create`` prints the token once, alone on stdout's last line (scripts take ``| tail -n1``); everything else goes
to stderr. Only its SHA-256 hash is stored.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gateway.commands.support import add_settings_options, cli_actor, command_settings, run_on_database
from gateway.settings import Settings

if TYPE_CHECKING:  # the command line starts fast: the heavy modules load when a command runs
    from gateway.identity.tokens import CodeCheck

#: `gateway.identity.principal.Role`, spelled out so that building the parser imports nothing heavy.
ROLES = ("clerk", "officer", "supervisor", "admin", "system", "department", "grid_worker")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tokens", help="create, list and revoke bearer tokens")
    actions = p.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--unit", help="street or community code (clerk; optional for a supervisor), grid code (grid_worker)"
    )
    create.add_argument("--department", help="department code (officer, department)")
    create.add_argument("--scope", action="append", default=[], help="scope of a system token (repeatable)")
    create.add_argument("--label", help="who or what holds the token")
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--active", action="store_true", help="leave out revoked tokens")
    listing.add_argument("--json", action="store_true", help="one JSON array on stdout")
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id")
    revoke.set_defaults(handler=_revoke)

    for parser in (create, listing, revoke):
        add_settings_options(parser)


def _catalog_checks(settings: Settings) -> tuple[CodeCheck | None, CodeCheck | None]:
    from catalog.loader import CatalogError, cached_catalog
    from gateway.identity.tokens import catalog_checks

    try:
        catalog = cached_catalog(settings.config_dir)
    except (CatalogError, OSError) as exc:
        print(f"warning: catalog not loaded, unit and department codes not checked: {exc}", file=sys.stderr)
        return None, None
    return catalog_checks(catalog)


def _create(args: argparse.Namespace) -> int:
    from gateway.identity.tokens import create_token
    from gateway.problems import ProblemError

    settings = command_settings(args, "tokens create")
    if settings is None:
        return 2
    unit_exists, department_exists = _catalog_checks(settings)
    try:
        token, record = run_on_database(
            settings,
            lambda db: create_token(
                db,
                role=args.role,
                unit=args.unit,
                department=args.department,
                scopes=args.scope,
                label=args.label,
                created_by=cli_actor(),
                unit_exists=unit_exists,
                department_exists=department_exists,
            ),
        )
    except ProblemError as exc:
        print(f"onewindow tokens create: {exc.detail}", file=sys.stderr)
        for error in exc.errors or []:
            print(f"  --{error.field.rstrip('s')}: {error.message}", file=sys.stderr)
        return 2
    binding = record.unit or record.department or ",".join(record.scopes) or "district-wide"
    print(
        f"Created {record.role.value} token {record.id} ({binding}). It is shown once; store it now.", file=sys.stderr
    )
    print(token, flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    import msgspec

    from gateway.identity.tokens import list_tokens

    settings = command_settings(args, "tokens list")
    if settings is None:
        return 2
    records = run_on_database(settings, lambda db: list_tokens(db, include_revoked=not args.active))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(records) + b"\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "role", "unit", "department", "scopes", "label", "created", "revoked")
    for r in records:
        table.add_row(
            r.id,
            r.role.value,
            r.unit or "",
            r.department or "",
            " ".join(r.scopes),
            r.label or "",
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.revoked_at.strftime("%Y-%m-%d %H:%M") if r.revoked_at else "",
        )
    Console(width=200).print(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from gateway.identity.tokens import revoke_token
    from gateway.problems import ProblemError

    settings = command_settings(args, "tokens revoke")
    if settings is None:
        return 2
    try:
        record = run_on_database(settings, lambda db: revoke_token(db, args.id, revoked_by=cli_actor()))
    except ProblemError as exc:
        print(f"onewindow tokens revoke: {exc.detail}", file=sys.stderr)
        return 1
    assert record.revoked_at is not None
    print(f"Token {record.id} revoked at {record.revoked_at.isoformat()}.")
    return 0
