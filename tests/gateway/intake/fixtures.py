"""The whole gateway over HTTP for the case tests (intake, lifecycle, tracking, e2e): `create_app` on the
parametrised database (SQLite / PostgreSQL), the department simulators on ephemeral ports, and one token per role
created through gateway.identity.

Import the ``gateway`` fixture into a conftest with ``from tests.gateway.intake.fixtures import gateway`` (its
``shared_simulators`` comes from tests/gateway/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import queue
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from demokit.simulators import Simulators, run_simulators
from demokit.simulators.runner import PKI_SUBDIR
from demokit.simulators.seed import Citizen
from gateway.app import create_app
from gateway.audit.tables import audit_records
from gateway.cases.tables import application_history, application_materials, applications, tracking_sequences
from gateway.context import context_of
from gateway.identity import create_token
from gateway.settings import Settings
from gateway.storage import Database
from gateway.tracking.tables import evaluations, rectifications
from tests.dbutil import asgi_client

#: 雨湖路街道, its 雨湖社区 (and a grid of it), and another street (昭潭街道).
STREET = "430302001000"
COMMUNITY = "430302001001"
GRID = "430302001001001"
OTHER_STREET = "430302007000"
OTHER_GRID = "430302007001001"

#: 重度残疾人护理补贴 (civil affairs, 15 working days): application form from the applicant; ID card, disability
#: certificate and household register from three departments' systems.
CARE_ITEM = "0205006100"
#: 医保电子凭证申领 (medical security, 1 working day): only the ID card, from public security.
ONE_CERT_ITEM = "0720003100"
#: 出生登记 (public security): every required material is a certificate.
BIRTH_ITEM = "0107001100"

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 40

CASE_TABLES = (
    applications,
    application_materials,
    application_history,
    tracking_sequences,
    evaluations,
    rectifications,
    audit_records,
)


@dataclass
class Gateway:
    app: Litestar
    client: httpx.AsyncClient
    settings: Settings
    sims: Simulators
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        database: Database = context_of(self.app).database
        return database

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def citizen(self, *types: str, skip: int = 0) -> Citizen:
        """An adult citizen holding valid certificates of ``types`` (the ``skip``-th such, in a stable order)."""
        today = today_local()
        found = []
        for c in sorted(self.sims.citizens, key=lambda c: c.id_number):
            if (today - c.birth_date).days < 18 * 366:
                continue
            valid = {
                cert.type_key
                for cert in c.certificates
                if cert.status == "01"
                and cert.valid_from <= today
                and (cert.valid_until is None or cert.valid_until >= today)
            }
            if set(types) <= valid:
                found.append(c)
        if len(found) <= skip:
            raise LookupError(f"fewer than {skip + 1} simulated citizens hold {types}")
        return found[skip]

    def body(
        self,
        citizen: Citizen,
        item: str = CARE_ITEM,
        *,
        address: str | None = None,
        grid: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        applicant: dict[str, Any] = {"id_number": citizen.id_number, "name": citizen.name, "phone": citizen.phone}
        if address is not None:
            applicant["address"] = address
        if grid is not None:
            applicant["grid"] = grid
        return {"item_code": item, "applicant": applicant, "consent": True} | extra

    async def create(self, body: dict[str, Any], who: str = "clerk") -> httpx.Response:
        return await self.client.post("/api/v1/applications", json=body, headers=self.auth(who))

    async def upload(
        self,
        application_id: str,
        key: str,
        content: bytes = PDF,
        filename: str = "scan.pdf",
        who: str = "clerk",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/applications/{application_id}/materials/{key}",
            files={"file": (filename, content, "application/pdf")},
            headers=self.auth(who) | (headers or {}),
        )

    async def accept(self, application_id: str, who: str = "clerk", **headers: str) -> httpx.Response:
        return await self.client.post(f"/api/v1/applications/{application_id}/accept", headers=self.auth(who) | headers)

    async def move(
        self, application_id: str, to: str, who: str = "officer", note: str | None = None, **extra: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"to": to} | extra
        if note is not None:
            body["note"] = note
        headers = self.auth(who)
        if "if_match" in extra:
            headers["If-Match"] = body.pop("if_match")
        return await self.client.post(f"/api/v1/applications/{application_id}/transitions", json=body, headers=headers)

    async def get(self, application_id: str, who: str = "clerk") -> httpx.Response:
        return await self.client.get(f"/api/v1/applications/{application_id}", headers=self.auth(who))

    async def accepted_case(self, who: str = "clerk") -> tuple[str, dict[str, Any]]:
        """A care-subsidy case filed, completed with an upload and accepted: (id, acceptance body)."""
        citizen = self.citizen("resident_id_card", "disability_certificate", "household_register")
        created = await self.create(self.body(citizen), who=who)
        assert created.status_code == 201, created.text
        application_id = created.json()["id"]
        assert (await self.upload(application_id, "application_form", who=who)).status_code == 200
        accepted = await self.accept(application_id, who=who)
        assert accepted.status_code == 200, accepted.text
        return application_id, accepted.json()

    async def audited(self, action: str) -> int:
        """How many audit records of ``action`` the log holds."""
        async with self.db.read() as conn:
            query = select(func.count()).select_from(audit_records).where(audit_records.c.action == action)
            return int((await conn.execute(query)).scalar_one())

    async def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        async with self.db.read() as conn:
            for table in CASE_TABLES:
                out[table.name] = int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
        return out


TOKENS: dict[str, dict[str, Any]] = {
    "clerk": {"role": "clerk", "unit": STREET},
    "community_clerk": {"role": "clerk", "unit": COMMUNITY},
    "other_clerk": {"role": "clerk", "unit": OTHER_STREET},
    "officer": {"role": "officer", "department": "civil_affairs"},
    "ps_officer": {"role": "officer", "department": "public_security"},
    "ms_officer": {"role": "officer", "department": "medical_security"},
    "supervisor": {"role": "supervisor"},
    "admin": {"role": "admin"},
    "system": {"role": "system", "scopes": ["status:read"]},
}


@contextlib.contextmanager
def simulators_in_thread(data_dir: Path, *, seed: int = 11, citizens: int = 150) -> Iterator[Simulators]:
    """The department simulators on their own event loop in a thread.

    The test client runs the gateway (and its lifespan, which reads the simulators' listing) through a portal
    while the test's loop waits, so simulators on the test's loop could not answer.
    """
    ready: queue.Queue[Simulators | BaseException] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with run_simulators(seed=seed, citizens=citizens, data_dir=data_dir) as running:
                ready.put(running)
                await stop.wait()
        except BaseException as exc:
            ready.put(exc)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="simulators", daemon=True)
    thread.start()
    started = ready.get(timeout=60)
    if isinstance(started, BaseException):
        thread.join(5)
        raise started
    try:
        yield started
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


@pytest.fixture(scope="session")
def shared_simulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulators]:
    """One set of department simulators per test process, for every `gateway` (seeding them, making their TLS
    material and starting seven servers each time would cost every case test a tenth of a second of CPU).
    `gateway` clears their faults before each test and copies their TLS material into the test's data dir."""
    with simulators_in_thread(tmp_path_factory.mktemp("simulators")) as sims:
        yield sims


@pytest.fixture
async def gateway(db_settings: Settings, shared_simulators: Simulators) -> AsyncIterator[Gateway]:
    sims = shared_simulators
    sims.clear_faults()
    # The health department's mutual TLS: the gateway finds the client certificate in its own data dir.
    shutil.copytree(sims.pki_dir, db_settings.data_dir / PKI_SUBDIR)
    # A generous lookup budget: on a loaded CI machine a healthy department's answer can take seconds, and these
    # tests are about what the gateway does with the answer (no test here waits for the budget to run out).
    settings = msgspec.structs.replace(db_settings, simulator_base_host=sims.control_url, lookup_budget_seconds=8.0)
    app = create_app(settings)
    try:
        async with asgi_client(app) as client:
            gw = Gateway(app=app, client=client, settings=settings, sims=sims)
            for name, spec in TOKENS.items():
                token, _ = await create_token(context_of(app).database, **spec)
                gw.tokens[name] = token
            yield gw
    finally:
        sims.clear_faults()


def stored_files(directory: Path) -> set[str]:
    """Names of the files under ``directory`` (none when it does not exist)."""
    return {p.name for p in directory.rglob("*") if p.is_file()} if directory.exists() else set()


def today_local() -> dt.date:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


__all__ = [
    "BIRTH_ITEM",
    "CARE_ITEM",
    "COMMUNITY",
    "GRID",
    "JPEG",
    "ONE_CERT_ITEM",
    "OTHER_GRID",
    "OTHER_STREET",
    "PDF",
    "PNG",
    "STREET",
    "Gateway",
    "gateway",
    "shared_simulators",
    "stored_files",
    "today_local",
]
