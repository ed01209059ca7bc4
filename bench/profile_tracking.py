"""Where a tracking lookup's time goes: its parts timed one by one, then cProfile over N lookups — all called
straight into the ASGI app in this event loop (no server, no HTTP client), so only the gateway's own work shows.

    .venv/bin/python -m bench.profile_tracking [--requests 2000] [--top 30] [--sort tottime]

The breakdown times, per lookup: the bare endpoint; the whole gateway lookup; the tracking service alone; the
lookup's read (one statement) through the gateway's read path (SQLAlchemy over aiosqlite: each step — begin,
execute, fetch, close, commit — is a round trip to aiosqlite's worker thread) and the same read with the standard
library's sqlite3 on the event loop's thread; the failure limiter's check. The difference between the two read
lines is what a synchronous read path for the public lookup on SQLite would save.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from litestar import Litestar
from sqlalchemy import text

from bench.asgi import asgi_request
from bench.bare_app import create_bare_app
from bench.prepare import bench_settings, prepare_data_dir
from gateway.app import create_app
from gateway.context import context_of
from gateway.tracking.deps import provide_tracking


async def asgi_get(app: Litestar, path: str, query: str) -> int:
    status, _body = await asgi_request(app, "GET", path, query=query)
    return status


async def per_call_ms(fn: Callable[[], Awaitable[object]], n: int) -> float:
    for _ in range(min(100, n)):
        await fn()
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n * 1000


async def run(data_dir: Path, requests: int, top: int, sort: str) -> None:
    prepared = await prepare_data_dir(data_dir)
    app = create_app(bench_settings(data_dir))
    bare = create_bare_app()
    number = prepared.tracking_number
    path = f"/api/v1/track/{number}"
    query = f"code={prepared.query_code}"
    lines: list[tuple[str, float]] = []
    async with app.lifespan():  # the database, stores … in this loop
        assert await asgi_get(app, path, query) == 200
        lines.append(("bare endpoint (ASGI call)", await per_call_ms(lambda: asgi_get(bare, path, query), requests)))
        lines.append(("gateway lookup (ASGI call)", await per_call_ms(lambda: asgi_get(app, path, query), requests)))
        service = provide_tracking(context_of(app))
        lines.append(
            (
                "  TrackingService.track",
                await per_call_ms(lambda: service.track(number, prepared.query_code, client="127.0.0.1"), requests),
            )
        )
        db = context_of(app).database
        # The lookup's read as one statement (the case joined to its history): through the gateway's read path
        # (SQLAlchemy + aiosqlite, a worker-thread round trip per step) and through sqlite3 on the loop's thread.
        lookup_sql = (
            "SELECT a.tracking_number, a.query_code_hash, a.item_code, a.item_name, a.status, a.deadline,"
            " a.applicant_name_masked, h.status, h.at,"
            " EXISTS (SELECT 1 FROM evaluations e WHERE e.application_id = a.id)"
            " FROM applications a JOIN application_history h ON h.application_id = a.id"
            " WHERE a.tracking_number = {} ORDER BY h.position"
        )
        statement = text(lookup_sql.format(":n"))

        async def read_sqlalchemy() -> None:
            async with db.read() as conn:
                rows = list(await conn.execute(statement, {"n": number}))
                assert rows

        async def empty_read() -> None:
            async with db.read():
                pass

        lines.append(("    the read (1 join), SQLAlchemy + aiosqlite", await per_call_ms(read_sqlalchemy, requests)))
        lines.append(("      of which an empty read transaction", await per_call_ms(empty_read, requests)))
        if db.dialect == "sqlite":
            sync = sqlite3.connect(str(data_dir / "onewindow.sqlite3"), isolation_level=None)
            sync.execute("PRAGMA query_only=1")
            raw = lookup_sql.format("?")

            async def read_sqlite3() -> None:
                sync.execute("BEGIN")
                assert sync.execute(raw, (number,)).fetchall()
                sync.execute("COMMIT")

            lines.append(("    the same read, sqlite3 on the loop's thread", await per_call_ms(read_sqlite3, requests)))
            sync.close()
        limiter = context_of(app).tracking_limiter
        lines.append(("    failure limiter check", await per_call_ms(lambda: limiter.check("127.0.0.1"), requests)))
        assert await asgi_get(app, path, query) == 200, "the lookup must still answer 200 before profiling"
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            await asgi_get(app, path, query)
        profiler.disable()
    print(f"per lookup, mean of {requests} (ms):")
    for label, ms in lines:
        print(f"  {label:<46} {ms:8.3f}")
    print()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats(sort).print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative …)")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="onewindow-profile-") as tmp:
        data_dir = (args.data_dir or Path(tmp) / "var").resolve()
        asyncio.run(run(data_dir, args.requests, args.top, args.sort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
