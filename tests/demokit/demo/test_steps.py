"""The demo's start-up steps that need no servers: ports, the scenario it shows, demo.json."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from catalog.loader import cached_catalog
from demokit.demo.steps import (
    DEMO_CITIZEN_COUNT,
    DEMO_SEED,
    PREFERRED_STREETS,
    DemoCitizen,
    DemoFile,
    choose_scenario,
    read_demo_file,
    simulator_base_port,
    write_demo_file,
)
from demokit.simulators.seed import demo_citizens, generate_population

REPO = Path(__file__).resolve().parents[3]
TODAY = dt.date.today()


@pytest.mark.parametrize(
    ("gateway_port", "expected"),
    [(8000, 8100), (9000, 9100), (0, 0), (65428, 65528), (65429, 0)],
)
def test_the_simulators_sit_100_ports_above_the_gateway(gateway_port: int, expected: int) -> None:
    assert simulator_base_port(gateway_port) == expected


def test_demo_file_is_private_and_reads_back(tmp_path: Path) -> None:
    assert read_demo_file(tmp_path) is None
    demo = DemoFile(
        base_url="http://127.0.0.1:8000",
        tokens={"clerk": "secret"},
        officer_department="civil_affairs",
        citizens=[DemoCitizen(id_number="430302199001011234", name="张三", certificate_types=["resident_id_card"])],
    )
    path = write_demo_file(tmp_path, demo)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_demo_file(tmp_path) == demo
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]  # no temporary file left behind


def test_the_scenario_is_deterministic_and_its_first_citizen_can_file_the_item() -> None:
    population = generate_population(DEMO_SEED, 200, as_of=TODAY)
    citizens = demo_citizens(population.citizens, DEMO_CITIZEN_COUNT, today=TODAY)
    catalog = cached_catalog(REPO / "config")
    scenario = choose_scenario(catalog, citizens, today=TODAY)
    assert scenario == choose_scenario(catalog, citizens, today=TODAY)
    assert (scenario.clerk_unit, scenario.other_unit) == PREFERRED_STREETS
    item = catalog.item(scenario.item.code)
    assert item is not None and item.level == "street" and item.is_offered(TODAY)
    assert scenario.officer_department == item.department
    required = {m.certificate_type for m in item.materials if m.required and m.source == "certificate"}
    assert required <= set(scenario.citizens[0].certificate_types)
    assert sorted(c.id_number for c in scenario.citizens) == sorted(c.id_number for c in citizens)
    # The first citizen's grid lies under the clerk's street, so the clerk can file with it.
    grid = catalog.unit(scenario.grid)
    assert grid is not None and grid.level == "grid" and grid.code.startswith(scenario.clerk_unit[:9])


def test_the_scenario_needs_five_citizens() -> None:
    population = generate_population(DEMO_SEED, 200, as_of=TODAY)
    citizens = demo_citizens(population.citizens, 4, today=TODAY)
    with pytest.raises(RuntimeError, match="at least five"):
        choose_scenario(cached_catalog(REPO / "config"), citizens, today=TODAY)
