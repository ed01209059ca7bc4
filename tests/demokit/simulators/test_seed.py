"""Synthetic citizens: deterministic, valid codes, signed certificates, sensible demo picks."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest

from catalog.codes import is_valid_certificate_identifier, is_valid_citizen_id
from connectors.trust import TrustStore
from demokit.simulators.registry import CERTIFICATE_TYPES, DEPARTMENTS
from demokit.simulators.seed import UNITS, Population, demo_citizens, generate_population
from tests.demokit.simulators.conftest import AS_OF


@pytest.fixture(scope="module")
def population_1000() -> Population:
    return generate_population(7, 1000, as_of=AS_OF)


def test_same_seed_same_citizens_and_identifiers() -> None:
    a = generate_population(99, 300, as_of=AS_OF)
    b = generate_population(99, 300, as_of=AS_OF)
    assert [(c.id_number, c.name, c.phone, c.address) for c in a.citizens] == [
        (c.id_number, c.name, c.phone, c.address) for c in b.citizens
    ]
    assert [s.certificate.identifier for s in a.certificates] == [s.certificate.identifier for s in b.certificates]
    assert [s.updated_at for s in a.certificates] == [s.updated_at for s in b.certificates]
    other = generate_population(100, 300, as_of=AS_OF)
    assert {c.id_number for c in other.citizens} != {c.id_number for c in a.citizens}


def test_count_is_exact_and_prefix_stable() -> None:
    small = generate_population(5, 37, as_of=AS_OF)
    large = generate_population(5, 80, as_of=AS_OF)
    assert len(small.citizens) == 37
    assert [c.id_number for c in small.citizens] == [c.id_number for c in large.citizens[:37]]
    assert generate_population(5, 0, as_of=AS_OF).citizens == []


def test_citizens_are_plausible_residents(population_1000: Population) -> None:
    ids = [c.id_number for c in population_1000.citizens]
    assert len(set(ids)) == len(ids)
    for citizen in population_1000.citizens:
        assert is_valid_citizen_id(citizen.id_number, today=AS_OF), citizen.id_number
        assert citizen.id_number[6:14] == citizen.birth_date.strftime("%Y%m%d")
        assert dt.date(1930, 1, 1) <= citizen.birth_date <= dt.date(2024, 12, 31)
        assert (int(citizen.id_number[16]) % 2 == 1) == (citizen.gender == "male")
        assert 2 <= len(citizen.name) <= 4
        assert len(citizen.phone) == 11 and citizen.phone.startswith("1")
        assert citizen.street in UNITS and citizen.community in UNITS[citizen.street]
        assert citizen.address.startswith("湖南省湘潭市雨湖区" + citizen.street + citizen.community)
    local = sum(c.id_number.startswith("430302") for c in population_1000.citizens)
    assert local > 0.6 * len(ids)


def test_certificates_follow_the_rules(population_1000: Population) -> None:
    counts = Counter(s.certificate.type_key for s in population_1000.certificates)
    assert set(counts) == set(CERTIFICATE_TYPES), counts  # every type occurs in 1000 citizens
    for citizen in population_1000.citizens:
        age = (AS_OF - citizen.birth_date).days / 365.25
        types = citizen.certificate_types
        if citizen.household_number:
            assert "household_register" in types
            assert ("resident_id_card" in types) == (age >= 16)
            assert "residence_permit" not in types
        elif age >= 16:
            assert "residence_permit" in types
        if "birth_medical_certificate" in types:
            assert citizen.birth_date >= dt.date(1996, 1, 1)
        if "divorce_certificate" in types:
            assert "marriage_certificate" in types
        for certificate in citizen.certificates:
            assert certificate.holder_code == citizen.id_number and certificate.holder_name == citizen.name
            assert certificate.issue_date >= citizen.birth_date
            assert certificate.issue_date < AS_OF
            if certificate.valid_until is not None:
                assert certificate.valid_until > certificate.valid_from
            if certificate.type_key == "disability_certificate":
                assert certificate.attributes["category"] in {"视力", "听力", "言语", "肢体", "智力", "精神", "多重"}
                assert certificate.attributes["grade"] in {"一级", "二级", "三级", "四级"}
                assert set(certificate.attributes) == {"category", "grade"}  # all the XML system can carry
                assert certificate.number.startswith(citizen.id_number)


def test_id_cards_validity_follows_age_at_issue(population_1000: Population) -> None:
    cards = [s.certificate for s in population_1000.certificates if s.certificate.type_key == "resident_id_card"]
    holders = {c.id_number: c for c in population_1000.citizens}
    for card in cards:
        age = card.issue_date.year - holders[card.holder_code].birth_date.year
        assert card.number == card.holder_code
        if card.valid_until is None:
            assert age >= 46
        else:
            years = round((card.valid_until - card.issue_date).days / 365.25)
            assert years == (10 if age < 26 else 20)


def test_every_identifier_valid_unique_and_issuer_matches(population_1000: Population) -> None:
    identifiers = [s.certificate.identifier for s in population_1000.certificates]
    assert len(set(identifiers)) == len(identifiers)
    for seeded in population_1000.certificates:
        certificate = seeded.certificate
        info = CERTIFICATE_TYPES[certificate.type_key]
        assert is_valid_certificate_identifier(certificate.identifier), certificate.identifier
        assert certificate.type_code == info.type_code
        assert seeded.department == info.department
        assert certificate.issuer_code == DEPARTMENTS[info.department].uscc
        assert certificate.issuer_name == DEPARTMENTS[info.department].name
        assert certificate.division_code == "430302"
        assert seeded.updated_at.utcoffset() == dt.timedelta(hours=8)
        assert seeded.updated_at.microsecond == 0


def test_signatures_verify_with_the_shipped_trust_store(
    population_1000: Population,
    trust_store: TrustStore,
) -> None:
    outcomes: Counter[str] = Counter()
    for seeded in population_1000.certificates:
        result = trust_store.verify(seeded.certificate, today=AS_OF, department=seeded.department)
        outcomes[result.status] += 1
        assert result.status in {"valid", "expired", "revoked"}, result
        if result.status == "valid":
            assert seeded.certificate.status == "01"
    assert outcomes["valid"] > 0.9 * len(population_1000.certificates)
    assert outcomes["expired"] > 0 and outcomes["revoked"] > 0  # some lapsed and cancelled ones are realistic


def test_demo_citizens_cover_several_departments(population_1000: Population, trust_store: TrustStore) -> None:
    picked = demo_citizens(population_1000.citizens, 5, today=AS_OF)
    assert len(picked) == 5
    assert len({c.id_number for c in picked}) == 5
    first, second = picked[0], picked[1]
    assert {"disability_certificate", "subsistence_allowance_certificate"} <= set(first.certificate_types)
    assert {"marriage_certificate", "social_security_card", "household_register"} <= set(second.certificate_types)
    assert all(len(c.departments) >= 2 for c in picked)
    assert len({d for c in picked for d in c.departments}) >= 5
    for citizen in picked:
        for certificate in citizen.certificates:
            department = CERTIFICATE_TYPES[certificate.type_key].department
            assert trust_store.verify(certificate, today=AS_OF, department=department).ok
    assert demo_citizens(population_1000.citizens, 5, today=AS_OF) == picked


def test_demo_citizens_from_the_default_size_population() -> None:
    population = generate_population(20200501, 500, as_of=AS_OF)
    picked = demo_citizens(population.citizens, 5, today=AS_OF)
    assert len(picked) == 5
    assert {"disability_certificate", "subsistence_allowance_certificate"} <= set(picked[0].certificate_types)


@pytest.mark.slow
def test_five_thousand_citizens_are_fast_enough() -> None:
    started = time.process_time()
    population = generate_population(20200501, 5000, as_of=AS_OF)
    elapsed = time.process_time() - started
    assert len(population.citizens) == 5000
    assert 14_000 <= len(population.certificates) <= 20_000
    # ~1.5 s on an idle 2-core machine (signing ~18k certificates is most of it); the bound only catches a
    # regression by a large factor. CPU time, not wall-clock time: other processes on a busy machine do not count.
    assert elapsed < 8, f"{elapsed:.2f} s of CPU"
