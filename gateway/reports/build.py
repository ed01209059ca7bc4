"""A report's body from the period's tallies: totals for the unit and one row per street, community, department
and item under it (streets and communities listed even when nothing happened there)."""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from typing import Any, Final

from catalog.catalog import Catalog
from gateway.reports.figures import COUNTS, Places, Tallies, summary

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


def build_bodies(
    tallies: Tallies,
    catalog: Catalog,
    places: Places,
    *,
    period: str,
    start: dt.date,
    end: dt.date,
    units: list[str],
) -> dict[str, dict[str, Any]]:
    """Every requested unit's report from one pass over the groups: each group is added to the district's, its
    street's and its community's sums (totals and the four breakdowns), then each unit takes its own."""
    district = district_code(catalog)
    width = len(COUNTS)
    # scope unit -> breakdown -> code -> counts (a list in COUNTS order; the totals under breakdown "").
    sums: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(dict))

    def add(scope: str, breakdown: str, code: str, values: list[int]) -> None:
        found = sums[scope][breakdown]
        row = found.get(code)
        found[code] = list(values) if row is None else list(map(operator.add, row, values))

    # First the groups collapse from places (grids) to (street, community, department, item): fewer to spread.
    collapsed: dict[tuple[str | None, str | None, str, str], list[int]] = {}
    for (place, department, item), tally in tallies.groups.items():
        street, community = places.of(place)
        key = (street, community, department, item)
        values = [tally[name] for name in COUNTS]
        row = collapsed.get(key)
        collapsed[key] = values if row is None else list(map(operator.add, row, values))
    for (street, community, department, item), values in collapsed.items():
        for scope in (district, street, community):
            if scope is None:
                continue
            add(scope, "", scope, values)
            add(scope, "department", department, values)
            add(scope, "item", item, values)
            if street is not None:
                add(scope, "street", street, values)
            if community is not None:
                add(scope, "community", community, values)

    def figures(values: list[int] | None) -> dict[str, Any]:
        return summary(dict(zip(COUNTS, values or [0] * width, strict=True)))

    bodies = {}
    for unit in units:
        mine = sums.get(unit, {})
        rows: list[dict[str, Any]] = []
        for level in BREAKDOWNS:
            found = mine.get(level, {})
            codes = units_under(catalog, unit, level) if level in ("street", "community") else sorted(found)
            for code in codes:
                if level == "department":
                    name = catalog.department_name(code)
                elif level == "item":
                    known = catalog.item(code)
                    name = known.name if known else code
                else:
                    name = places.name(code)
                rows.append({"breakdown": level, "code": code, "name": name} | figures(found.get(code)))
        bodies[unit] = {
            "period": period,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "unit": unit,
            "unit_name": places.name(unit),
            "totals": figures(mine.get("", {}).get(unit)),
            "rows": rows,
        }
    return bodies


__all__ = ["BREAKDOWNS", "build_bodies", "district_code", "units_under"]
