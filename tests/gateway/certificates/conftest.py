"""Fixtures: the department simulators on ephemeral ports, and a certificate store on the `database` fixture.

The simulators write the health system's TLS material into the same data dir the gateway uses (``db_settings``),
as `onewindow demo` does, so the mutual-TLS connector finds its client certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from catalog.loader import cached_catalog
from connectors.client import ConnectorPool
from connectors.registry import load_departments, load_trust, rebase
from connectors.spec import DepartmentSpec
from demokit.simulators import Simulators, run_simulators
from gateway.certificates.lookup import CertificateService
from gateway.certificates.runtime import lookup_specs, type_departments
from gateway.certificates.store import CertificateStore
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.storage import Database

#: Small enough to start in a blink, large enough that every department holds certificates.
CITIZENS = 120
SEED = 7


@pytest.fixture
async def sims(db_settings: Settings) -> AsyncIterator[Simulators]:
    async with run_simulators(seed=SEED, citizens=CITIZENS, data_dir=db_settings.data_dir) as running:
        yield running


@pytest.fixture
def cipher(db_settings: Settings) -> FieldCipher:
    return FieldCipher(KeyRing.load(db_settings.data_dir))


@pytest.fixture
def store(database: Database, cipher: FieldCipher) -> CertificateStore:
    return CertificateStore(database, cipher)


def simulated_specs(settings: Settings, sims: Simulators) -> list[DepartmentSpec]:
    return rebase(load_departments(settings.config_dir), sims.urls)


@pytest.fixture
async def pool(db_settings: Settings, sims: Simulators) -> AsyncIterator[ConnectorPool]:
    """The connector pool over the simulators, with the department files' own policies (bulk sync)."""
    specs = simulated_specs(db_settings, sims)
    async with ConnectorPool(specs, data_dir=db_settings.data_dir, trust=load_trust(db_settings.config_dir)) as p:
        yield p


def make_service(
    settings: Settings, database: Database, store: CertificateStore, pool: ConnectorPool, budget: float
) -> CertificateService:
    return CertificateService(
        database=database,
        store=store,
        pool=pool,
        type_departments=type_departments(cached_catalog(settings.config_dir)),
        budget_seconds=budget,
        max_age_hours=settings.certificate_max_age_hours,
    )


class RetryWaits:
    """Stands in for the pool's sleep between retries: records each wait and returns at once.

    With real waits the number of attempts inside the lookup budget, and whether the last one is cut off by the
    deadline, would depend on how busy the machine is; recorded waits keep both fixed and let a test check the
    retry plan itself.
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def retry_waits() -> RetryWaits:
    return RetryWaits()


@pytest.fixture
async def lookup_pool(db_settings: Settings, sims: Simulators, retry_waits: RetryWaits) -> AsyncIterator[ConnectorPool]:
    """The pool as the gateway builds it for lookups: retries and timeouts inside a 1 s budget (waits between
    retries recorded in ``retry_waits`` instead of slept)."""
    specs = lookup_specs(simulated_specs(db_settings, sims), 1.0)
    trust = load_trust(db_settings.config_dir)
    async with ConnectorPool(specs, data_dir=db_settings.data_dir, trust=trust, sleep=retry_waits) as p:
        yield p


@pytest.fixture
def service(
    db_settings: Settings, database: Database, store: CertificateStore, lookup_pool: ConnectorPool
) -> CertificateService:
    return make_service(db_settings, database, store, lookup_pool, 1.0)
