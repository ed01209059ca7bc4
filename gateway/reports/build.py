"""A report's body from the period's tallies: totals for the unit and one row per street, community, department
and item under it (streets and communities listed even when nothing happened there)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Final

from catalog.catalog import Catalog
from gateway.reports.figures import COUNTS, Places, Tallies, in_unit, summary

#: The breakdowns, in the order of the rows and of the XLSX sheets (with the sheets' Chinese names).
BREAKDOWNS: Final = {"street": "街道", "community": "社区", "department": "部门", "item": "事项"}


def district_code(catalog: Catalog) -> str:
    return catalog.units_at("district")[0].code


def units_under(catalog: Catalog, unit: str, level: str) -> list[str]:
    """Codes of ``level`` (street / community) under ``unit`` (the district, a street, or a community itself)."""
    found: list[str] = []
    stack = [unit]
    while stack:
        code = stack.pop()
        u = catalog.unit(code)
        if u is None:
            continue
        if u.level == level:
            found.append(code)
            continue
        stack.extend(c.code for c in catalog.children(code) if c.level in ("street", "community"))
    return sorted(found)


def build_body(
    tallies: Tallies, catalog: Catalog, places: Places, *, period: str, start: dt.date, end: dt.date, unit: str
) -> dict[str, Any]:
    district = district_code(catalog)

    def zero() -> dict[str, int]:
        return dict.fromkeys(COUNTS, 0)

    totals = zero()
    parts: dict[str, dict[str, dict[str, int]]] = {name: defaultdict(zero) for name in BREAKDOWNS}
    for level in ("street", "community"):
        for code in units_under(catalog, unit, level):
            parts[level][code] = zero()
    for (place, department, item), tally in tallies.groups.items():
        if not in_unit(places, place, unit, district):
            continue
        street, community = places.of(place)
        targets = [totals, parts["department"][department], parts["item"][item]]
        if street is not None and street in parts["street"]:
            targets.append(parts["street"][street])
        if community is not None and community in parts["community"]:
            targets.append(parts["community"][community])
        for target in targets:
            for name, value in tally.items():
                target[name] += value
    rows: list[dict[str, Any]] = []
    for level, by_code in parts.items():
        for code in sorted(by_code):
            if level == "department":
                name = catalog.department_name(code)
            elif level == "item":
                found = catalog.item(code)
                name = found.name if found else code
            else:
                name = places.name(code)
            rows.append({"breakdown": level, "code": code, "name": name} | summary(by_code[code]))
    return {
        "period": period,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "unit": unit,
        "unit_name": places.name(unit),
        "totals": summary(totals),
        "rows": rows,
    }


__all__ = ["BREAKDOWNS", "build_body", "district_code", "units_under"]
