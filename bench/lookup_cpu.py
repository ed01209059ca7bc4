"""Server CPU per public tracking lookup, in process, for this tree and others in alternation (before/after).

    .venv/bin/python -m bench.lookup_cpu [--tree NAME=DIR ...] [--database sqlite|postgresql] [--redis]
                                         [--rounds 5] [--requests 2000] [--no-reuse NAME ...] [--uvloop]
                                         2>/dev/null

One child process per tree (this one is ``after``; ``--tree before=/tmp/lookup_before`` from ``git archive``), each
with its own data prepared by its own code (`bench.prepare`) and its gateway app as `create_app` builds it —
request wrapper, metrics and access log on (the access lines go to the child's standard error: redirect it, as a
deployment sends them to its log collector). The parent then asks the children in turn, ``--rounds`` times, for
one batch each: ``--requests`` lookups straight into the ASGI app (no server, no HTTP) and as many calls of the
bare endpoint (bench/bare_app.py) in the same process, each timed with ``time.process_time``. Taking turns puts the
trees' batches at the same moments of a shared machine; the table shows every tree's best and median batch and
the 1-minute load average.

``--no-reuse NAME`` also runs tree NAME with the lookup's read not answered again from the previous read of the
same number (``PreparedRead.reuse``, on SQLite, in trees that have it): one tracking number looked up again and
again — what this bench does — is not what citizens do. Its rows are labelled ``NAME,no-reuse``. ``--uvloop`` runs
the apps on uvloop, as the served gateway does (asyncio's own loop costs more per database round trip).
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
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("ONEWINDOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ONEWINDOW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


# -- the child: one tree's app, measured on request ------------------------------------------------------------


async def _child(args: argparse.Namespace) -> None:
    import logging

    from bench.asgi import asgi_request
    from bench.bare_app import create_bare_app
    from bench.prepare import bench_settings, prepare_data_dir
    from gateway.app import create_app

    logging.disable(logging.INFO)
    overrides: dict[str, Any] = {}
    schema = ""
    if args.database == "postgresql":
        schema = f"bench_cpu_{uuid.uuid4().hex[:12]}"
        overrides = {"database_url": POSTGRES_URL, "database_schema": schema}
    if args.redis:
        overrides["redis_url"] = REDIS_URL
    with tempfile.TemporaryDirectory(prefix="onewindow-cpu-") as tmp:
        data_dir = Path(tmp) / "var"
        prepared = await prepare_data_dir(data_dir, **overrides)
        if args.no_reuse:
            from gateway.tracking import services

            timeline = getattr(services, "TIMELINE", None)
            if timeline is not None and getattr(timeline, "reuse", False):
                timeline.reuse = False
        app = create_app(bench_settings(data_dir, **overrides))
        bare = create_bare_app()
        path = f"/api/v1/track/{prepared.tracking_number}"
        query = f"code={prepared.query_code}"

        async def batch(target: Any, n: int) -> float:
            start = time.process_time()
            for _ in range(n):
                status, _ = await asgi_request(target, "GET", path, query=query)
                assert status == 200, status
            return (time.process_time() - start) / n * 1e6

        try:
            async with app.lifespan():
                await batch(app, 300)
                await batch(bare, 300)
                print(json.dumps({"ready": True}), flush=True)
                loop = asyncio.get_running_loop()
                while True:
                    line = await loop.run_in_executor(None, sys.stdin.readline)
                    if not line.strip():
                        break
                    n = int(line)
                    gateway_us = await batch(app, n)
                    bare_us = await batch(bare, n)
                    print(json.dumps({"gateway": gateway_us, "bare": bare_us}), flush=True)
        finally:
            if schema:
                from sqlalchemy import text
                from sqlalchemy.ext.asyncio import create_async_engine

                engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
                async with engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await engine.dispose()


# -- the parent: children in turn --------------------------------------------------------------------------------


def _tree(value: str) -> tuple[str, Path]:
    name, _, directory = value.partition("=")
    if not name or not directory:
        raise argparse.ArgumentTypeError("--tree takes NAME=DIR")
    return name, Path(directory).resolve()


def _start(label: str, tree: Path, args: argparse.Namespace, no_reuse: bool) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    env["PYTHONPATH"] = str(tree)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--database", args.database]
    command += ["--redis"] if args.redis else []
    command += ["--child-no-reuse"] if no_reuse else []
    command += ["--uvloop"] if args.uvloop else []
    child = subprocess.Popen(
        command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert child.stdout is not None
    if not json.loads(child.stdout.readline() or "{}").get("ready"):
        raise RuntimeError(f"{label}: the child did not start (run it by hand to see why)")
    return child


def _ask(child: subprocess.Popen[str], requests: int) -> dict[str, float]:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(f"{requests}\n")
    child.stdin.flush()
    answer: dict[str, float] = json.loads(child.stdout.readline())
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=_tree, action="append", default=[], help="NAME=DIR: another checkout")
    parser.add_argument("--no-reuse", action="append", default=[], metavar="NAME", help="also run NAME without reuse")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--uvloop", action="store_true", help="run the apps on uvloop, as the served gateway does")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-no-reuse", dest="child_no_reuse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.no_reuse = args.child_no_reuse
        if args.uvloop:
            import uvloop

            uvloop.run(_child(args))
        else:
            asyncio.run(_child(args))
        return 0
    trees = [("after", REPO_ROOT), *args.tree]
    runs = [(name, tree, False) for name, tree in trees]
    runs += [(name, tree, True) for name, tree in trees if name in args.no_reuse]
    children: dict[str, subprocess.Popen[str]] = {}
    results: dict[str, list[dict[str, float]]] = {}
    loads: list[float] = []
    try:
        for name, tree, no_reuse in runs:
            label = f"{name},no-reuse" if no_reuse else name
            children[label] = _start(label, tree, args, no_reuse)
            results[label] = []
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for label, child in children.items():
                results[label].append(_ask(child, args.requests))
    finally:
        for child in children.values():
            if child.stdin is not None:
                child.stdin.write("\n")
                child.stdin.flush()
        for child in children.values():
            child.wait(timeout=60)
    store = args.database + (" + Redis" if args.redis else "")
    load = f"{min(loads):.2f}–{max(loads):.2f}"
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"{store}, {loop}: CPU per call (µs), {args.rounds} rounds of {args.requests}, 1-minute load {load}")
    print("| tree | gateway best | gateway median | bare best | bare median | ratio (medians) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, rows in results.items():
        gateway = [r["gateway"] for r in rows]
        bare = [r["bare"] for r in rows]
        g, b = statistics.median(gateway), statistics.median(bare)
        print(f"| {label} | {min(gateway):.1f} | {g:.1f} | {min(bare):.1f} | {b:.1f} | {g / b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
