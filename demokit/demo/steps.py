"""The demo's start-up steps, one function each, so the runner and the benchmarks can string them together.

1. `start_simulators`   the seven department systems (ports clear of the gateway's), PKI written into the data dir
2. `demo_settings`      the gateway's settings pointed at them (connector specs rebased through the control port)
3. `prepare_database`   the SQLite file (or PostgreSQL) created or migrated; an existing data dir is reused
4. `sync_certificates`  every department's certificates pulled into the store
5. `choose_scenario`    two street windows, the item and department the demo shows, the listed citizens
6. `create_demo_tokens` one bearer token per role (the previous run's demo tokens are revoked)
7. `write_demo_file`    ``<data dir>/demo.json`` (docs/api.md#demojson), mode 0600
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from catalog.catalog import Catalog
from catalog.models import Item
from demokit.simulators.runner import Simulators
from gateway.commands.simulate import DEFAULT_CITIZENS, DEFAULT_SEED
from gateway.settings import Settings
from gateway.storage.database import Database

DEMO_FILE = "demo.json"
#: The same synthetic population every run, and the same as a plain `onewindow simulate` serves.
DEMO_SEED = DEFAULT_SEED
DEMO_POPULATION = DEFAULT_CITIZENS
#: How many citizens demo.json lists (docs/api.md#demojson: at least five).
DEMO_CITIZEN_COUNT = 6
#: The simulators' control port sits this far above the gateway's port; the departments follow it (+1 … +6).
SIMULATOR_PORT_OFFSET = 100
#: The two street windows of the demo clerks: real units the district has named (窑湾街道, 昭潭街道;
#: docs/domain.md#the-district).
PREFERRED_STREETS = ("430302006000", "430302007000")
#: Label prefix of the demo's tokens, so a re-run can revoke the previous run's.
TOKEN_LABEL_PREFIX = "demo:"  # noqa: S105 - a label, not a secret
ROLES = ("clerk", "clerk_other_unit", "officer", "supervisor", "admin", "system", "grid_worker")
SYSTEM_SCOPES = ("status:read", "certificates:read", "applications:read")


class DemoCitizen(msgspec.Struct, kw_only=True):
    id_number: str
    name: str
    certificate_types: list[str]


class DemoItem(msgspec.Struct, kw_only=True):
    """The item the demo suggests filing: its certificate-sourced materials come from the departments."""

    code: str
    name: str
    department: str
    certificate_types: list[str]
    #: True when every required material comes from a certificate (``"accept": true`` works without uploads).
    accept_without_uploads: bool


class PopulationInfo(msgspec.Struct, kw_only=True):
    """Which synthetic population the simulators served (it depends on the seed and on the day)."""

    seed: int
    as_of: str
    citizens: int


class DemoFile(msgspec.Struct, kw_only=True):
    """``demo.json``: the fields docs/api.md#demojson fixes first, then extras (clients ignore unknown ones)."""

    base_url: str
    tokens: dict[str, str]
    officer_department: str
    citizens: list[DemoCitizen]
    units: dict[str, str] = {}
    item: DemoItem | None = None
    simulators: dict[str, str] = {}
    population: PopulationInfo | None = None
    created_at: str = ""
    #: The grid (网格) of ``citizens[0]`` (file their cases with ``applicant.grid`` set to it); ``tokens.grid_worker``
    #: is that grid's worker.
    grid: str = ""


def population_info(sims: Simulators) -> PopulationInfo:
    population = sims.population
    return PopulationInfo(seed=population.seed, as_of=population.as_of.isoformat(), citizens=len(population.citizens))


def read_demo_file(data_dir: Path) -> DemoFile | None:
    """The previous run's ``demo.json``, or None when there is none (or it is unreadable)."""
    try:
        return msgspec.json.decode((data_dir / DEMO_FILE).read_bytes(), type=DemoFile)
    except (OSError, msgspec.DecodeError):
        return None


class Scenario(msgspec.Struct, kw_only=True):
    clerk_unit: str
    other_unit: str
    item: DemoItem
    citizens: list[DemoCitizen]
    #: The grid of ``citizens[0]``: the first grid under the clerk's street.
    grid: str = ""

    @property
    def officer_department(self) -> str:
        return self.item.department


class SimulatedCitizen(Protocol):
    @property
    def id_number(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def certificate_types(self) -> tuple[str, ...]: ...


# -- 1. simulators -------------------------------------------------------------------------------------------


def simulator_base_port(gateway_port: int) -> int:
    """P + 100 (so the default gateway port 8000 gives the simulators' default 8100); 0 (ephemeral) when that
    would not fit below 65536 or the gateway itself is on an ephemeral port."""
    base = gateway_port + SIMULATOR_PORT_OFFSET
    if gateway_port == 0 or base + 7 > 65535:
        return 0
    return base


def _ports_free(host: str, ports: Sequence[int]) -> bool:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


@contextlib.asynccontextmanager
async def start_simulators(
    host: str, gateway_port: int, data_dir: Path, *, seed: int = DEMO_SEED, citizens: int = DEMO_POPULATION
) -> AsyncIterator[Simulators]:
    """The seven department simulators on P+100 … P+107, or on ephemeral ports when those are taken."""
    from demokit.simulators import run_simulators

    base = simulator_base_port(gateway_port)
    if base and not _ports_free(host, range(base, base + 8)):
        base = 0
    async with run_simulators(host=host, base_port=base, seed=seed, citizens=citizens, data_dir=data_dir) as sims:
        yield sims


# -- 2. settings ---------------------------------------------------------------------------------------------


def demo_settings(settings: Settings, sims: Simulators) -> Settings:
    """The gateway's settings with the connector specs rebased onto the running simulators."""
    return msgspec.structs.replace(settings, simulator_base_host=sims.control_url)


# -- 3. database ---------------------------------------------------------------------------------------------


async def prepare_database(settings: Settings) -> Database:
    """The database created or migrated (an existing data dir keeps its data). The caller disposes it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        settings.data_dir.chmod(0o700)
    db = Database.from_settings(settings)
    try:
        await db.migrate()
    except BaseException:
        await db.dispose()
        raise
    return db


# -- 4. certificates -----------------------------------------------------------------------------------------


class SyncSummary(msgspec.Struct, kw_only=True):
    stored: int
    fetched: int
    departments: dict[str, int]
    errors: list[str]


async def sync_certificates(settings: Settings, db: Database, *, full: bool = False) -> SyncSummary:
    """Every department's certificates into the store: the same pieces as ``onewindow connectors sync``
    (rebased specs, trust store, connector pool, `connectors.sync.sync_all`, `CertificateStore`).

    Incremental unless ``full`` (each department's cursor is kept in the database), so a re-run is quick; the
    runner asks for a full sync when the simulators serve another population than last time (another day).
    """
    from connectors.breaker import breaker_store_for
    from connectors.client import ConnectorPool
    from connectors.registry import load_trust
    from connectors.sync import sync_all
    from gateway.certificates.runtime import department_specs
    from gateway.certificates.store import CertificateStore
    from gateway.privacy import FieldCipher, KeyRing
    from gateway.stores import redis_client

    specs = await department_specs(settings)
    cipher = FieldCipher(KeyRing.load(settings.data_dir))
    store = CertificateStore(db, cipher, actor="demo", purpose="demo sync")
    breakers = breaker_store_for(redis_client(settings.redis_url) if settings.redis_url else None, owns_client=True)
    try:
        async with ConnectorPool(
            specs, data_dir=settings.data_dir, breaker_store=breakers, trust=load_trust(settings.config_dir)
        ) as pool:
            reports = await sync_all(pool, store, full=full)
    finally:
        await breakers.aclose()
    return SyncSummary(
        stored=sum(r.stored for r in reports),
        fetched=sum(r.fetched for r in reports),
        departments={r.code: r.stored for r in reports},
        errors=[f"{r.code}: {e}" for r in reports for e in r.errors],
    )


# -- 5. scenario ---------------------------------------------------------------------------------------------


def _street_units(catalog: Catalog) -> tuple[str, str]:
    streets = [u.code for u in catalog.units_at("street")]
    preferred = [code for code in PREFERRED_STREETS if code in streets]
    others = [code for code in streets if code not in preferred]
    picked = (preferred + others)[:2]
    if len(picked) < 2:
        raise RuntimeError("the catalog needs at least two street units for the demo clerks")
    return picked[0], picked[1]


def _item_fit(item: Item, holders: Sequence[DemoCitizen]) -> tuple[int, int, int, str] | None:
    """How well an item shows prefilling for the listed citizens (smaller is better), or None if it cannot."""
    required_types = {m.certificate_type for m in item.materials if m.required and m.source == "certificate"}
    all_types = {m.certificate_type for m in item.materials if m.source == "certificate"}
    if not all_types:
        return None
    if not any(required_types <= set(c.certificate_types) for c in holders):
        return None
    uploads = sum(1 for m in item.materials if m.required and m.source != "certificate")
    return (uploads, -len(all_types), -len(required_types), item.code)


def _demo_item(item: Item) -> DemoItem:
    types = list(dict.fromkeys(m.certificate_type for m in item.materials if m.certificate_type))
    return DemoItem(
        code=item.code,
        name=item.name,
        department=item.department,
        certificate_types=types,
        accept_without_uploads=all(m.source == "certificate" for m in item.materials if m.required),
    )


def choose_scenario(catalog: Catalog, citizens: Sequence[SimulatedCitizen], today: dt.date | None = None) -> Scenario:
    """The clerks' windows, the item to demonstrate and the listed citizens, deterministically.

    The item is a published street item a street clerk can file today, with certificate-sourced materials that
    one of the listed citizens holds; items whose required materials all come from certificates go first (the
    demo's sample filing is accepted in one call), then those drawing on the most certificate types.
    """
    day = today or dt.date.today()
    listed = [
        DemoCitizen(id_number=c.id_number, name=c.name, certificate_types=list(c.certificate_types)) for c in citizens
    ]
    if len(listed) < 5:
        raise RuntimeError(f"the simulators offered {len(listed)} demo citizens; the demo lists at least five")
    clerk_unit, other_unit = _street_units(catalog)
    fits = [
        (fit, item)
        for item in catalog.offered(day)
        if item.level == "street" and (fit := _item_fit(item, listed)) is not None
    ]
    if not fits:
        raise RuntimeError("no published street item has certificate materials the demo citizens hold")
    item = min(fits, key=lambda pair: pair[0])[1]
    demo_item = _demo_item(item)
    required = {m.certificate_type for m in item.materials if m.required and m.source == "certificate"}
    # The citizen who can file it goes first, so "citizens[0]" is always a working example.
    listed.sort(key=lambda c: not required <= set(c.certificate_types))
    return Scenario(
        clerk_unit=clerk_unit,
        other_unit=other_unit,
        item=demo_item,
        citizens=listed,
        grid=_first_grid(catalog, clerk_unit),
    )


def _first_grid(catalog: Catalog, unit: str) -> str:
    """The first grid (by code) under ``unit``."""
    for community in sorted(catalog.children(unit), key=lambda u: u.code):
        grids = sorted(u.code for u in catalog.children(community.code) if u.level == "grid")
        if grids:
            return grids[0]
    return ""


# -- 6. tokens -----------------------------------------------------------------------------------------------


async def create_demo_tokens(db: Database, scenario: Scenario) -> dict[str, str]:
    """One token per role; the previous demo run's tokens are revoked first (re-running gives new tokens)."""
    from gateway.identity.tokens import create_token, list_tokens, revoke_token

    for record in await list_tokens(db, include_revoked=False):
        if (record.label or "").startswith(TOKEN_LABEL_PREFIX):
            await revoke_token(db, record.id, revoked_by="demo")
    bindings: dict[str, dict[str, Any]] = {
        "clerk": {"role": "clerk", "unit": scenario.clerk_unit},
        "clerk_other_unit": {"role": "clerk", "unit": scenario.other_unit},
        "officer": {"role": "officer", "department": scenario.officer_department},
        "supervisor": {"role": "supervisor"},
        "admin": {"role": "admin"},
        "system": {"role": "system", "scopes": SYSTEM_SCOPES},
    }
    if scenario.grid:
        bindings["grid_worker"] = {"role": "grid_worker", "unit": scenario.grid}
    tokens: dict[str, str] = {}
    for name, binding in bindings.items():
        token, _record = await create_token(db, label=TOKEN_LABEL_PREFIX + name, created_by="demo", **binding)
        tokens[name] = token
    return tokens


# -- 7. demo.json --------------------------------------------------------------------------------------------


def write_demo_file(data_dir: Path, demo: DemoFile) -> Path:
    """Write ``demo.json`` atomically with mode 0600 (it holds bearer tokens)."""
    path = data_dir / DEMO_FILE
    body = msgspec.json.format(msgspec.json.encode(demo), indent=2) + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=".demo.", suffix=".json", dir=data_dir)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    path.chmod(0o600)
    return path


__all__ = [
    "DEMO_FILE",
    "DEMO_POPULATION",
    "DEMO_SEED",
    "DemoCitizen",
    "DemoFile",
    "DemoItem",
    "PopulationInfo",
    "Scenario",
    "SyncSummary",
    "choose_scenario",
    "create_demo_tokens",
    "demo_settings",
    "population_info",
    "prepare_database",
    "read_demo_file",
    "simulator_base_port",
    "start_simulators",
    "sync_certificates",
    "write_demo_file",
]
