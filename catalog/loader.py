"""Load and validate the catalog (``config/catalog/``) and the registries (``config/registry/``).

Validation is strict and exhaustive: every problem in every file is collected, one line each, as
``file:item:field: message`` (``file`` relative to the config dir, ``-`` where no item or field applies),
and `CatalogError` carries them all. A clean load gives a `Catalog` with lookups, the search index and an
ETag built once.

Layout::

    registry/departments.toml         [[departments]] code, name, uscc
    registry/certificate_types.toml   [[certificate_types]] key, name, definer, definer_uscc, type_code, ...
    registry/units.toml               [district] + [[streets]] + [[streets.communities]] with a grid count each
    catalog/manifest.toml             [counts] street = 59, community = 45   (optional; constants otherwise)
    catalog/**/*.toml                 [[items]] tables (any number of files)

Every file may carry a top-level ``note`` (the "sample data" notice).
"""

from __future__ import annotations

import hashlib
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import msgspec

from catalog.catalog import Catalog
from catalog.codes import uscc_problem
from catalog.models import (
    HOLDER_CODE_TYPES,
    ITEM_TYPES,
    LEVELS,
    CertificateType,
    Department,
    Item,
    Unit,
)

#: Items per level the district publishes (docs/domain.md#the-district), used when the data has no manifest.
DEFAULT_COUNTS: dict[str, int] = {"street": 59, "community": 45}

CATALOG_DIR = "catalog"
REGISTRY_DIR = "registry"
MANIFEST = "manifest.toml"

_CODE_RE = re.compile(r"^[0-9A-Z][0-9A-Z-]{3,39}$")
_DEPARTMENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_UNIT_CODE_RE = re.compile(r"^\d{12}$")

S = TypeVar("S", bound=msgspec.Struct)
Report = Callable[[str, str], None]  # (field, message)


class CatalogError(Exception):
    """The catalog or a registry is invalid. ``problems`` holds every problem, one ``file:item:field: message``
    line each; ``str()`` lists them all so a refusing server says exactly why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"catalog invalid: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *("  " + p for p in self.problems)])


# --- input shapes that exist only in files ----------------------------------------------------------------
class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class _CommunityIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: str
    name: str
    kind: str = "社区"
    #: Number of grids (网格); their codes are the community code plus a 3-digit sequence.
    grids: int
    #: Names for the first grids (e.g. after residential compounds); the rest are "<community>第N网格".
    grid_names: tuple[str, ...] = ()
    uscc: str | None = None


class _StreetIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: str
    name: str
    kind: str = "街道"
    uscc: str | None = None
    communities: tuple[_CommunityIn, ...]


class _DistrictIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: str
    name: str
    kind: str = "区"
    #: Total grids the district declares; the communities' counts must add up to it.
    grids: int


class _Manifest(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    note: str = ""
    counts: dict[str, int] = {}


# --- problem collection -----------------------------------------------------------------------------------
class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines: list[str] = []

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def add(self, file: str, item: str, field: str, message: str) -> None:
        self.lines.append(f"{file}:{item or '-'}:{field or '-'}: {message}")

    def reporter(self, file: str, item: str) -> Report:
        return lambda field, message: self.add(file, item, field, message)


def _msgspec_message(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's ``"Expected `int`, got `str` - at `$[2].x`"`` into (message, path suffix)."""
    text = str(exc)
    message, sep, where = text.partition(" - at `")
    suffix = where.rstrip("`").removeprefix("$") if sep else ""
    return message, suffix


def _struct_element(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct type inside ``tuple[S, ...]`` / ``list[S]``, if that is what ``tp`` is."""
    if get_origin(tp) in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], msgspec.Struct):
            return args[0]
    return None


def _convert(raw: Any, cls: type[S], report: Report, prefix: str = "") -> S | None:
    """Decode ``raw`` into ``cls``; on failure report every wrong, unknown or missing field (not just the
    first, which is all msgspec itself reports) and return None."""
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError:
        pass
    if not isinstance(raw, dict):
        report(prefix.rstrip(".") or "-", f"expected a table, got {type(raw).__name__}")
        return None
    fields = msgspec.structs.fields(cls)
    known = {f.encode_name for f in fields}
    for key in raw:
        if key not in known:
            report(prefix + str(key), "unknown field (check the spelling)")
    for f in fields:
        path = prefix + f.encode_name
        if f.encode_name not in raw:
            if f.required:
                report(path, "missing required field")
            continue
        value = raw[f.encode_name]
        element = _struct_element(f.type)
        if element is not None and isinstance(value, list):
            for n, entry in enumerate(value):
                _convert(entry, element, report, f"{path}[{n}].")
            continue
        try:
            msgspec.convert(value, f.type)
        except msgspec.ValidationError as exc:
            message, suffix = _msgspec_message(exc)
            report(path + suffix, message)
    return None


def _read_toml(path: Path, problems: _Problems) -> dict[str, Any] | None:
    file = problems.rel(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add(file, "-", "-", "file is missing")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(file, "-", "-", f"cannot read: {exc}")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.add(file, "-", "-", f"invalid TOML: {exc}")
        return None


def _entries(
    doc: dict[str, Any], table: str, file: str, problems: _Problems, allowed: frozenset[str] = frozenset()
) -> list[Any]:
    """The ``[[table]]`` array of a file, reporting unexpected top-level keys."""
    for key in doc:
        if key not in {table, "note", *allowed}:
            problems.add(file, "-", key, f"unknown top-level key (expected [[{table}]] tables and note)")
    entries = doc.get(table, [])
    if not isinstance(entries, list):
        problems.add(file, "-", table, f"must be an array of tables ([[{table}]])")
        return []
    return entries


def _label(raw: Any, key: str, table: str, n: int) -> str:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else f"{table}[{n}]"


# --- registries -------------------------------------------------------------------------------------------
def _load_departments(root: Path, problems: _Problems) -> list[Department]:
    path = root / REGISTRY_DIR / "departments.toml"
    doc = _read_toml(path, problems)
    if doc is None:
        return []
    file = problems.rel(path)
    out: list[Department] = []
    seen: set[str] = set()
    for n, raw in enumerate(_entries(doc, "departments", file, problems)):
        label = _label(raw, "code", "departments", n)
        report = problems.reporter(file, label)
        dept = _convert(raw, Department, report)
        if dept is None:
            continue
        if not _DEPARTMENT_RE.match(dept.code):
            report("code", "must be lower-case letters, digits and _ (e.g. civil_affairs)")
        if dept.code in seen:
            report("code", "duplicate department code")
        seen.add(dept.code)
        if (p := uscc_problem(dept.uscc)) is not None:
            report("uscc", f"invalid unified social credit code: {p.message}")
        out.append(dept)
    if not out and doc is not None:
        problems.add(file, "-", "departments", "no departments declared")
    return out


def _load_certificate_types(root: Path, departments: set[str], problems: _Problems) -> list[CertificateType]:
    path = root / REGISTRY_DIR / "certificate_types.toml"
    doc = _read_toml(path, problems)
    if doc is None:
        return []
    file = problems.rel(path)
    out: list[CertificateType] = []
    seen: set[str] = set()
    for n, raw in enumerate(_entries(doc, "certificate_types", file, problems)):
        report = problems.reporter(file, _label(raw, "key", "certificate_types", n))
        ct = _convert(raw, CertificateType, report)
        if ct is None:
            continue
        if ct.key in seen:
            report("key", "duplicate certificate type key")
        seen.add(ct.key)
        if (p := uscc_problem(ct.definer_uscc)) is not None:
            report("definer_uscc", f"invalid unified social credit code: {p.message}")
        if not (len(ct.type_code) == 21 and ct.type_code[:18] == ct.definer_uscc and ct.type_code[18:].isdigit()):
            report("type_code", "must be the defining authority's USCC followed by a 3-digit sequence")
        if ct.issuing_department not in departments:
            report("issuing_department", f"unknown department {ct.issuing_department!r}")
        if ct.holder_code_type not in HOLDER_CODE_TYPES:
            report("holder_code_type", f"must be one of {', '.join(HOLDER_CODE_TYPES)}")
        out.append(ct)
    return out


def _load_units(root: Path, problems: _Problems) -> list[Unit]:
    path = root / REGISTRY_DIR / "units.toml"
    doc = _read_toml(path, problems)
    if doc is None:
        return []
    file = problems.rel(path)
    for key in doc:
        if key not in {"note", "district", "streets"}:
            problems.add(file, "-", key, "unknown top-level key (expected note, [district] and [[streets]])")
    district = _convert(doc.get("district"), _DistrictIn, problems.reporter(file, "district"), "district.")
    streets: list[_StreetIn] = []
    raw_streets = doc.get("streets", [])
    if not isinstance(raw_streets, list):
        problems.add(file, "-", "streets", "must be an array of tables ([[streets]])")
        raw_streets = []
    for n, raw in enumerate(raw_streets):
        street = _convert(raw, _StreetIn, problems.reporter(file, _label(raw, "code", "streets", n)))
        if street is not None:
            streets.append(street)
    if district is None:
        return []
    units: list[Unit] = []
    seen: set[str] = set()

    def add(unit: Unit, report: Report) -> None:
        if unit.code in seen:
            report("code", "duplicate unit code")
        seen.add(unit.code)
        if unit.uscc is not None and (p := uscc_problem(unit.uscc)) is not None:
            report("uscc", f"invalid unified social credit code: {p.message}")
        units.append(unit)

    d_report = problems.reporter(file, district.code)
    if not _UNIT_CODE_RE.match(district.code) or not district.code.endswith("000000"):
        d_report("code", "a district code is 12 digits ending in 000000 (e.g. 430302000000)")
    add(Unit(code=district.code, name=district.name, level="district", kind=district.kind), d_report)
    total_grids = 0
    for street in streets:
        s_report = problems.reporter(file, street.code)
        if not (_UNIT_CODE_RE.match(street.code) and street.code[:6] == district.code[:6] and street.code[9:] == "000"):
            s_report("code", f"a street/town code is 12 digits: {district.code[:6]} + 3 digits + 000")
        add(
            Unit(
                code=street.code,
                name=street.name,
                level="street",
                kind=street.kind,
                parent=district.code,
                uscc=street.uscc,
            ),
            s_report,
        )
        for community in street.communities:
            c_report = problems.reporter(file, community.code)
            if not (
                _UNIT_CODE_RE.match(community.code)
                and community.code[:9] == street.code[:9]
                and community.code[9:] != "000"
            ):
                c_report("code", f"a community code is 12 digits: {street.code[:9]} + 3 digits (not 000)")
            if community.grids < 1 or community.grids > 999:
                c_report("grids", "must be between 1 and 999")
            if len(community.grid_names) > community.grids:
                c_report("grid_names", "more names than grids")
            add(
                Unit(
                    code=community.code,
                    name=community.name,
                    level="community",
                    kind=community.kind,
                    parent=street.code,
                    uscc=community.uscc,
                ),
                c_report,
            )
            for g in range(1, max(0, min(community.grids, 999)) + 1):
                name = community.grid_names[g - 1] if g <= len(community.grid_names) else f"{community.name}第{g}网格"
                units.append(
                    Unit(code=f"{community.code}{g:03d}", name=name, level="grid", kind="网格", parent=community.code)
                )
            total_grids += max(0, community.grids)
    if total_grids != district.grids:
        d_report("grids", f"communities declare {total_grids} grids in total, the district declares {district.grids}")
    return units


# --- items ------------------------------------------------------------------------------------------------
def _expected_counts(root: Path, problems: _Problems) -> dict[str, int]:
    path = root / CATALOG_DIR / MANIFEST
    if not path.exists():
        return dict(DEFAULT_COUNTS)
    doc = _read_toml(path, problems)
    if doc is None:
        return dict(DEFAULT_COUNTS)
    manifest = _convert(doc, _Manifest, problems.reporter(problems.rel(path), "-"))
    if manifest is None:
        return dict(DEFAULT_COUNTS)
    for level in manifest.counts:
        if level not in LEVELS:
            problems.add(problems.rel(path), "-", f"counts.{level}", f"unknown level (expected {', '.join(LEVELS)})")
    return dict(manifest.counts)


def _check_item(item: Item, report: Report, departments: set[str], certificate_types: set[str]) -> None:
    if not _CODE_RE.match(item.code):
        report("code", "must be 4-40 characters of 0-9, A-Z and -")
    if not item.name.strip():
        report("name", "must not be empty")
    if item.item_type not in ITEM_TYPES:
        choices = ", ".join(f"{k} {v}" for k, v in ITEM_TYPES.items())
        report("item_type", f"unknown item type {item.item_type!r} (one of {choices})")
    if item.department not in departments:
        report("department", f"unknown department {item.department!r}")
    if not item.legal_basis.strip():
        report("legal_basis", "must name the law or regulation the item rests on")
    if item.legal_days < 1:
        report("legal_days", "must be at least 1 working day")
    if item.promised_days < 1:
        report("promised_days", "must be at least 1 working day")
    if item.promised_days > item.legal_days:
        report("promised_days", f"promised {item.promised_days} working days exceeds legal {item.legal_days}")
    if not 0 <= item.visits <= 2:
        report("visits", f"must be 0, 1 or 2, got {item.visits}")
    if item.fee < 0:
        report("fee", "must be 0 (free) or a positive amount in yuan")
    if item.version < 1:
        report("version", "must be 1 or more")
    if item.valid_until is not None and item.valid_until < item.valid_from:
        report("valid_until", f"is before valid_from {item.valid_from.isoformat()}")
    if not item.conditions.strip():
        report("conditions", "must state the 受理条件")
    if not item.steps:
        report("steps", "must list at least one handling step")
    if not item.materials:
        report("materials", "must list at least one material")
    if item.on_behalf_of is not None and item.level != "community":
        report("on_behalf_of", "only community items accept on behalf of a street item")
    keys: set[str] = set()
    for n, m in enumerate(item.materials):
        where = f"materials[{n}]"
        if m.key in keys:
            report(f"{where}.key", f"duplicate material key {m.key!r}")
        keys.add(m.key)
        if m.source == "certificate":
            if m.certificate_type is None:
                report(f"{where}.certificate_type", "source is certificate but no certificate_type is named")
            elif m.certificate_type not in certificate_types:
                report(f"{where}.certificate_type", f"unknown certificate type {m.certificate_type!r}")
        elif m.certificate_type is not None:
            report(f"{where}.certificate_type", "only materials with source = certificate name a certificate_type")
        if m.copies < 0:
            report(f"{where}.copies", "must not be negative")
        if m.min_level == "D" and not m.commitment:
            report(f"{where}.min_level", "D (a commitment) needs the commitment text in `commitment`")
        if m.min_level == "A" and m.source != "certificate":
            report(f"{where}.min_level", "A (an e-certificate) needs source = certificate and a certificate_type")
        if m.commitment and len(m.commitment) > 1000:
            report(f"{where}.commitment", "is too long (at most 1000 characters)")
    if item.result_certificate is not None and item.result_certificate not in certificate_types:
        report("result_certificate", f"unknown certificate type {item.result_certificate!r}")
    if item.commitment_check_days < 1:
        report("commitment_check_days", "must be at least 1 working day")


def _load_items(
    root: Path, departments: set[str], certificate_types: set[str], problems: _Problems
) -> list[tuple[str, Item]]:
    out: list[tuple[str, Item]] = []
    catalog_dir = root / CATALOG_DIR
    if not catalog_dir.is_dir():
        problems.add(problems.rel(catalog_dir), "-", "-", "catalog directory is missing")
        return out
    files = sorted(p for p in catalog_dir.rglob("*.toml") if p != catalog_dir / MANIFEST)
    if not files:
        problems.add(problems.rel(catalog_dir), "-", "-", "no catalog files (*.toml with [[items]])")
    for path in files:
        doc = _read_toml(path, problems)
        if doc is None:
            continue
        file = problems.rel(path)
        for n, raw in enumerate(_entries(doc, "items", file, problems)):
            report = problems.reporter(file, _label(raw, "code", "items", n))
            item = _convert(raw, Item, report)
            if item is None:
                continue
            _check_item(item, report, departments, certificate_types)
            out.append((file, item))
    return out


def _check_across(items: list[tuple[str, Item]], expected: Mapping[str, int], problems: _Problems) -> None:
    first: dict[str, str] = {}
    by_code: dict[str, Item] = {}
    for file, item in items:
        if item.code in first:
            problems.add(file, item.code, "code", f"duplicate item code (also in {first[item.code]})")
            continue
        first[item.code] = file
        by_code[item.code] = item
    for file, item in items:
        if item.on_behalf_of is None or item.level != "community":
            continue
        target = by_code.get(item.on_behalf_of)
        if target is None:
            problems.add(file, item.code, "on_behalf_of", f"no item with code {item.on_behalf_of!r}")
        elif target.level != "street":
            problems.add(file, item.code, "on_behalf_of", f"{target.code} ({target.name}) is not a street item")
        elif target.department != item.department:
            problems.add(
                file,
                item.code,
                "on_behalf_of",
                f"{target.code} belongs to {target.department}, this item to {item.department}",
            )
    counts: dict[str, int] = dict.fromkeys(LEVELS, 0)
    for item in by_code.values():
        counts[item.level] += 1
    for level, want in expected.items():
        if counts.get(level, 0) != want:
            problems.add(CATALOG_DIR, "-", "level", f"expected {want} {level} items, found {counts.get(level, 0)}")


_ETAG_ENCODER = msgspec.json.Encoder(order="deterministic")


def _etag(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_ETAG_ENCODER.encode(part))
    return digest.hexdigest()[:24]


def check_catalog(
    config_dir: Path, *, expected_counts: Mapping[str, int] | None = None
) -> tuple[Catalog | None, list[str]]:
    """Load and validate; (catalog, []) when clean, (None, problems) otherwise. Never raises for bad data."""
    root = Path(config_dir)
    problems = _Problems(root)
    departments = _load_departments(root, problems)
    dept_codes = {d.code for d in departments}
    certificate_types = _load_certificate_types(root, dept_codes, problems)
    units = _load_units(root, problems)
    manifest_counts = _expected_counts(root, problems)
    expected = dict(expected_counts) if expected_counts is not None else manifest_counts
    items = _load_items(root, dept_codes, {c.key for c in certificate_types}, problems)
    _check_across(items, expected, problems)
    if problems.lines:
        return None, problems.lines
    # Street before community, then department registry order, then file order: what a clerk scans.
    dept_order = {d.code: n for n, d in enumerate(departments)}
    ordered = sorted(
        (item for _, item in items),
        key=lambda i: (LEVELS.index(i.level), dept_order.get(i.department, 0)),
    )
    catalog = Catalog(
        items=tuple(ordered),
        departments=tuple(departments),
        certificate_types=tuple(certificate_types),
        units=tuple(units),
        etag=_etag(ordered, departments, certificate_types, units),
    )
    return catalog, []


def load_catalog(config_dir: Path, *, expected_counts: Mapping[str, int] | None = None) -> Catalog:
    """Load ``config_dir/catalog`` and ``config_dir/registry``; raise `CatalogError` listing every problem.

    ``expected_counts`` (level -> number of items) overrides the manifest's counts; ``{}`` checks none.
    """
    catalog, problems = check_catalog(config_dir, expected_counts=expected_counts)
    if catalog is None:
        raise CatalogError(problems)
    return catalog


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[tuple[str, int, int], ...], Catalog]] = {}


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for sub in (CATALOG_DIR, REGISTRY_DIR):
        for p in sorted((root / sub).rglob("*.toml")):
            st = p.stat()
            out.append((p.as_posix(), st.st_mtime_ns, st.st_size))
    return tuple(out)


def cached_catalog(config_dir: Path) -> Catalog:
    """`load_catalog` with the manifest's counts, reused while no data file changes (app factories and tests
    build many apps over the same data)."""
    root = Path(config_dir).resolve()
    signature = _signature(root)
    with _cache_lock:
        hit = _cache.get(root)
        if hit is not None and hit[0] == signature:
            return hit[1]
    catalog = load_catalog(root)
    with _cache_lock:
        _cache[root] = (signature, catalog)
    return catalog
