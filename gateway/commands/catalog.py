"""`onewindow catalog check [DIR]` and `onewindow catalog export [--format json|csv]`.

``check`` prints every problem as ``file:item:field: message`` on stdout (one per line, so it can be piped or
diffed) and exits 1; a clean catalog prints a one-line summary and exits 0. ``export`` writes every item's public
fields (docs/api.md#catalog) to stdout, as a JSON array or as CSV with the materials flattened into two columns.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gateway.settings import SettingsError, load_settings

if TYPE_CHECKING:  # the command line starts fast: the catalog loads when a command runs
    from catalog.catalog import Catalog
    from catalog.models import PublicItem

_JSON = msgspec.json.Encoder()

#: CSV columns: the scalar public fields, then the flattened materials.
CSV_FIELDS = (
    "code",
    "name",
    "level",
    "item_type",
    "item_type_name",
    "department",
    "department_name",
    "legal_basis",
    "legal_days",
    "promised_days",
    "visits",
    "online",
    "fee",
    "status",
    "version",
    "valid_from",
    "valid_until",
    "on_behalf_of",
    "materials",
    "certificate_types",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("catalog", help="validate or export the service-item catalog")
    actions = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="validate catalog data; every problem on its own line, exit 1 if any")
    check.add_argument(
        "dir", nargs="?", type=Path, help="config dir holding catalog/ and registry/ (default: settings)"
    )
    check.add_argument("--config", type=Path, help="TOML settings file ([gateway] table)")
    check.set_defaults(handler=run_check)

    export = actions.add_parser("export", help="every item as JSON (default) or CSV on stdout")
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.add_argument("--dir", type=Path, help="config dir holding catalog/ and registry/ (default: settings)")
    export.add_argument("--config", type=Path, help="TOML settings file ([gateway] table)")
    export.set_defaults(handler=run_export)


def _config_dir(given: Path | None, settings_file: Path | None) -> Path:
    from catalog.loader import CATALOG_DIR, REGISTRY_DIR

    if given is None:
        return load_settings(settings_file).config_dir
    # Accept the catalog directory itself too (``config/catalog``), as people will type it.
    if not (given / CATALOG_DIR).exists() and given.name == CATALOG_DIR and (given.parent / REGISTRY_DIR).exists():
        return given.parent
    return given


def run_check(args: argparse.Namespace) -> int:
    from catalog.loader import check_catalog

    try:
        config_dir = _config_dir(args.dir, args.config)
    except SettingsError as exc:
        print(f"onewindow catalog check: {exc}", file=sys.stderr)
        return 2
    catalog, problems = check_catalog(config_dir)
    if catalog is None:
        for line in problems:
            print(line)
        n = len(problems)
        print(f"onewindow catalog check: {n} problem{'s' if n != 1 else ''} in {config_dir}", file=sys.stderr)
        return 1
    print(summary(catalog))
    return 0


def summary(catalog: Catalog) -> str:
    counts = catalog.counts()
    with_certificates = sum(1 for i in catalog.items if i.certificate_types)
    offered = sum(1 for i in catalog.items if i.status == "published")
    return (
        f"catalog ok: {len(catalog.items)} items ({counts.get('street', 0)} street, "
        f"{counts.get('community', 0)} community), {offered} published, {with_certificates} with certificate "
        f"materials; {len(catalog.departments)} departments, {len(catalog.certificate_types)} certificate types, "
        f"{len(catalog.units_at('grid'))} grids"
    )


def run_export(args: argparse.Namespace) -> int:
    from catalog.loader import CatalogError, load_catalog

    try:
        catalog = load_catalog(_config_dir(args.dir, args.config))
    except SettingsError as exc:
        print(f"onewindow catalog export: {exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        print(f"onewindow catalog export: {exc}", file=sys.stderr)
        return 1
    items = [catalog.public(i) for i in catalog.items]
    if args.format == "json":
        sys.stdout.write(_JSON.encode(items).decode() + "\n")
    else:
        sys.stdout.write(to_csv(items))
    sys.stdout.flush()
    return 0


def _material_cell(item: PublicItem) -> str:
    # key:name:required|optional:source[:certificate_type], separated by "; " — readable in a spreadsheet.
    parts = []
    for m in item.materials:
        fields = [m.key, m.name, "required" if m.required else "optional", m.source]
        if m.certificate_type:
            fields.append(m.certificate_type)
        parts.append(":".join(fields))
    return "; ".join(parts)


def to_csv(items: list[PublicItem]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for item in items:
        builtins = msgspec.to_builtins(item)
        row = []
        for field in CSV_FIELDS:
            if field == "materials":
                row.append(_material_cell(item))
            elif field == "certificate_types":
                row.append(" ".join(dict.fromkeys(m.certificate_type for m in item.materials if m.certificate_type)))
            else:
                value = builtins.get(field)
                row.append("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
        writer.writerow(row)
    return out.getvalue()
