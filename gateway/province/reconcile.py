"""The daily reconciliation with the provincial platform: our reported history rows of one local day counted by
status, the platform's counts for the same day (its count query), and every status where they differ.

Ours are counted from the history (the source of truth), not from what was sent: a step still waiting to be
reported shows up as a difference, with ``pending`` saying how many of that day's steps are still on their way.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import aiohttp
import msgspec
from sqlalchemy import select
from yarl import URL

from catalog.calendar import DISTRICT_TZ
from connectors.auth import build_request_auth, encode_query
from gateway.cases.tables import application_history
from gateway.province.records import record_kind
from gateway.province.tables import province_reports
from gateway.province.target import PlatformError, ProvinceTarget
from gateway.storage.database import Database


class CountDifference(msgspec.Struct, kw_only=True):
    status: str
    ours: int
    theirs: int


class Reconciliation(msgspec.Struct, kw_only=True):
    day: dt.date
    region: str
    #: Steps of the day by status: in our history, and as the platform counts them.
    ours: dict[str, int]
    theirs: dict[str, int]
    differences: list[CountDifference]
    #: Steps of the day not yet taken by the platform (waiting or retrying).
    pending: int
    ok: bool


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The local (Asia/Shanghai) day as a UTC interval [start, end)."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=DISTRICT_TZ)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


async def our_counts(database: Database, day: dt.date) -> tuple[dict[str, int], int]:
    """Reported history rows of ``day`` by status, and how many of them the platform has not taken yet."""
    start, end = day_bounds(day)
    h, r = application_history, province_reports
    query = (
        select(h.c.status, h.c.from_status, r.c.state)
        .select_from(h.outerjoin(r, r.c.history_id == h.c.id))
        .where(h.c.at >= start, h.c.at < end, h.c.status != "draft")
    )
    counts: Counter[str] = Counter()
    pending = 0
    async with database.read() as conn:
        for row in await conn.execute(query):
            if record_kind(row.status, row.from_status) is None:
                continue
            counts[row.status] += 1
            if row.state != "sent":
                pending += 1
    return dict(sorted(counts.items())), pending


async def platform_counts(
    session: aiohttp.ClientSession, target: ProvinceTarget, day: dt.date, *, environ: dict[str, str] | None = None
) -> dict[str, int]:
    """The platform's counts of ``day`` by status (its count query, in its envelope)."""
    params = [("day", day.isoformat()), ("region", target.region)]
    query = encode_query(params)
    url = target.url(target.counts_path)
    headers = {"Accept": "application/json"}
    await build_request_auth(target.auth, environ=environ).apply("GET", URL(url).path, query, b"", headers)
    timeout = aiohttp.ClientTimeout(total=target.timeouts.total, sock_connect=target.timeouts.connect)
    try:
        async with session.get(f"{url}?{query}", headers=headers, timeout=timeout, allow_redirects=False) as response:
            status = response.status
            raw = await response.content.read(256 * 1024)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise PlatformError(f"unreachable: {type(exc).__name__}", unavailable=True) from None
    try:
        envelope: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise PlatformError(f"HTTP {status}: the answer is not JSON", unavailable=status >= 500) from None
    if status != 200 or not isinstance(envelope, dict) or str(envelope.get(target.result_code)) != target.result_ok:
        raise PlatformError(f"HTTP {status}: the count query was refused", unavailable=status >= 500)
    status_field = target.fields["status"]
    counts: dict[str, int] = {}
    data = envelope.get("data")
    entries = data.get("counts") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get(status_field), str) and isinstance(entry.get("count"), int):
            counts[entry[status_field]] = counts.get(entry[status_field], 0) + entry["count"]
    return dict(sorted(counts.items()))


async def reconcile(
    database: Database,
    target: ProvinceTarget,
    day: dt.date,
    *,
    session: aiohttp.ClientSession | None = None,
    environ: dict[str, str] | None = None,
) -> Reconciliation:
    ours, pending = await our_counts(database, day)
    if session is None:
        async with aiohttp.ClientSession() as own:
            theirs = await platform_counts(own, target, day, environ=environ)
    else:
        theirs = await platform_counts(session, target, day, environ=environ)
    differences = [
        CountDifference(status=status, ours=ours.get(status, 0), theirs=theirs.get(status, 0))
        for status in sorted(set(ours) | set(theirs))
        if ours.get(status, 0) != theirs.get(status, 0)
    ]
    return Reconciliation(
        day=day,
        region=target.region,
        ours=ours,
        theirs=theirs,
        differences=differences,
        pending=pending,
        ok=not differences,
    )


__all__ = ["CountDifference", "Reconciliation", "day_bounds", "our_counts", "platform_counts", "reconcile"]
