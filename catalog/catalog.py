"""The loaded catalog: the items and registries of `catalog.models`, indexed once for lookups and search.

`catalog.loader.load_catalog` builds it; the value types stay in `catalog.models`, and `catalog.search` (the
index) needs only those, so the three modules import one way: models <- search <- catalog.
"""

from __future__ import annotations

import datetime as dt

from catalog.models import LEVELS, CertificateType, Department, Item, PublicItem, Unit, UnitLevel
from catalog.search import SearchIndex

__all__ = ["Catalog"]


class Catalog:
    """The loaded catalog and registries, indexed once. Built by `catalog.loader.load_catalog`.

    A plain class rather than a Struct: it is a read-only view with lookup tables and a search index, never
    serialised as a whole.
    """

    __slots__ = (
        "_certificate_types",
        "_children",
        "_departments",
        "_items",
        "_search",
        "_units",
        "certificate_types",
        "departments",
        "etag",
        "items",
        "units",
    )

    def __init__(
        self,
        *,
        items: tuple[Item, ...],
        departments: tuple[Department, ...],
        certificate_types: tuple[CertificateType, ...],
        units: tuple[Unit, ...],
        etag: str,
    ) -> None:
        self.items = items
        self.departments = departments
        self.certificate_types = certificate_types
        self.units = units
        #: Stable hash of the loaded content; changes whenever any item or registry entry changes.
        self.etag = etag
        self._items = {i.code: i for i in items}
        self._departments = {d.code: d for d in departments}
        self._certificate_types = {c.key: c for c in certificate_types}
        self._units = {u.code: u for u in units}
        children: dict[str, list[Unit]] = {}
        for u in units:
            if u.parent is not None:
                children.setdefault(u.parent, []).append(u)
        self._children = {k: tuple(v) for k, v in children.items()}
        self._search = SearchIndex(items)

    def __repr__(self) -> str:
        return f"<Catalog {len(self.items)} items, etag {self.etag}>"

    def item(self, code: str) -> Item | None:
        return self._items.get(code)

    def offered(self, today: dt.date) -> list[Item]:
        """Items a window may offer on ``today``: published and valid."""
        return [i for i in self.items if i.is_offered(today)]

    def search(self, query: str, *, limit: int | None = None) -> list[Item]:
        """Items matching ``query`` by Chinese substring or pinyin (full or initials), best first."""
        return self._search.search(query, limit=limit)

    def department(self, code: str) -> Department | None:
        return self._departments.get(code)

    def department_name(self, code: str) -> str:
        d = self._departments.get(code)
        return d.name if d else ""

    def certificate_type(self, key: str) -> CertificateType | None:
        return self._certificate_types.get(key)

    def unit(self, code: str) -> Unit | None:
        """A unit by code; a 6-digit division code (``430302``) is read as its 12-digit form."""
        if len(code) == 6 and code.isdigit():
            code += "000000"
        return self._units.get(code)

    def children(self, code: str) -> tuple[Unit, ...]:
        return self._children.get(code, ())

    def units_at(self, level: UnitLevel) -> list[Unit]:
        return [u for u in self.units if u.level == level]

    def public(self, item: Item) -> PublicItem:
        """The item as the API shows it, with its department's name."""
        return item.to_public(self.department_name(item.department))

    def counts(self) -> dict[str, int]:
        """Number of items per level."""
        out: dict[str, int] = dict.fromkeys(LEVELS, 0)
        for i in self.items:
            out[i.level] = out.get(i.level, 0) + 1
        return out
