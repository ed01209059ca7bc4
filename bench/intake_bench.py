"""Intake create + accept in one call, with certificates pulled live from three departments answering in 100 ms.

    .venv/bin/python -m bench.intake_bench [--requests 50] [--latency-ms 100] [--profile]

What it does:
1. starts the department simulators in this process with a ``latency`` fault (100 ms before every answer) on the
   three departments the item draws on, and a population large enough to give every request a new applicant;
2. serves the gateway (``gateway.app:create_app`` under uvicorn, as ``onewindow serve`` does) on a fresh data dir
   whose certificate store is empty, so every request misses the store and pulls live;
3. picks the item: a published street item whose required materials all come from certificates (so
   ``"accept": true`` succeeds with no uploads) drawing on three departments (出生登记: public security, health,
   civil affairs), and applicants who hold its required certificates (a 结婚证 too where possible);
4. sends ``POST /api/v1/applications`` with ``"accept": true`` once per applicant, one at a time (after a few
   warm-up requests on other applicants that open the connections to the departments), and reports p50/p99 of the
   client-side time and the gateway's own ``lookup_seconds``.

With ``--profile`` it runs the same requests in-process under cProfile instead and prints where the CPU time goes
(the 100 ms waits are not CPU time). ``--concurrency N`` has N clerks filing at once, each sending the next
intake the moment the previous answer arrives; ``--think-ms T`` gives each clerk a pause between two intakes
(exponential, mean T ms), as clerks at a window have — the throughput then follows the clerks, not the gateway.
Target: p50 and p99 ≤ 200 ms. Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sqlalchemy import event, text

from bench.asgi import asgi_request
from bench.harness import AsgiServer, CpuMeter, CpuShare, ServerFlags, machine, percentile
from bench.prepare import PHONE, bench_settings, server_env
from catalog.catalog import Catalog
from catalog.loader import cached_catalog
from catalog.models import Item
from demokit.demo.steps import choose_scenario, create_demo_tokens, prepare_database
from demokit.simulators import Citizen, run_simulators
from demokit.simulators.registry import CERTIFICATE_TYPES
from gateway.context import context_of
from gateway.storage.database import Database
from gateway.storage.metadata import new_id

TARGET_MS = 200.0
ITEM_CODE = "0107001100"  # 出生登记: public security + health required, civil affairs optional
WARMUP = 3


class Sample(msgspec.Struct, kw_only=True):
    ms: float
    status: int
    prefilled: int
    live: int
    #: The gateway's own measure of the certificate lookup, when its answer carries one.
    lookup_ms: float | None = None


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, str]
    item: str
    departments: list[str]
    latency_ms: float
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lookup_p50_ms: float | None
    lookup_p99_ms: float | None
    live_per_request: float
    failures: int
    verdict: str
    #: Wall time of the measured requests (after the warm-up) and the requests served per second in it.
    seconds: float | None = None
    throughput: float | None = None
    #: Where the CPU went meanwhile (HTTP runs): the gateway's processes, PostgreSQL's, this process (simulators and
    #: the HTTP client: a ``time.process_time`` difference), the rest of the machine.
    server_cpu_ms_per_request: float | None = None
    bench_cpu_ms_per_request: float | None = None
    database_cpu_ms_per_request: float | None = None
    cpu: CpuShare | None = None
    database: str = "sqlite"
    #: Clerks filing at the same time and each one's mean pause between two intakes (0: none, a closed loop).
    clerks: int = 1
    think_ms: float = 0.0


def item_departments(item: Item) -> list[str]:
    types = [m.certificate_type for m in item.materials if m.source == "certificate" and m.certificate_type]
    return sorted({CERTIFICATE_TYPES[t].department for t in types if t in CERTIFICATE_TYPES})


def applicants(citizens: Sequence[Citizen], item: Item, today: dt.date) -> list[Citizen]:
    """Citizens holding every required certificate of ``item`` (all valid), those with the most of its
    departments first (so the optional 结婚证 makes the third department answer with a certificate)."""
    required = {m.certificate_type for m in item.materials if m.required and m.source == "certificate"}
    wanted = {m.certificate_type for m in item.materials if m.source == "certificate"}
    fit = [
        c
        for c in citizens
        if required <= set(c.certificate_types)
        and all(x.status == "01" and (x.valid_until is None or x.valid_until >= today) for x in c.certificates)
    ]
    fit.sort(key=lambda c: (-len(wanted & set(c.certificate_types)), c.id_number))
    return fit


def body(item: Item, citizen: Citizen) -> dict[str, Any]:
    return {
        "item_code": item.code,
        "applicant": {"id_number": citizen.id_number, "name": citizen.name, "phone": PHONE},
        "consent": True,
        "accept": True,
    }


def sample(status: int, content: bytes, ms: float) -> Sample:
    if status != 201:
        return Sample(ms=ms, status=status, prefilled=0, live=0)
    doc = msgspec.json.decode(content)
    materials = doc["materials"]
    seconds = doc.get("lookup_seconds")
    return Sample(
        ms=ms,
        lookup_ms=None if seconds is None else float(seconds) * 1000,
        status=status,
        prefilled=sum(1 for m in materials if m["state"] == "prefilled"),
        live=sum(1 for m in materials if (m.get("certificate") or {}).get("source") == "live"),
    )


async def setup_tokens(
    data_dir: Path, catalog: Catalog, citizens: Sequence[Citizen], database_url: str = "", schema: str = ""
) -> dict[str, str]:
    """A migrated database with demo tokens and an empty certificate store (nothing synced)."""
    overrides = {"database_url": database_url, "database_schema": schema} if database_url else {}
    settings = bench_settings(data_dir, **overrides)
    if schema:
        db = Database.from_settings(settings)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            await db.dispose()
    db = await prepare_database(settings)
    try:
        return await create_demo_tokens(db, choose_scenario(catalog, citizens))
    finally:
        await db.dispose()


async def over_http(
    data_dir: Path,
    control_url: str,
    token: str,
    item: Item,
    people: Sequence[Citizen],
    workers: int,
    concurrency: int = 1,
    database_url: str = "",
    schema: str = "",
    measured: dict[str, Any] | None = None,
    config_dir: Path | None = None,
    think_ms: float = 0.0,
) -> list[Sample]:
    env = server_env(data_dir)
    env["ONEWINDOW_SIMULATOR_BASE_HOST"] = control_url
    if config_dir is not None:
        env["ONEWINDOW_CONFIG_DIR"] = str(config_dir)
    if database_url:
        env |= {"ONEWINDOW_DATABASE_URL": database_url, "ONEWINDOW_DATABASE_SCHEMA": schema}
    samples: list[Sample] = []
    # the simulators live in this event loop: serve the gateway from a thread-free child process and talk to it
    # asynchronously, so the simulators keep answering while we wait
    server = AsgiServer("gateway.app:create_app", flags=ServerFlags(workers=workers), env=env)
    await asyncio.to_thread(server.__enter__)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0, headers=headers, limits=limits) as client:

            async def one(i: int, citizen: Citizen) -> None:
                start = time.perf_counter()
                response = await client.post("/api/v1/applications", json=body(item, citizen))
                ms = (time.perf_counter() - start) * 1000
                if i >= WARMUP:
                    samples.append(sample(response.status_code, response.content, ms))
                if response.status_code != 201:
                    print(f"  request {i}: {response.status_code} {response.text[:300]}", flush=True)

            for i, citizen in enumerate(people[:WARMUP]):
                await one(i, citizen)
            # ``concurrency`` clerks, each filing one application after another until every applicant is done.
            queue = list(enumerate(people))[WARMUP:]
            queue.reverse()
            meter = CpuMeter(server.pid)
            own_cpu, started = time.process_time(), time.perf_counter()

            async def clerk(n: int) -> None:
                pause = random.Random(n)  # each clerk's own, repeatable pauses
                if think_ms > 0:  # clerks do not all start at the same instant either
                    await asyncio.sleep(pause.uniform(0, think_ms) / 1000)
                while queue:
                    i, citizen = queue.pop()
                    await one(i, citizen)
                    if think_ms > 0:
                        await asyncio.sleep(pause.expovariate(1000 / think_ms))

            await asyncio.gather(*(clerk(n) for n in range(concurrency)))
            if measured is not None:
                measured["seconds"] = time.perf_counter() - started
                measured["bench_cpu"] = time.process_time() - own_cpu
                measured["cpu"] = meter.stop()
    finally:
        await asyncio.to_thread(server.stop)
    return samples


async def in_process(
    data_dir: Path,
    control_url: str,
    token: str,
    item: Item,
    people: Sequence[Citizen],
    top: int,
    profile_out: str = "",
) -> list[Sample]:
    """The same requests straight into the ASGI app in this loop (the simulators share it), under cProfile."""
    from gateway.app import create_app

    app = create_app(bench_settings(data_dir, simulator_base_host=control_url))
    samples: list[Sample] = []
    profiler = cProfile.Profile()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with app.lifespan():
        # Time the certificate lookup on its own: the rest of a request is the gateway's local work.
        service = context_of(app).certificates
        assert service is not None, "the certificates lifespan did not run"
        original = service.lookup
        lookups: list[float] = []

        async def timed_lookup(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            lookups.append(float(result.elapsed_ms))
            return result

        setattr(service, "lookup", timed_lookup)  # noqa: B010 - instrumenting one instance for the benchmark
        # Count the SQL statements (each one several round trips to aiosqlite's worker thread on SQLite).
        statements: list[str] = []
        last: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            statements.append(statement.split(None, 1)[0].upper() if statement.strip() else "?")
            last.append(" ".join(statement.split())[:160])

        event.listen(context_of(app).database.engine.sync_engine, "before_cursor_execute", count)
        per_request: list[int] = []
        kinds: dict[str, int] = {}
        for i, citizen in enumerate(people):
            if i == WARMUP:
                profiler.enable()
            lookups.clear()
            statements.clear()
            last.clear()
            start = time.perf_counter()
            status, content = await asgi_request(
                app, "POST", "/api/v1/applications", headers=headers, body=msgspec.json.encode(body(item, citizen))
            )
            ms = (time.perf_counter() - start) * 1000
            if i >= WARMUP:
                got = sample(status, content, ms)
                if lookups:
                    got.lookup_ms = sum(lookups)
                samples.append(got)
                per_request.append(len(statements))
                for kind in statements:
                    kinds[kind] = kinds.get(kind, 0) + 1
        profiler.disable()
    if per_request:
        mean = sum(per_request) / len(per_request)
        detail = ", ".join(f"{k} {v / len(per_request):.1f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        print(f"SQL statements per request: {mean:.1f} ({detail})")
        print("-- the last request's statements, in order --")
        for line in last:
            print("   ", line)
    if profile_out:
        profiler.dump_stats(profile_out)  # for pstats / snakeviz: callers, callees
    stats = pstats.Stats(profiler, stream=sys.stdout)
    print("\n-- CPU time by function (tottime) --")
    stats.sort_stats("tottime").print_stats(top)
    print("\n-- cumulative (includes the waits for the departments) --")
    stats.sort_stats("cumulative").print_stats(top)
    return samples


def with_concurrency(config_dir: Path, into: Path, departments: Sequence[str], concurrency: int) -> Path:
    """A copy of ``config_dir`` whose ``departments`` allow ``concurrency`` requests in flight per process (the
    connector files' ``concurrency``; the shipped files say 4, an old system 2): what an operator sets when the
    department systems take more."""
    shutil.copytree(config_dir, into, dirs_exist_ok=True)
    for code in departments:
        path = into / "departments" / f"{code}.toml"
        text, n = re.subn(r"(?m)^concurrency = \d+", f"concurrency = {concurrency}", path.read_text(encoding="utf-8"))
        if n != 1:
            raise SystemExit(f"{path}: no single 'concurrency = N' line to change")
        path.write_text(text, encoding="utf-8")
    return into


async def run(args: argparse.Namespace, data_dir: Path) -> Report:
    catalog_dir = bench_settings(data_dir).config_dir
    catalog = cached_catalog(catalog_dir)
    item = catalog.item(args.item)
    if item is None:
        raise SystemExit(f"no item {args.item} in the catalog")
    departments = item_departments(item)
    schema = f"bench_intake_{new_id()[:12]}" if args.database_url else ""
    faults = {code: {"latency": args.latency_ms} for code in departments}
    today = dt.date.today()
    async with run_simulators(citizens=args.population, faults=faults, data_dir=data_dir) as sims:
        people = applicants(sims.citizens, item, today)
        needed = args.requests + WARMUP
        if len(people) < needed:
            raise SystemExit(f"only {len(people)} applicants fit {item.code}; raise --population")
        people = people[:needed]
        tokens = await setup_tokens(data_dir, catalog, sims.demo_citizens(6), args.database_url, schema)
        print(
            f"{item.code} {item.name}: departments {', '.join(departments)} at {args.latency_ms:g} ms each; "
            f"{args.requests} applicants (+{WARMUP} warm-up), {args.concurrency} clerks at a time, "
            f"{args.workers} worker(s)",
            flush=True,
        )
        measured: dict[str, Any] = {}
        if args.profile:
            samples = await in_process(
                data_dir, sims.control_url, tokens["clerk"], item, people, args.top, args.profile_out
            )
        else:
            samples = await over_http(
                data_dir,
                sims.control_url,
                tokens["clerk"],
                item,
                people,
                args.workers,
                args.concurrency,
                database_url=args.database_url,
                schema=schema,
                measured=measured,
                config_dir=(
                    with_concurrency(catalog_dir, data_dir.parent / "config", departments, args.department_concurrency)
                    if args.department_concurrency
                    else None
                ),
                think_ms=args.think_ms,
            )
    ok = [s for s in samples if s.status == 201]
    times = [s.ms for s in ok] or [float("nan")]
    lookups = [s.lookup_ms for s in ok if s.lookup_ms is not None]
    p50, p99 = percentile(times, 50), percentile(times, 99)
    met = len(ok) == len(samples) and p99 <= TARGET_MS
    cpu: CpuShare | None = measured.get("cpu")
    n = max(1, len(samples))
    return Report(
        database="postgresql" if args.database_url else "sqlite",
        clerks=args.concurrency,
        think_ms=args.think_ms,
        seconds=measured.get("seconds"),
        throughput=len(samples) / measured["seconds"] if measured.get("seconds") else None,
        cpu=cpu,
        server_cpu_ms_per_request=cpu.server / n * 1000 if cpu else None,
        database_cpu_ms_per_request=cpu.database / n * 1000 if cpu and args.database_url else None,
        bench_cpu_ms_per_request=measured["bench_cpu"] / n * 1000 if "bench_cpu" in measured else None,
        machine=machine(),
        item=f"{item.code} {item.name}",
        departments=departments,
        latency_ms=args.latency_ms,
        requests=len(samples),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=max(times),
        lookup_p50_ms=percentile(lookups, 50) if lookups else None,
        lookup_p99_ms=percentile(lookups, 99) if lookups else None,
        live_per_request=sum(s.live for s in ok) / len(ok) if ok else 0.0,
        failures=len(samples) - len(ok),
        verdict=f"p50 {p50:.0f} ms, p99 {p99:.0f} ms (target ≤ {TARGET_MS:g} ms): {'MET' if met else 'MISSED'}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--item", default=ITEM_CODE)
    parser.add_argument("--population", type=int, default=3000, help="simulated citizens (applicants come from it)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1, help="clerks filing at the same time (closed loop)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="each clerk's pause between two intakes, exponentially distributed with this mean (default 0: the "
        "next intake is sent the moment the previous answer arrives)",
    )
    parser.add_argument(
        "--department-concurrency",
        type=int,
        default=0,
        help="requests in flight per department and process (default: the connector files' own, 4)",
    )
    parser.add_argument("--profile", action="store_true", help="in-process under cProfile instead of over HTTP")
    parser.add_argument("--profile-out", default="", help="with --profile: also write the cProfile stats to this file")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--json", type=Path, help="write the report to this file")
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL (postgresql://…): the gateway's database, in a fresh schema"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onewindow-intake-bench-") as tmp:
        report = asyncio.run(run(args, Path(tmp) / "var"))
    print()
    for field in ("item", "departments", "latency_ms", "requests", "failures", "clerks", "think_ms"):
        print(f"{field:<14} {getattr(report, field)}")
    print(f"{'client':<14} p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms, max {report.max_ms:.1f} ms")
    if report.lookup_p50_ms is not None and report.lookup_p99_ms is not None:
        print(f"{'lookup':<14} p50 {report.lookup_p50_ms:.1f} ms, p99 {report.lookup_p99_ms:.1f} ms (server side)")
    print(f"{'live pulls':<14} {report.live_per_request:.1f} certificates per request came from a live pull")
    if report.throughput is not None and report.seconds is not None:
        print(f"{'throughput':<14} {report.throughput:.1f} requests/s ({report.seconds:.1f} s for {report.requests})")
    if report.cpu is not None:
        print(
            f"{'CPU/request':<14} gateway {report.server_cpu_ms_per_request:.1f} ms, this process (simulators + "
            f"client) {report.bench_cpu_ms_per_request:.1f} ms"
            + (f", PostgreSQL {report.database_cpu_ms_per_request:.1f} ms" if report.database == "postgresql" else "")
        )
        print(f"{'CPU (s)':<14} {msgspec.json.encode(report.cpu).decode()}")
    print(report.verdict)
    print(msgspec.json.encode(report.machine).decode())
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
