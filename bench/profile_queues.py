"""Where the officer queue's and the grid task list's time goes: N requests of each straight into the ASGI app
(no server, no HTTP client), CPU time per request (``time.process_time``) and wall time, then a profile.

    .venv/bin/python -m bench.reports_bench --cases 100000 --data-dir /tmp/q/sqlite100k --no-http   # seed once
    .venv/bin/python -m bench.profile_queues --data-dir /tmp/q/sqlite100k [--requests 300] [--profile pyinstrument]

The data dir is one `reports_bench` seeded (the same busiest department and grid it measures). CPU per request is
the figure to compare before and after on a shared machine: it does not count the time other processes took the
cores. ``--profile cprofile`` prints the top functions; ``--profile pyinstrument`` the call tree of the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from litestar import Litestar

from bench.asgi import asgi_request
from bench.prepare import bench_settings
from bench.reports_bench import busiest
from catalog.calendar import CalendarEstimateWarning
from gateway.app import create_app
from gateway.context import context_of
from gateway.identity import create_token


async def measure(app: Litestar, path: str, query: str, token: str, n: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(min(30, n)):
        status, body = await asgi_request(app, "GET", path, query=query, headers=headers)
        assert status == 200, (status, body[:300])
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        await asgi_request(app, "GET", path, query=query, headers=headers)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    ms = 1000.0
    return {
        "cpu_mean_ms": statistics.fmean(cpu) * ms,
        "wall_mean_ms": statistics.fmean(wall) * ms,
        "wall_p50_ms": statistics.median(wall) * ms,
        "wall_p99_ms": sorted(wall)[int(0.99 * (n - 1))] * ms,
    }


async def run(data_dir: Path, requests: int, profile: str, only: str, top: int) -> None:
    app = create_app(bench_settings(data_dir, report_jobs_seconds=0))
    async with app.lifespan():
        db = context_of(app).database
        department, grid = await busiest(db)
        officer = (await create_token(db, role="officer", department=department))[0]
        worker = (await create_token(db, role="grid_worker", unit=grid))[0]
        targets: dict[str, tuple[str, str, str]] = {
            f"officer queue ({department})": ("/api/v1/applications", "", officer),
            f"grid task list ({grid})": ("/api/v1/grid/tasks", "status=open", worker),
        }
        if only:
            targets = {k: v for k, v in targets.items() if k.startswith(only)}
        for label, (path, query, token) in targets.items():
            r = await measure(app, path, query, token, requests)
            print(
                f"{label}: CPU {r['cpu_mean_ms']:.2f} ms/request, wall mean {r['wall_mean_ms']:.2f} ms, "
                f"p50 {r['wall_p50_ms']:.2f} ms, p99 {r['wall_p99_ms']:.2f} ms ({requests} requests, in-process)",
                flush=True,
            )
        if not profile:
            return
        headers: dict[str, dict[str, str]] = {k: {"Authorization": f"Bearer {v[2]}"} for k, v in targets.items()}
        for label, (path, query, _token) in targets.items():
            print(f"\n=== {label} ===")
            profiler: Any
            if profile == "pyinstrument":
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
                for _ in range(requests):
                    await asgi_request(app, "GET", path, query=query, headers=headers[label])
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
            else:
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(requests):
                    await asgi_request(app, "GET", path, query=query, headers=headers[label])
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="a data dir reports_bench seeded")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", choices=("", "cprofile", "pyinstrument"), default="")
    parser.add_argument("--only", default="", help="officer or grid")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    warnings.simplefilter("ignore", CalendarEstimateWarning)
    with open("/proc/loadavg") as fh:
        print("load average at start:", fh.read().strip(), flush=True)
    asyncio.run(run(args.data_dir.resolve(), args.requests, args.profile, args.only, args.top))
    with open("/proc/loadavg") as fh:
        print("load average at end:", fh.read().strip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
