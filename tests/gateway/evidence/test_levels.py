"""The acceptance rule on trust levels, on the catalog's own data (no database)."""

from __future__ import annotations

from pathlib import Path

from catalog.loader import load_catalog
from catalog.models import Item
from gateway.cases.views import MaterialView
from gateway.evidence.levels import level_problems, needed_levels, satisfies

CONFIG = Path(__file__).resolve().parents[3] / "config"


def _subsistence() -> Item:
    item = load_catalog(CONFIG).item("0205001100")
    assert item is not None
    return item


def test_order_and_commitments() -> None:
    item = _subsistence()
    register = item.material("household_register")
    income = item.material("income_statement")
    form = item.material("application_form")
    assert register is not None and income is not None and form is not None
    assert register.min_level == "B" and income.commitment and not form.commitment
    assert [satisfies(register, level) for level in ("A", "B", "C", "D", None)] == [True, True, False, False, False]
    assert [satisfies(form, level) for level in ("A", "B", "C", "D")] == [True, True, True, False]
    assert satisfies(income, "D") and satisfies(income, "C")


def test_level_problems_name_the_material_and_level() -> None:
    item = _subsistence()
    views = [
        MaterialView(
            key="household_register",
            name="居民户口簿",
            required=True,
            source="certificate",
            state="provided",
            level="C",
        ),
        MaterialView(
            key="application_form", name="申请书", required=True, source="applicant", state="provided", level="D"
        ),
        MaterialView(
            key="income_statement", name="声明书", required=True, source="applicant", state="provided", level="D"
        ),
        MaterialView(key="resident_id_card", name="身份证", required=True, source="certificate", state="missing"),
    ]
    problems = level_problems(item, views)
    assert [p.field for p in problems] == ["materials.household_register", "materials.application_form"]
    assert "needs trust level B" in problems[0].message and "it is C" in problems[0].message
    assert needed_levels(item, ["household_register"]) == {"household_register": "B"}
