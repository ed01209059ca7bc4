"""Start the seven department systems (and the control page) on loopback; stop them cleanly.

::

    async with run_simulators(seed=7, citizens=200, data_dir=tmp_path) as sims:
        sims.url("civil_affairs")           # "http://127.0.0.1:41733" — the port actually bound
        sims.set_faults("health", "hang=1")
        sims.demo_citizens(5)

With ``base_port=P`` the control page listens on P and the departments on P+1 … P+7 in `DEPARTMENT_CODES` order;
``base_port=0`` binds every one to an ephemeral port.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from demokit.simulators.base import DepartmentSimulator, json_response
from demokit.simulators.civil_affairs import CivilAffairsSimulator
from demokit.simulators.disabled_persons import DisabledPersonsSimulator
from demokit.simulators.faults import NO_FAULTS, Faults, faults_from_mapping, parse_fault_list, parse_fault_spec
from demokit.simulators.health import HealthSimulator
from demokit.simulators.human_resources import TOKEN_TTL_SECONDS, HumanResourcesSimulator
from demokit.simulators.natural_resources import NaturalResourcesSimulator
from demokit.simulators.pki import PkiFiles, client_ssl_context, make_pki, server_ssl_context
from demokit.simulators.public_security import PublicSecuritySimulator
from demokit.simulators.registry import CERTIFICATE_TYPES, DEPARTMENT_CODES
from demokit.simulators.seed import Citizen, Population, demo_citizens, generate_population
from demokit.simulators.store import CertificateStore
from demokit.simulators.veterans import VeteransSimulator
from gateway.commands.simulate import DEFAULT_CITIZENS, DEFAULT_SEED

PKI_SUBDIR = Path("simulators") / "pki"
#: aiohttp waits this long for in-flight handlers at shutdown before cancelling them.
_SHUTDOWN_TIMEOUT = 1.0

SIMULATOR_CLASSES: dict[str, type[DepartmentSimulator]] = {
    cls.code: cls
    for cls in (
        PublicSecuritySimulator,
        CivilAffairsSimulator,
        HumanResourcesSimulator,
        DisabledPersonsSimulator,
        HealthSimulator,
        VeteransSimulator,
        NaturalResourcesSimulator,
    )
}

FaultsArg = str | Mapping[str, Faults | Mapping[str, float] | str] | None


def _url_host(host: str) -> str:
    if host in {"", "0.0.0.0"}:
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _as_faults(value: Faults | Mapping[str, float] | str) -> Faults:
    if isinstance(value, Faults):
        return value
    if isinstance(value, str):
        return parse_fault_list(value)
    return faults_from_mapping(value)


def resolve_faults(faults: FaultsArg) -> dict[str, Faults]:
    """Faults per department from a ``--faults`` spec or a mapping (``"*"`` for every department)."""
    if faults is None:
        return dict.fromkeys(DEPARTMENT_CODES, NO_FAULTS)
    if isinstance(faults, str):
        return parse_fault_spec(faults)
    result = dict.fromkeys(DEPARTMENT_CODES, NO_FAULTS)
    if "*" in faults:
        result = dict.fromkeys(DEPARTMENT_CODES, _as_faults(faults["*"]))
    for code, value in faults.items():
        if code == "*":
            continue
        if code not in result:
            raise ValueError(f"unknown department {code!r}; known: {', '.join(DEPARTMENT_CODES)}")
        result[code] = _as_faults(value)
    return result


def _citizens_document(population: Population) -> bytes:
    """``GET /__sim__/citizens``: who the seeded citizens are and which certificates each holds (no signatures)."""
    citizens = [
        {
            "id_number": c.id_number,
            "name": c.name,
            "gender": c.gender,
            "birth_date": c.birth_date,
            "phone": c.phone,
            "street": c.street,
            "community": c.community,
            "address": c.address,
            "household_number": c.household_number,
            "relation": c.relation,
            "certificates": [
                {
                    "type_key": cert.type_key,
                    "type_code": cert.type_code,
                    "department": CERTIFICATE_TYPES[cert.type_key].department,
                    "identifier": cert.identifier,
                    "number": cert.number,
                    "status": cert.status,
                    "valid_until": cert.valid_until,
                }
                for cert in c.certificates
            ],
        }
        for c in population.citizens
    ]
    return msgspec.json.encode({"seed": population.seed, "as_of": population.as_of, "citizens": citizens})


class Simulators:
    """The running department systems. Build with `run_simulators`."""

    def __init__(
        self,
        population: Population,
        departments: dict[str, DepartmentSimulator],
        pki: PkiFiles,
        *,
        host: str,
        base_port: int,
    ) -> None:
        self.population = population
        self.departments = departments
        self.pki = pki
        self.host = host
        self.base_port = base_port
        self.stopping = next(iter(departments.values())).stopping if departments else asyncio.Event()
        self._runners: list[web.AppRunner] = []
        self._urls: dict[str, str] = {}
        self.control_url = ""

    # what callers use -------------------------------------------------------------------------------------------
    @property
    def citizens(self) -> list[Citizen]:
        return self.population.citizens

    @property
    def seed(self) -> int:
        return self.population.seed

    @property
    def pki_dir(self) -> Path:
        return self.pki.directory

    def url(self, department_code: str) -> str:
        """Base URL actually bound (``https://`` for health), without a trailing slash."""
        try:
            return self._urls[department_code]
        except KeyError:
            raise KeyError(f"unknown department {department_code!r}; known: {', '.join(self._urls)}") from None

    @property
    def urls(self) -> dict[str, str]:
        return dict(self._urls)

    def set_faults(self, department_code: str, spec: Faults | Mapping[str, float] | str) -> None:
        """Replace a department's faults (``"*"``: every department), e.g. ``set_faults("health", "hang=1")``."""
        faults = _as_faults(spec)
        codes = list(self.departments) if department_code == "*" else [department_code]
        for code in codes:
            if code not in self.departments:
                raise KeyError(f"unknown department {code!r}; known: *, {', '.join(self.departments)}")
            self.departments[code].faults = faults

    def clear_faults(self) -> None:
        self.set_faults("*", NO_FAULTS)

    def demo_citizens(self, k: int = 5) -> list[Citizen]:
        return demo_citizens(self.citizens, k)

    def certificate_counts(self) -> dict[str, int]:
        return {code: len(sim.store) for code, sim in self.departments.items()}

    def store(self, department_code: str) -> CertificateStore:
        return self.departments[department_code].store

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context with the health system's CA and the gateway's client certificate."""
        return client_ssl_context(self.pki)

    # lifecycle --------------------------------------------------------------------------------------------------
    async def _serve(self, app: web.Application, port: int, ssl_context: ssl.SSLContext | None) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        address = runner.addresses[0]
        return int(address[1])

    async def start(self) -> None:
        try:
            control_port = await self._serve(self._control_app(), self.base_port, None)
            self.control_url = f"http://{_url_host(self.host)}:{control_port}"
            for offset, (code, simulator) in enumerate(self.departments.items(), start=1):
                port = self.base_port + offset if self.base_port else 0
                bound = await self._serve(simulator.build_app(), port, simulator.ssl_context)
                scheme = "https" if simulator.ssl_context is not None else "http"
                self._urls[code] = f"{scheme}://{_url_host(self.host)}:{bound}"
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Release waiting handlers (hang, latency), then close every server. Safe to call twice."""
        self.stopping.set()
        await asyncio.sleep(0)
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()

    # the control page -------------------------------------------------------------------------------------------
    def _control_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/health", self._health)
        return app

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "code": code,
                "name": sim.info.name,
                "style": sim.info.style,
                "url": self._urls.get(code, ""),
                "bulk_path": sim.bulk_path,
                "certificate_types": list(sim.info.types),
                "certificates": len(sim.store),
                "faults": sim.faults.describe(),
            }
            for code, sim in self.departments.items()
        ]

    async def _index(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "seed": self.seed,
                "citizens": len(self.citizens),
                "as_of": self.population.as_of,
                "pki_dir": str(self.pki_dir),
                "departments": self.describe(),
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"status": "UP", "departments": len(self._urls)})


async def build_simulators(
    *,
    host: str = "127.0.0.1",
    base_port: int = 0,
    seed: int = DEFAULT_SEED,
    citizens: int = DEFAULT_CITIZENS,
    faults: FaultsArg = None,
    data_dir: Path | str = "var",
    token_ttl: int = TOKEN_TTL_SECONDS,
    as_of: dt.date | None = None,
) -> Simulators:
    """Seed and configure the seven systems without starting them (see `run_simulators`)."""
    if not 0 <= base_port <= 65535 - len(DEPARTMENT_CODES):
        raise ValueError(f"base_port must be 0..{65535 - len(DEPARTMENT_CODES)}, got {base_port}")
    per_department = resolve_faults(faults)
    population = await asyncio.to_thread(generate_population, seed, citizens, as_of=as_of)
    pki = await asyncio.to_thread(make_pki, Path(data_dir) / PKI_SUBDIR, [host])
    citizens_json = functools.cache(functools.partial(_citizens_document, population))  # built when first asked
    stopping = asyncio.Event()
    departments: dict[str, DepartmentSimulator] = {}
    for code in DEPARTMENT_CODES:
        store = CertificateStore(code, population.by_department(code))
        options: dict[str, Any] = {"token_ttl": token_ttl} if code == "human_resources" else {}
        simulator = SIMULATOR_CLASSES[code](
            store, citizens_json=citizens_json, faults=per_department[code], seed=seed, stopping=stopping, **options
        )
        if code == "health":
            simulator.ssl_context = server_ssl_context(pki)
        departments[code] = simulator
    return Simulators(population, departments, pki, host=host, base_port=base_port)


@asynccontextmanager
async def run_simulators(
    *,
    host: str = "127.0.0.1",
    base_port: int = 0,
    seed: int = DEFAULT_SEED,
    citizens: int = DEFAULT_CITIZENS,
    faults: FaultsArg = None,
    data_dir: Path | str = "var",
    token_ttl: int = TOKEN_TTL_SECONDS,
    as_of: dt.date | None = None,
) -> AsyncIterator[Simulators]:
    """Run the seven department systems for the duration of the block; everything is closed on exit.

    ``faults``: a ``--faults`` spec string, or ``{"health": "hang=1", "*": {"latency": 50}}``. ``data_dir``: where
    the health system's TLS material goes (``<data_dir>/simulators/pki/``). ``token_ttl``: lifetime in seconds of
    the human-resources OAuth2 tokens. ``as_of``: the day the population's ages and validity are computed for.
    """
    simulators = await build_simulators(
        host=host,
        base_port=base_port,
        seed=seed,
        citizens=citizens,
        faults=faults,
        data_dir=data_dir,
        token_ttl=token_ttl,
        as_of=as_of,
    )
    await simulators.start()
    try:
        yield simulators
    finally:
        await simulators.stop()
