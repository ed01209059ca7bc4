"""The intake's lookup over real sockets: store hit, live pull, hanging and failing departments, the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.client import ConnectorPool
from connectors.registry import load_departments
from connectors.sync import fetch_holder, sync_department
from demokit.simulators import Citizen, Simulators
from gateway import audit
from gateway.certificates import lookup as lookup_module
from gateway.certificates.lookup import CertificateService, unavailable_reason
from gateway.certificates.runtime import lookup_specs
from gateway.certificates.store import CertificateStore
from gateway.certificates.tables import certificates
from gateway.settings import Settings
from gateway.storage import Database
from tests.gateway.certificates.conftest import RetryWaits

PURPOSE = "application:0000000000000000000000000000test"
ACTOR = "token:clerk-1"


def citizen_with(sims: Simulators, *departments: str) -> Citizen:
    """A citizen holding valid (status 01, unexpired) certificates from each of ``departments``."""
    today = dt.date.today()
    for citizen in sims.citizens:
        usable = {
            c.type_key: c
            for c in citizen.certificates
            if c.status == "01" and (c.valid_until is None or c.valid_until > today)
        }
        held = {sims.departments[d].info.code for d in departments}
        by_department = {d for d in departments for k in usable if k in sims.departments[d].info.types}
        if by_department == held:
            return citizen
    pytest.skip(f"no seeded citizen holds certificates from all of {departments}")


def type_from(sims: Simulators, citizen: Citizen, department: str) -> str:
    today = dt.date.today()
    return next(
        c.type_key
        for c in citizen.certificates
        if c.type_key in sims.departments[department].info.types
        and c.status == "01"
        and (c.valid_until is None or c.valid_until > today)
    )


async def audit_actions(db: Database) -> list[audit.AuditRecord]:
    async with db.read() as conn:
        return await audit.records(conn, limit=1000)


async def test_store_miss_pulls_live_and_stores(
    sims: Simulators, service: CertificateService, store: CertificateStore
) -> None:
    citizen = citizen_with(sims, "public_security", "civil_affairs")
    types = [type_from(sims, citizen, "public_security"), type_from(sims, citizen, "civil_affairs")]
    result = await service.lookup(service.store.holder(citizen.id_number), types, purpose=PURPOSE, actor=ACTOR)
    for key in types:
        outcome = result.outcomes[key]
        assert (outcome.state, outcome.source) == ("found", "live"), outcome
        assert outcome.certificate is not None and outcome.certificate.type_key == key
        assert citizen.id_number not in outcome.certificate.number  # never the raw ID number
        assert outcome.certificate.holder_name[0] == citizen.name[0]
        assert outcome.certificate.holder_name != citizen.name
    async with store.db.read() as conn:
        stored = await store.holder_certificates(conn, store.holder(citizen.id_number), types)
    assert {r.type_key for r in stored} == set(types)
    pulls = [r for r in await audit_actions(store.db) if r.action == "certificate.pulled"]
    assert len(pulls) == 1 and set(pulls[0].detail["departments"]) == {"public_security", "civil_affairs"}
    assert all(r.purpose == PURPOSE and r.actor == ACTOR for r in pulls)
    assert all(citizen.id_number not in str(r.detail) and r.object_id != citizen.id_number for r in pulls)


async def test_store_hit_answers_without_asking_the_department(
    sims: Simulators,
    service: CertificateService,
    store: CertificateStore,
    pool: ConnectorPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sync_department(pool, "public_security", store, full=True)
    citizen = citizen_with(sims, "public_security")
    key = type_from(sims, citizen, "public_security")
    sims.set_faults("public_security", "hang=1")  # asking it now would time out
    asked: list[str] = []

    async def counted(pool: ConnectorPool, department: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(department)
        return await fetch_holder(pool, department, *args, **kwargs)

    monkeypatch.setattr(lookup_module, "fetch_holder", counted)
    result = await service.lookup(service.store.holder(citizen.id_number), [key], purpose=PURPOSE, actor=ACTOR)
    outcome = result.outcomes[key]
    assert (outcome.state, outcome.source) == ("found", "store")
    assert outcome.certificate is not None and outcome.certificate.holder_name.startswith(citizen.name[0])
    assert asked == []  # answered without asking the department
    records = await audit_actions(store.db)
    reads = [r for r in records if r.action == "personal_data.read"]
    assert len(reads) == 1 and reads[0].purpose == PURPOSE and reads[0].actor == ACTOR
    assert not [r for r in records if r.action == "certificate.pulled"]


async def test_hanging_department_is_unavailable_within_the_budget(
    sims: Simulators, service: CertificateService
) -> None:
    citizen = citizen_with(sims, "public_security", "civil_affairs")
    hanging = type_from(sims, citizen, "civil_affairs")
    answering = type_from(sims, citizen, "public_security")
    sims.set_faults("civil_affairs", "hang=1")
    budget = 0.6
    result = await service.lookup(
        service.store.holder(citizen.id_number),
        [hanging, answering],
        purpose=PURPOSE,
        actor=ACTOR,
        budget_seconds=budget,
    )
    assert result.outcomes[answering].state == "found"
    outcome = result.outcomes[hanging]
    assert (outcome.state, outcome.department) == ("unavailable", "civil_affairs")
    # The lookup's own budget ended the wait (the pool's timeouts and deadline are longer: 0.85 s).
    assert outcome.reason == f"timed out after {budget:g} s", outcome.reason


async def test_failing_department_is_unavailable_with_the_http_status(
    sims: Simulators, service: CertificateService, database: Database, retry_waits: RetryWaits
) -> None:
    citizen = citizen_with(sims, "human_resources")
    key = type_from(sims, citizen, "human_resources")
    sims.set_faults("human_resources", "error_rate=1")
    # The lookup pool gives up retrying before the budget ends (test_lookup_policies_end_before_the_budget), so
    # the department's own last answer is reported.
    result = await service.lookup(service.store.holder(citizen.id_number), [key], purpose=PURPOSE, actor=ACTOR)
    outcome = result.outcomes[key]
    assert outcome.state == "unavailable"
    assert outcome.reason.startswith("HTTP 503"), outcome.reason
    assert retry_waits.seconds  # retried before giving up (the waits are recorded, not slept: see RetryWaits)
    pulls = [r for r in await audit_actions(database) if r.action == "certificate.pulled"]
    assert len(pulls) == 1 and pulls[0].detail["departments"]["human_resources"]["error"].startswith("HTTP 503")
    async with database.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(certificates))).scalar_one() == 0


async def test_type_without_connector_and_unknown_type(sims: Simulators, service: CertificateService) -> None:
    citizen = citizen_with(sims, "public_security")
    result = await service.lookup(
        service.store.holder(citizen.id_number), ["business_license", "no_such_type"], purpose=PURPOSE, actor=ACTOR
    )
    assert result.outcomes["business_license"].state == "unavailable"
    assert result.outcomes["business_license"].reason == "no connector for market_regulation"
    assert result.outcomes["no_such_type"].state == "unavailable"


async def test_not_held_is_not_found(sims: Simulators, service: CertificateService) -> None:
    citizen = citizen_with(sims, "public_security")
    held = {c.type_key for c in citizen.certificates}
    missing = next(k for k in sims.departments["civil_affairs"].info.types if k not in held)
    result = await service.lookup(service.store.holder(citizen.id_number), [missing], purpose=PURPOSE, actor=ACTOR)
    assert result.outcomes[missing].state == "not_found"


async def test_revoked_live_answer_is_not_found_and_withdraws_the_stored_copy(
    sims: Simulators, service: CertificateService, store: CertificateStore, pool: ConnectorPool
) -> None:
    await sync_department(pool, "public_security", store, full=True)
    citizen = citizen_with(sims, "public_security")
    key = type_from(sims, citizen, "public_security")
    # A stored copy older than the freshness limit sends the lookup to the department again.
    async with store.db.transaction() as conn:
        await conn.execute(certificates.update().values(fetched_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    sims.set_faults("public_security", "revoked=1")
    result = await service.lookup(service.store.holder(citizen.id_number), [key], purpose=PURPOSE, actor=ACTOR)
    outcome = result.outcomes[key]
    assert outcome.state == "not_found" and "revoked" in outcome.reason
    async with store.db.read() as conn:
        rows = await store.holder_certificates(conn, store.holder(citizen.id_number), [key])
    assert rows and all(r.verification_status == "revoked" for r in rows)


async def test_circuit_open_reads_as_such(sims: Simulators, service: CertificateService) -> None:
    citizen = citizen_with(sims, "public_security")
    key = type_from(sims, citizen, "public_security")
    sims.set_faults("public_security", "error_rate=1")
    reasons = []
    for _ in range(4):  # each lookup's retries count as failures; the breaker opens after five in a row
        result = await service.lookup(
            service.store.holder(citizen.id_number), [key], purpose=PURPOSE, actor=ACTOR, budget_seconds=1.0
        )
        reasons.append(result.outcomes[key].reason)
    assert reasons[0].startswith("HTTP 503")
    assert reasons[-1].startswith("circuit open"), reasons


def test_lookup_policies_end_before_the_budget(settings: Settings) -> None:
    budget = 1.0
    for spec in lookup_specs(load_departments(settings.config_dir), budget):
        assert spec.retry.deadline < budget, spec.code
        assert max(spec.timeouts.connect, spec.timeouts.read, spec.timeouts.total) < budget, spec.code


def test_unavailable_reason_words() -> None:
    from connectors.errors import CircuitOpen, ServerError, Timeout

    assert unavailable_reason(ServerError("HTTP 503: down", status=503)) == "HTTP 503: down"
    assert unavailable_reason(CircuitOpen("next probe in 3.0 s")).startswith("circuit open")
    assert unavailable_reason(Timeout("read timeout")) == "timed out: read timeout"
    assert unavailable_reason(RuntimeError("x")) == "internal error (RuntimeError)"


async def test_stale_copy_is_refreshed_live_or_served_when_the_department_is_down(
    sims: Simulators, service: CertificateService, store: CertificateStore, pool: ConnectorPool
) -> None:
    await sync_department(pool, "public_security", store, full=True)
    citizen = citizen_with(sims, "public_security")
    key = type_from(sims, citizen, "public_security")
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    async with store.db.transaction() as conn:
        await conn.execute(certificates.update().values(fetched_at=old))
    # Stale: asked again, answered live, and the stored copy is fresh again.
    result = await service.lookup(service.store.holder(citizen.id_number), [key], purpose=PURPOSE, actor=ACTOR)
    assert (result.outcomes[key].state, result.outcomes[key].source) == ("found", "live")
    async with store.db.read() as conn:
        rows = await store.holder_certificates(conn, store.holder(citizen.id_number), [key])
    assert rows and max(r.fetched_at for r in rows) > old
    # Stale and the department hangs: the stored copy, saying how old it is and why it was not refreshed.
    async with store.db.transaction() as conn:
        await conn.execute(certificates.update().values(fetched_at=old))
    sims.set_faults("public_security", "hang=1")
    result = await service.lookup(
        service.store.holder(citizen.id_number), [key], purpose=PURPOSE, actor=ACTOR, budget_seconds=0.4
    )
    outcome = result.outcomes[key]
    assert (outcome.state, outcome.source) == ("found", "store")
    assert outcome.reason.startswith("stored copy fetched 2020-01-01") and "timed out" in outcome.reason
