"""Catalog queries for the API: filtering and ETags.

The catalog is immutable once loaded, so a response is fully determined by the catalog's content hash, the
query and (for lists of offered items) the date; the ETag is a hash of exactly those.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from catalog.catalog import Catalog
from catalog.models import Item, Level
from gateway.catalog.schemas import ItemList
from gateway.problems import BadRequest, FieldError


def list_items(
    catalog: Catalog,
    *,
    today: dt.date,
    level: Level | None = None,
    department: str | None = None,
    q: str | None = None,
    include_all: bool = False,
) -> ItemList:
    """Items offered on ``today`` (or every item with ``include_all``), filtered; search order when ``q``."""
    if department is not None and catalog.department(department) is None:
        known = ", ".join(d.code for d in catalog.departments)
        raise BadRequest(
            f"Unknown department {department!r}.",
            errors=[FieldError("department", f"unknown department code; one of: {known}")],
        )
    candidates: list[Item] = catalog.search(q) if q and q.strip() else list(catalog.items)
    items = [
        i
        for i in candidates
        if (include_all or i.is_offered(today))
        and (level is None or i.level == level)
        and (department is None or i.department == department)
    ]
    return ItemList(items=[catalog.public(i) for i in items], total=len(items))


def list_etag(
    catalog: Catalog,
    *,
    today: dt.date,
    level: str | None,
    department: str | None,
    q: str | None,
    include_all: bool,
) -> str:
    key = "\x1f".join([catalog.etag, today.isoformat(), level or "", department or "", q or "", str(include_all)])
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def item_etag(catalog: Catalog, code: str) -> str:
    return '"' + hashlib.sha256(f"{catalog.etag}\x1f{code}".encode()).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against every listed tag, or ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))
