"""What the request wrapper (request id, request metric, access-log line) costs per public tracking lookup, and a
pyinstrument profile of the lookup with everything on — all called straight into the ASGI app in this event loop.

    .venv/bin/python -m bench.observability_cost [--requests 2000] [--repeat 7] [--profile] 2>/dev/null

Server CPU per call (``time.process_time``, best of ``--repeat`` batches of ``--requests``) for: the bare endpoint;
the gateway lookup as `create_app` builds it (wrapper and access log on; the access lines go to standard error —
redirect it to a file or /dev/null, as a deployment sends them to its log collector); with the access log off; and
without the wrapper at all. ``--database postgresql`` runs the gateway on PostgreSQL (a schema of its own) and
``--redis`` adds Redis stores. Nothing here runs in the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Litestar

from bench.asgi import asgi_request
from bench.bare_app import create_bare_app
from bench.prepare import bench_settings, prepare_data_dir
from gateway.app import create_app


async def cpu_per_call_us(fn: Callable[[], Awaitable[object]], n: int, repeat: int) -> float:
    for _ in range(min(200, n)):
        await fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            await fn()
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


async def run(data_dir: Path, requests: int, repeat: int, profile: bool, overrides: dict[str, Any]) -> None:
    prepared = await prepare_data_dir(data_dir, **overrides)
    path = f"/api/v1/track/{prepared.tracking_number}"
    query = f"code={prepared.query_code}"
    settings = bench_settings(data_dir, **overrides)
    full = create_app(settings)
    quiet = create_app(bench_settings(data_dir, access_log=False, **overrides))
    bare = create_bare_app()
    unwrapped_app = create_app(settings)
    unwrapped_app.asgi_handler = unwrapped_app.asgi_handler.app  # type: ignore[attr-defined]

    async def get(app: Litestar) -> None:
        status, _ = await asgi_request(app, "GET", path, query=query)
        assert status == 200, status

    rows: list[tuple[str, float]] = []
    async with full.lifespan(), quiet.lifespan(), unwrapped_app.lifespan():
        for _ in range(2):  # twice, interleaved: the second pass shows how much the machine moved the figures
            for label, target in (
                ("bare endpoint", bare),
                ("gateway, wrapper + access log", full),
                ("gateway, wrapper, no access log", quiet),
                ("gateway, no wrapper", unwrapped_app),
            ):
                rows.append((label, await cpu_per_call_us(lambda t=target: get(t), requests, repeat)))  # type: ignore[misc]
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0001, async_mode="disabled")
            profiler.start()
            for _ in range(requests * 3):
                await get(full)
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stdout)
    print(f"CPU per lookup, best of {repeat} × {requests} (µs):", file=sys.stdout)
    for label, us in rows:
        print(f"  {label:<34} {us:8.1f}", file=sys.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args(argv)
    overrides: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="onewindow-obs-") as tmp:
        if args.database == "postgresql":
            import os
            import uuid

            overrides["database_url"] = os.environ.get(
                "ONEWINDOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
            )
            overrides["database_schema"] = f"bench_obs_{uuid.uuid4().hex[:12]}"
        if args.redis:
            overrides["redis_url"] = "redis://127.0.0.1:6379/14"
        asyncio.run(run(Path(tmp) / "var", args.requests, args.repeat, args.profile, overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
