"""Public tracking lookup vs the bare endpoint, alternating runs, on SQLite or PostgreSQL, with or without Redis.

    .venv/bin/python -m bench.tracking_fastpath [--database sqlite|postgresql] [--redis] [--workers 1,2]
                                                [--rounds 3] [--duration 12] [--warmup 3] [--json FILE]
                                                [--tree NAME=DIR ...] [--cases N]

The same servers and wrk runs as `bench.tracking_bench` (``bench.harness``: uvicorn + httptools + uvloop, the same
worker count for both apps, ``wrk -t2 -c64 --latency`` after a warm-up), but the two apps are measured in
alternation, ``--rounds`` times per worker count, each run with the load average at its start — on a shared
two-core machine a single pair can land on a busy or a quiet moment. The verdict takes the median round.

Every measured run also records where the machine's CPU went (``bench.harness.CpuMeter``): the server's processes
(the uvicorn supervisor and workers), PostgreSQL's processes, wrk, everything else and idle. The server's CPU per
request served (µs) is the cost of a request independent of how busy the machine was; "others" says how busy it
was.

``--tree NAME=DIR`` (repeatable) also serves the gateway from another checkout of the project (``git archive`` of
an older commit unpacked in DIR, say), in the same rounds: two versions compared on the same machine at the same
moments. The rows of this tree are labelled ``tracking``, the others ``tracking@NAME``. Each other tree serves data
of its own, prepared by its own code (an older version may not know a newer schema).

``--cases N`` files N applications and has wrk look them up in turn (a Lua script), for both apps (the bare
endpoint answers any number alike): the lookups in flight at one moment are of different cases, where with one
case (the default) every lookup is of the same one. Another tree's data is then prepared by this tree's code, so
that is only for trees with the same schema.

``--database postgresql`` serves the gateway on PostgreSQL (``ONEWINDOW_TEST_DATABASE_URL`` or the local test
database) in a schema of its own, dropped afterwards; ``--redis`` adds ``ONEWINDOW_REDIS_URL`` (the failure
limiter's store: a correct lookup never asks it, see gateway/stores/ratelimit.py). Nothing here runs in the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import text

from bench.harness import (
    REPO_ROOT,
    AsgiServer,
    CpuShare,
    ServerFlags,
    WrkResult,
    machine,
    measure_with_cpu,
    rotating_paths,
    wrk_path,
)
from bench.prepare import Prepared, prepare_data_dir, server_env
from bench.tracking_bench import TARGET_P99_MS, _check_bare, _check_tracking
from gateway.storage import Database

#: Issue 12's targets: at least this share of the bare endpoint's requests/s, at most this multiple of its server
#: CPU per request (p99 as `bench.tracking_bench`).
TARGET_RATIO = 0.8
TARGET_CPU_RATIO = 1.5

POSTGRES_URL = os.environ.get("ONEWINDOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ONEWINDOW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


class Run(msgspec.Struct, kw_only=True):
    app: str
    workers: int
    round: int
    load_average: float
    result: WrkResult
    cpu: CpuShare
    #: The server's processes' CPU per request served, and PostgreSQL's (µs; the latter includes other clients').
    server_us_per_request: float
    database_us_per_request: float


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, str]
    database: str
    redis: bool
    cases: int
    runs: list[Run]
    verdicts: list[str]


async def prepare(data_dir: Path, overrides: dict[str, Any], cases: int = 1) -> Prepared:
    """`bench.prepare.prepare_data_dir` on the chosen database."""
    return await prepare_data_dir(data_dir, cases=cases, **overrides)


#: Run in another checkout: its own `bench.prepare` fills its data dir (its own migrations, its own case).
_PREPARE_IN_TREE = (
    "import asyncio, json, sys\n"
    "from pathlib import Path\n"
    "from bench.prepare import prepare_data_dir\n"
    "p = asyncio.run(prepare_data_dir(Path(sys.argv[1]), **json.loads(sys.argv[2])))\n"
    "print(json.dumps([p.tracking_number, p.query_code]))\n"
)


def prepare_tree(tree: Path, data_dir: Path, overrides: dict[str, Any]) -> tuple[str, str]:
    """Prepare ``data_dir`` with the code of ``tree`` (an older version may not know the newer schema): the
    tracking number and query code of the case it filed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE_IN_TREE, str(data_dir), json.dumps(overrides)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    number, code = json.loads(done.stdout.strip().splitlines()[-1])
    return str(number), str(code)


async def drop_schema(schema: str) -> None:
    db = Database.from_url(POSTGRES_URL)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await db.dispose()


def _line(run: Run) -> str:
    r = run.result
    return (
        f"{run.app:<18} {run.workers:>2} {run.round:>5} {run.load_average:>5.2f} {r.requests_per_s:>9.0f} "
        f"{r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f} {r.non_2xx:>6} {r.socket_errors:>6} "
        f"{run.server_us_per_request:>8.1f} {run.database_us_per_request:>8.1f} {run.cpu.others:>7.2f} "
        f"{run.cpu.idle:>6.2f}"
    )


HEADER = (
    f"{'app':<18} {'w':>2} {'round':>5} {'load':>5} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    f" {'non2xx':>6} {'errors':>6} {'srv us/r':>8} {'db us/r':>8} {'others':>7} {'idle':>6}"
)


def _tree(value: str) -> tuple[str, Path]:
    name, _, directory = value.partition("=")
    path = Path(directory).expanduser().resolve()
    if not name or not (path / "gateway" / "app.py").is_file():
        raise argparse.ArgumentTypeError(f"{value!r}: give NAME=DIR, DIR a checkout of the project")
    return name, path


def _verdict(runs: list[Run], app: str, n: int, rounds: int) -> str:
    """The median round of one app against the bare endpoint of the same round."""
    pairs = []
    for round_ in range(1, rounds + 1):
        bare = next(r for r in runs if r.app == "bare" and r.workers == n and r.round == round_)
        track = next(r for r in runs if r.app == app and r.workers == n and r.round == round_)
        pairs.append((track.result.requests_per_s / bare.result.requests_per_s, track, bare))
    pairs.sort(key=lambda p: p[0])
    ratio, track, bare = pairs[len(pairs) // 2]
    p99s = [p[1].result.p99_ms for p in pairs]
    cpu = statistics.median(p[1].server_us_per_request for p in pairs)
    bare_cpu = statistics.median(p[2].server_us_per_request for p in pairs)
    ok = ratio >= TARGET_RATIO and track.result.p99_ms <= TARGET_P99_MS and cpu <= TARGET_CPU_RATIO * bare_cpu
    return (
        f"{app}, {n} worker(s), median of {len(pairs)} rounds: {track.result.requests_per_s:.0f} req/s = "
        f"{ratio:.0%} of bare {bare.result.requests_per_s:.0f} (ratios {', '.join(f'{p[0]:.0%}' for p in pairs)}); "
        f"p99 {track.result.p99_ms:.1f} ms (all rounds {', '.join(f'{p:.1f}' for p in p99s)}; "
        f"median {statistics.median(p99s):.1f}); server CPU {cpu:.0f} µs/request (bare {bare_cpu:.0f}, "
        f"{cpu / bare_cpu:.2f}×) — target ≥ {TARGET_RATIO:.0%}, ≤ {TARGET_P99_MS:g} ms, ≤ {TARGET_CPU_RATIO:g}× CPU: "
        f"{'MET' if ok else 'MISSED'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", action="store_true", help=f"serve the gateway with ONEWINDOW_REDIS_URL={REDIS_URL}")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/tracking pairs per worker count")
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cases", type=int, default=1, help="applications looked up in turn (default 1)")
    parser.add_argument(
        "--tree", type=_tree, action="append", default=[], help="NAME=DIR: also serve the gateway from DIR"
    )
    args = parser.parse_args(argv)
    wrk_path()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    overrides: dict[str, Any] = {}
    schema = ""
    schemas: list[str] = []
    if args.database == "postgresql":
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        overrides = {"database_url": POSTGRES_URL, "database_schema": schema}
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="onewindow-fastpath-") as tmp:
            data_dir = (args.data_dir or Path(tmp) / "var").resolve()
            print(f"preparing {data_dir} ({args.database}{', redis' if args.redis else ''}) …", flush=True)
            prepared = asyncio.run(prepare(data_dir, overrides, args.cases))
            number, code = prepared.tracking_number, prepared.query_code
            path = f"/api/v1/track/{number}?code={code}"
            scripts: dict[str, Path | None] = {"bare": None, "tracking": None}
            if args.cases > 1:
                scripts["bare"] = scripts["tracking"] = rotating_paths(
                    [f"/api/v1/track/{n}?code={c}" for n, c in prepared.cases], data_dir
                )
            env = server_env(data_dir)
            if schema:
                env |= {"ONEWINDOW_DATABASE_URL": POSTGRES_URL, "ONEWINDOW_DATABASE_SCHEMA": schema}
            if args.redis:
                env["ONEWINDOW_REDIS_URL"] = REDIS_URL
            apps = [
                ("bare", "bench.bare_app:create_bare_app", _check_bare, REPO_ROOT, env, path, number, code),
                ("tracking", "gateway.app:create_app", _check_tracking, REPO_ROOT, env, path, number, code),
            ]
            for name, tree in args.tree:
                # Each tree on data of its own, prepared by its own code (a schema of its own on PostgreSQL).
                tree_dir = Path(tmp) / f"var-{name}"
                tree_overrides = dict(overrides)
                tree_env = server_env(tree_dir)
                if schema:
                    tree_schema = f"{schema}_{len(schemas)}"
                    schemas.append(tree_schema)
                    tree_overrides["database_schema"] = tree_schema
                    tree_env |= {"ONEWINDOW_DATABASE_URL": POSTGRES_URL, "ONEWINDOW_DATABASE_SCHEMA": tree_schema}
                if args.redis:
                    tree_env["ONEWINDOW_REDIS_URL"] = REDIS_URL
                if args.cases > 1:
                    print(f"preparing {tree_dir} with this tree's code ({args.cases} cases) …", flush=True)
                    t_prepared = asyncio.run(prepare(tree_dir, tree_overrides, args.cases))
                    t_number, t_code = t_prepared.tracking_number, t_prepared.query_code
                    scripts[f"tracking@{name}"] = rotating_paths(
                        [f"/api/v1/track/{n}?code={c}" for n, c in t_prepared.cases], tree_dir
                    )
                else:
                    print(f"preparing {tree_dir} with the code of {tree} …", flush=True)
                    t_number, t_code = prepare_tree(tree, tree_dir, tree_overrides)
                t_path = f"/api/v1/track/{t_number}?code={t_code}"
                apps.append(
                    (
                        f"tracking@{name}",
                        "gateway.app:create_app",
                        _check_tracking,
                        tree,
                        tree_env,
                        t_path,
                        t_number,
                        t_code,
                    )
                )
            print(HEADER, flush=True)
            for n in workers:
                flags = ServerFlags(workers=n)
                for round_ in range(1, args.rounds + 1):
                    for app, factory, check, source, app_env, app_path, app_number, app_code in apps:
                        with AsgiServer(factory, flags=flags, env=app_env, source=source) as server:
                            check(server.base_url, app_number, app_code)
                            load = os.getloadavg()[0]
                            result, cpu = measure_with_cpu(
                                server.base_url + app_path,
                                server,
                                connections=args.connections,
                                duration_s=args.duration,
                                warmup_s=args.warmup,
                                script=scripts.get(app),
                            )
                            check(server.base_url, app_number, app_code)
                        served = max(result.requests, 1)
                        run = Run(
                            app=app,
                            workers=n,
                            round=round_,
                            load_average=load,
                            result=result,
                            cpu=cpu,
                            server_us_per_request=round(cpu.server / served * 1e6, 1),
                            database_us_per_request=round(cpu.database / served * 1e6, 1),
                        )
                        runs.append(run)
                        print(_line(run), flush=True)
    finally:
        for name in ([schema] if schema else []) + schemas:
            asyncio.run(drop_schema(name))

    verdicts: list[str] = []
    for n in workers:
        for app in [a[0] for a in apps if a[0] != "bare"]:
            verdicts.append(_verdict(runs, app, n, args.rounds))
    report = Report(
        machine=machine(), database=args.database, redis=args.redis, cases=args.cases, runs=runs, verdicts=verdicts
    )
    print()
    for verdict in verdicts:
        print(verdict)
    print(msgspec.json.encode(report.machine).decode())
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
