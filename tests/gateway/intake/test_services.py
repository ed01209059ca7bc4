"""Intake services below HTTP: tracking-number sequences across processes, deadlines in unknown years, routing."""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
from sqlalchemy import select

from catalog.calendar import DISTRICT_TZ, WorkingCalendar
from catalog.loader import cached_catalog
from gateway.cases.access import load_application
from gateway.cases.numbers import next_sequence
from gateway.cases.tables import tracking_sequences
from gateway.certificates.lookup import CertificateService
from gateway.certificates.runtime import type_departments
from gateway.certificates.store import CertificateStore
from gateway.identity.principal import Principal, Role
from gateway.intake.schemas import ApplicantIn, CreateApplication
from gateway.intake.services import IntakeService, normalise_phone, phone_problem, route
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.storage import Database
from tests.gateway.intake.fixtures import COMMUNITY, ONE_CERT_ITEM, STREET


async def test_sequences_are_unique_across_processes(db_settings: Settings, database: Database) -> None:
    """Two `Database` objects are two processes' worth of connections: numbers never repeat, none is skipped."""
    other = Database.from_settings(db_settings)
    day = dt.date(2026, 3, 2)

    async def allocate(db: Database) -> int:
        async with db.transaction() as conn:
            return await next_sequence(conn, day)

    try:
        results = await asyncio.gather(*(allocate(database if i % 2 else other) for i in range(40)))
    finally:
        await other.dispose()
    assert sorted(results) == list(range(1, 41))
    async with database.read() as conn:
        rows = list(await conn.execute(select(tracking_sequences)))
    assert [(r.day, r.n) for r in rows] == [("20260302", 40)]
    # Another day starts again at 1.
    async with database.transaction() as conn:
        assert await next_sequence(conn, day + dt.timedelta(days=1)) == 1


async def test_acceptances_waiting_for_the_counter_get_numbers_in_the_order_they_asked(database: Database) -> None:
    """First come, first served: while one acceptance holds the day's counter, the ones that wait behind it are
    numbered in the order they arrived (PostgreSQL: the day's advisory lock queues them; SQLite: the writer queue)."""
    day = dt.date(2026, 3, 4)
    release, holding = asyncio.Event(), asyncio.Event()
    got: list[tuple[str, int]] = []

    async def first() -> None:
        async with database.transaction() as conn:
            got.append(("first", await next_sequence(conn, day)))
            holding.set()
            await release.wait()

    async def later(name: str) -> None:
        async with database.transaction() as conn:
            got.append((name, await next_sequence(conn, day)))

    holder = asyncio.create_task(first())
    await holding.wait()
    waiting = []
    for name in ("a", "b", "c"):
        waiting.append(asyncio.create_task(later(name)))
        await asyncio.sleep(0.3)  # each one is waiting before the next arrives
    release.set()
    await asyncio.gather(holder, *waiting)
    assert got == [("first", 1), ("a", 2), ("b", 3), ("c", 4)]


async def test_rolled_back_acceptance_gives_its_number_back(database: Database) -> None:
    day = dt.date(2026, 3, 3)
    try:
        async with database.transaction() as conn:
            assert await next_sequence(conn, day) == 1
            raise RuntimeError("the acceptance failed after allocating")
    except RuntimeError:
        pass
    async with database.transaction() as conn:
        assert await next_sequence(conn, day) == 1


async def test_deadline_in_a_year_without_a_known_calendar_is_flagged(
    db_settings: Settings, database: Database
) -> None:
    catalog = cached_catalog(db_settings.config_dir)
    # Package years end in 2026 here: a late-December 2026 acceptance with 15 working days runs into 2027.
    calendar = WorkingCalendar(package_years=range(2004, 2027))
    now = dt.datetime(2026, 12, 21, 10, 0, tzinfo=DISTRICT_TZ)
    service = IntakeService(
        database=database,
        catalog=catalog,
        calendar=calendar,
        cipher=FieldCipher(KeyRing.generate()),
        settings=db_settings,
        certificates=None,
        now=lambda: now,
    )
    clerk = Principal(token_id="t1", role=Role.CLERK, unit=STREET)
    body = CreateApplication(
        item_code="0205009100",  # 流浪乞讨人员救助: applicant materials only, 1 working day
        applicant=ApplicantIn(id_number="11010519491231002X", name="张三", phone="13812345678"),
        consent=True,
    )
    created = await service.create(clerk, body)
    assert created.status == "draft" and created.created_at.utcoffset() == dt.timedelta(hours=8)
    item = catalog.item("0720003100")
    assert item is not None
    long_item = msgspec.structs.replace(item, materials=(), promised_days=15)
    async with database.transaction() as conn:
        row = await load_application(conn, created.id, clerk, for_update=True)
        acceptance = await service._accept_in(conn, row, long_item, clerk, now)
    assert acceptance.deadline.year == 2027
    assert acceptance.deadline_estimated is True
    assert acceptance.tracking_number.startswith("43030220261221")


def test_phone_numbers() -> None:
    assert normalise_phone("+86 138-1234-5678") == "13812345678"
    assert phone_problem("13812345678") is None
    assert phone_problem("073158888888") is None
    assert phone_problem("1381234567") is not None
    assert phone_problem("12345678901") is not None
    assert phone_problem("abc") is not None
    assert phone_problem("") is not None


def test_routing(settings: Settings) -> None:
    catalog = cached_catalog(settings.config_dir)
    street = catalog.unit(STREET)
    community = catalog.unit(COMMUNITY)
    assert street is not None and community is not None
    street_item = catalog.item("0205006100")
    community_item = catalog.item("0220001200")
    on_behalf = catalog.item("0205006201")
    assert street_item and community_item and on_behalf
    assert route(catalog, street, street_item) == (STREET, None)
    assert route(catalog, community, street_item) == (STREET, None)
    assert route(catalog, community, community_item) == (COMMUNITY, None)
    assert route(catalog, community, on_behalf) == (STREET, None)
    handling, problem = route(catalog, street, community_item)
    assert handling is None and problem


class CountingCipher(FieldCipher):
    """Counts the blind indexes it computes, by kind."""

    def __init__(self, keyring: KeyRing) -> None:
        super().__init__(keyring)
        self.indexes: list[str] = []

    def blind_index(self, value: str, *, kind: str = "citizen_id") -> str:
        self.indexes.append(kind)
        return super().blind_index(value, kind=kind)


async def test_a_filing_computes_the_applicants_blind_index_once(db_settings: Settings, database: Database) -> None:
    """The application row, the certificate store read and the lookup's audit records share one HMAC."""
    catalog = cached_catalog(db_settings.config_dir)
    cipher = CountingCipher(KeyRing.generate())
    store = CertificateStore(database, cipher)
    service = IntakeService(
        database=database,
        catalog=catalog,
        calendar=WorkingCalendar(),
        cipher=cipher,
        settings=db_settings,
        certificates=CertificateService(
            database=database, store=store, pool=None, type_departments=type_departments(catalog)
        ),
    )
    clerk = Principal(token_id="t1", role=Role.CLERK, unit=STREET)
    item = catalog.item(ONE_CERT_ITEM)
    assert item is not None and item.certificate_types
    created = await service.create(
        clerk,
        CreateApplication(
            item_code=ONE_CERT_ITEM,
            applicant=ApplicantIn(id_number="11010519491231002X", name="张三", phone="13812345678"),
            consent=True,
        ),
    )
    assert cipher.indexes == ["citizen_id"]
    # The lookup ran (no connectors here: each certificate material says why it is unavailable).
    assert {m.state for m in created.materials if m.source == "certificate"} == {"unavailable"}
    async with database.read() as conn:
        row = await load_application(conn, created.id, clerk)
    assert row.applicant_id_index == FieldCipher(cipher.keyring).blind_index("11010519491231002X", kind="citizen_id")
