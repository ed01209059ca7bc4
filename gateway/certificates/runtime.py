"""Wiring the certificate side: department files (rebased onto the simulators when asked), the connector pool for
lookups, the `CertificateService` on the application context and the "departments" readiness check.

Where the department systems are:

- by default, each ``config/departments/<code>.toml``'s ``base_url``;
- with a simulators URL (``--simulators-url`` or ``ONEWINDOW_SIMULATOR_BASE_HOST``, e.g.
  ``http://127.0.0.1:8100``, the simulators' control port), each department at the URL the control port lists,
  or, if it lists none, at control port + 1 … + 7 in docs/simulators.md's order (keeping the file's scheme, since
  the health department speaks TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from litestar import Litestar
from yarl import URL

from catalog.catalog import Catalog
from connectors.breaker import breaker_store_for
from connectors.client import ConnectorPool
from connectors.registry import load_departments, load_trust, rebase
from connectors.spec import DepartmentSpec, SpecError
from connectors.sync import probe
from gateway.certificates.issuer import district_issuer, with_issuer
from gateway.certificates.lookup import CertificateService
from gateway.certificates.quarantine import qualities
from gateway.certificates.store import CertificateStore
from gateway.context import context_of
from gateway.health.checks import Check, ReadinessCheck
from gateway.observability.metrics import observe_department_call
from gateway.settings import Settings
from gateway.storage import Database

log = logging.getLogger("onewindow.certificates")

#: docs/simulators.md: the departments listen on control port + 1 … + 7 in this order.
SIMULATOR_ORDER = (
    "public_security",
    "civil_affairs",
    "human_resources",
    "disabled_persons",
    "health",
    "veterans",
    "natural_resources",
)


def simulator_urls_by_convention(control_url: str, specs: Iterable[DepartmentSpec]) -> dict[str, str]:
    """Department URLs at control port + 1 … + 7 (docs/simulators.md), keeping each file's scheme and path."""
    control = URL(control_url)
    if control.port is None or control.host is None:
        raise ValueError(f"simulators URL {control_url!r} must name a host and port, e.g. http://127.0.0.1:8100")
    urls: dict[str, str] = {}
    for spec in specs:
        if spec.code not in SIMULATOR_ORDER:
            continue
        base = URL(spec.base_url)
        port = control.port + 1 + SIMULATOR_ORDER.index(spec.code)
        urls[spec.code] = str(URL.build(scheme=base.scheme, host=control.host, port=port, path=base.path))
    return urls


def _listed_urls(document: Any) -> dict[str, str]:
    """Department URLs from the control port's listing, whatever its exact shape (object or list of objects)."""
    urls: dict[str, str] = {}
    entries: Any = document.get("departments", document) if isinstance(document, dict) else document
    if isinstance(entries, dict):
        for code, value in entries.items():
            if isinstance(value, str):
                urls[code] = value
            elif isinstance(value, dict) and isinstance(value.get("url"), str):
                urls[code] = value["url"]
    elif isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("code"), str) and isinstance(entry.get("url"), str):
                urls[entry["code"]] = entry["url"]
    return {code: url for code, url in urls.items() if url.startswith(("http://", "https://"))}


async def simulator_urls(control_url: str, specs: Iterable[DepartmentSpec], *, wait: float = 3.0) -> dict[str, str]:
    """Where each simulated department listens: the control port's listing, else the port convention."""
    specs = list(specs)
    listed: dict[str, str] = {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as session,
            session.get(control_url.rstrip("/") + "/", headers={"Accept": "application/json"}) as response,
        ):
            if response.status == 200:
                listed = _listed_urls(msgspec.json.decode(await response.read()))
    except (aiohttp.ClientError, OSError, TimeoutError, msgspec.DecodeError) as exc:
        log.info("simulators listing at %s not readable (%r); using the port convention", control_url, exc)
    fallback = simulator_urls_by_convention(control_url, specs)
    return {spec.code: listed.get(spec.code) or fallback[spec.code] for spec in specs if spec.code in fallback}


async def department_specs(
    settings: Settings,
    *,
    simulators_url: str | None = None,
    base_urls: Mapping[str, str] | None = None,
) -> list[DepartmentSpec]:
    """The enabled department files of ``settings.config_dir``, rebased as asked. Raises `SpecError`."""
    specs = [spec for spec in load_departments(settings.config_dir) if spec.enabled]
    control = simulators_url if simulators_url is not None else settings.simulator_base_host
    if control:
        specs = rebase(specs, await simulator_urls(control, specs))
    if base_urls:
        specs = rebase(specs, base_urls)
    return specs


def lookup_specs(specs: Iterable[DepartmentSpec], budget_seconds: float) -> list[DepartmentSpec]:
    """Specs whose retries and timeouts fit inside one lookup budget.

    An intake lookup must answer within the budget, so a failing department should fail with its own error
    ("HTTP 503 …") a little before the budget ends, not be cut off mid-retry with nothing to say.
    """
    inner = max(budget_seconds * 0.85, 0.05)
    out: list[DepartmentSpec] = []
    for spec in specs:
        retry = msgspec.structs.replace(spec.retry, deadline=min(spec.retry.deadline, inner))
        t = spec.timeouts
        timeouts = msgspec.structs.replace(
            t, connect=min(t.connect, inner), read=min(t.read, inner), total=min(t.total, inner)
        )
        out.append(msgspec.structs.replace(spec, retry=retry, timeouts=timeouts))
    return out


def type_departments(catalog: Catalog) -> dict[str, str]:
    """Certificate type key -> issuing department, from the catalog's registry."""
    return {t.key: t.issuing_department for t in catalog.certificate_types}


def departments_check(pool: ConnectorPool, *, ttl_seconds: float = 30.0, within: float = 2.0) -> ReadinessCheck:
    """A non-critical readiness check: every department answers its health and list calls.

    Probes are cached for ``ttl_seconds`` (a load balancer polling readiness must not hammer the departments)
    and bounded by ``within`` seconds.
    """
    cache: dict[str, Any] = {"at": -1e9, "check": None}
    lock = asyncio.Lock()

    async def run() -> Check:
        if not pool.codes:
            return Check(ok=True, critical=False, detail="no departments configured")
        try:
            async with asyncio.timeout(within):
                results = await asyncio.gather(*(probe(pool, code) for code in pool.codes))
        except TimeoutError:
            return Check(ok=False, critical=False, detail=f"department probes did not finish within {within:g} s")
        down = [r.code for r in results if not r.ok]
        detail = f"{len(results) - len(down)}/{len(results)} reachable" + (f"; down: {', '.join(down)}" if down else "")
        return Check(ok=not down, critical=False, detail=detail)

    async def check() -> Check:
        loop = asyncio.get_running_loop()
        async with lock:
            if cache["check"] is None or loop.time() - cache["at"] > ttl_seconds:
                cache["check"] = await run()
                cache["at"] = loop.time()
            result: Check = cache["check"]
            return result

    return check


def records_check(db: Database, departments: Iterable[str]) -> ReadinessCheck:
    """A non-critical readiness check: no department is degraded, i.e. in its last sync that received records no
    more than its ``[quality] max_rejected_share`` of them were quarantined (one indexed read per probe)."""
    wanted = set(departments)

    async def check() -> Check:
        found = {code: q for code, q in (await qualities(db)).items() if code in wanted}
        degraded = sorted(code for code, q in found.items() if q.degraded)
        if not degraded:
            return Check(ok=True, critical=False, detail=f"{len(found)} department(s) synced, none degraded")
        shares = ", ".join(f"{code} ({found[code].share:.1%} of records quarantined)" for code in degraded)
        return Check(ok=False, critical=False, detail=f"degraded: {shares}")

    return check


@contextlib.asynccontextmanager
async def certificates_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Sets the context's ``connectors`` (a `ConnectorPool`), ``certificate_store`` and ``certificates`` (the
    `CertificateService`), sharing the context's Redis client for the circuit breakers.

    Needs the context's ``database``. An invalid department file is logged and the gateway
    starts without connectors (lookups answer "no connector for …"; readiness reports it): the windows keep
    working with uploaded scans.
    """
    context = context_of(app)
    settings = context.settings
    specs: list[DepartmentSpec] = []
    problem = ""
    try:
        specs = lookup_specs(await department_specs(settings), settings.lookup_budget_seconds)
    except (SpecError, ValueError) as exc:
        problem = str(exc)
        log.error("department files are invalid; starting without connectors:\n%s", problem)
    store = CertificateStore(context.database, context.cipher)
    # The district's own issuer key is published next to the departments' (certificates issued for cases).
    issuer = district_issuer(Path(settings.data_dir))
    issuer.publish(Path(settings.data_dir))
    trust = with_issuer(load_trust(settings.config_dir), issuer)
    async with contextlib.AsyncExitStack() as stack:
        breakers = breaker_store_for(context.redis)
        stack.push_async_callback(breakers.aclose)
        pool = await stack.enter_async_context(
            ConnectorPool(
                specs,
                data_dir=Path(settings.data_dir),
                breaker_store=breakers,
                trust=trust,
                observer=observe_department_call,
            )
        )
        context.connectors = pool
        context.certificate_store = store
        context.certificates = CertificateService(
            database=context.database,
            store=store,
            pool=pool,
            type_departments=type_departments(context.catalog),
            budget_seconds=settings.lookup_budget_seconds,
            max_age_hours=settings.certificate_max_age_hours,
        )
        if problem:

            async def broken() -> Check:
                return Check(ok=False, critical=False, detail=f"department files invalid: {problem.splitlines()[0]}")

            context.readiness["departments"] = broken
        else:
            context.readiness["departments"] = departments_check(pool)
        context.readiness["department_records"] = records_check(context.database, pool.codes)
        yield


__all__ = [
    "SIMULATOR_ORDER",
    "certificates_lifespan",
    "department_specs",
    "departments_check",
    "lookup_specs",
    "records_check",
    "simulator_urls",
    "simulator_urls_by_convention",
    "type_departments",
]
