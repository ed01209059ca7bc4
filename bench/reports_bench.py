"""Reports and grid lists at scale: the monthly report over N cases, and the officer queue and grid task list p99.

    .venv/bin/python -m bench.reports_bench --cases 100000                       # SQLite (embedded default)
    .venv/bin/python -m bench.reports_bench --cases 1000000 --database-url postgresql://… --no-http

1. Seeds N synthetic cases straight into the tables (applications, history, materials, evaluations and their
   rectifications, grid tasks), spread evenly over the 365 days before the last complete month ends, shaped like the
   product writes them (the stored clock from `gateway.cases.clock`; 80 % of cases with a grid among the 473).
2. Times `ReportService.compute` for the last complete month: the district alone, and every unit (district, 13
   streets, 60 communities) as the schedule generates them — 3 runs each, min and median. Baseline in the same run:
   a full count of `applications` and one GROUP BY over it.
3. Unless ``--no-http``: serves `gateway.app:create_app` with uvicorn (``--workers``, default 1) and runs wrk
   (1 connection, then 2 threads with 16 connections; 10 s each after a 2 s warm-up, ``--latency``) on the officer queue
   ``GET /api/v1/applications`` (an officer of the busiest department), the grid task list
   ``GET /api/v1/grid/tasks?status=open`` (the worker of the busiest grid), and ``GET /health/live`` as baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, insert, select, text

from bench.harness import AsgiServer, CpuMeter, ServerFlags, machine, parse_wrk, wrk_path
from bench.prepare import bench_settings, server_env
from catalog.calendar import DEFAULT_CONFIG_DIR, DISTRICT_TZ, CalendarEstimateWarning, cached_calendar, district_today
from catalog.loader import cached_catalog
from gateway.cases import clock
from gateway.cases.tables import application_history, application_materials, applications
from gateway.grid.tables import grid_sync, grid_tasks
from gateway.identity import create_token
from gateway.reports.periods import last_complete, period_end
from gateway.reports.services import ReportService
from gateway.storage.database import Database
from gateway.storage.metadata import new_id
from gateway.tracking.tables import evaluations, rectifications

CHUNK = 5000


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(rng.randint(8, 17), rng.randint(0, 59)), DISTRICT_TZ).astimezone(dt.UTC)


def synthetic(n: int, end: dt.date, seed: int = 7) -> Any:
    """Rows of ``n`` cases, yielded per chunk as {table: rows}."""
    rng = random.Random(seed)
    catalog = cached_catalog(DEFAULT_CONFIG_DIR)
    calendar = cached_calendar()
    items = [i for i in catalog.offered(end) if i.status == "published"] or list(catalog.offered(end))
    grids = [u.code for u in catalog.units_at("grid")]
    communities = [u.code for u in catalog.units_at("community")]
    chunk: dict[str, list[dict[str, Any]]] = {}

    def add(table: str, row: dict[str, Any]) -> None:
        chunk.setdefault(table, []).append(row)

    for k in range(n):
        item = rng.choice(items)
        grid = rng.choice(grids) if rng.random() < 0.8 else None
        filing = grid[:12] if grid else rng.choice(communities)
        created = end - dt.timedelta(days=rng.randrange(365))
        case_id = new_id()
        row: dict[str, Any] = {
            "id": case_id,
            "item_code": item.code,
            "item_name": item.name,
            "item_version": 1,
            "department": item.department,
            "filing_unit": filing,
            "handling_unit": filing,
            "grid": grid,
            "status": "draft",
            "version": 1,
            "applicant_id_number": "-",
            "applicant_id_index": f"{k:064d}",
            "applicant_id_number_masked": "430302********001X",
            "applicant_name": "-",
            "applicant_name_masked": "张*",
            "applicant_phone": "-",
            "applicant_phone_masked": "138****0000",
            "applicant_address": None,
            "consent": True,
            "purpose": "bench",
            "created_by": "bench",
            "created_at": _at(created, rng),
            "updated_at": _at(created, rng),
            "accepted_at": None,
            "accepted_on": None,
            "tracking_number": None,
            "query_code_hash": None,
            "promised_days": None,
            "deadline": None,
            "deadline_estimated": False,
            "paused_on": None,
            "days_left_at_pause": None,
            "stopped_on": None,
            "result": None,
        }
        position = 0

        def history(status: str, day: dt.date, case_id: str = case_id) -> None:
            nonlocal position
            position += 1
            add("application_history", {
                "id": new_id(), "application_id": case_id, "position": position, "status": status,
                "from_status": None, "at": _at(day, rng), "actor": "bench", "actor_role": "officer",
                "actor_scope": None, "note": None,
            })  # fmt: skip

        history("draft", created)
        roll = rng.random()
        if roll < 0.05:
            history("not_accepted", created)
            row["status"] = "not_accepted"
        elif roll < 0.95:
            state = clock.start(calendar, created, item.promised_days)
            row |= {"accepted_on": created, "accepted_at": _at(created, rng), "tracking_number": f"T{k:020d}"}
            history("accepted", created)
            status, day = "accepted", created
            if rng.random() < 0.1:
                day = created + dt.timedelta(days=rng.randrange(3))
                history("correction_required", day)
                state = clock.pause(calendar, state, day)
                day += dt.timedelta(days=rng.randint(1, 5))
                history("in_review", day)
                state = clock.resume(calendar, state, day)
            finish = day + dt.timedelta(days=rng.randint(0, item.promised_days + 3))
            if finish < end - dt.timedelta(days=3) or rng.random() < 0.5:
                status = "approved" if rng.random() < 0.9 else "denied"
                history(status, finish)
                state = clock.stop(calendar, state, finish)
                if rng.random() < 0.4:
                    level = rng.choices([5, 4, 3, 2, 1], [60, 25, 8, 4, 3])[0]
                    evaluation_id = new_id()
                    when = _at(finish + dt.timedelta(days=rng.randrange(5)), rng)
                    add("evaluations", {
                        "id": evaluation_id, "application_id": case_id, "level": level, "comment": "",
                        "overall": None, "efficiency": None, "service": None, "attitude": None, "created_at": when,
                    })  # fmt: skip
                    if level <= 2:
                        closed = when + dt.timedelta(days=rng.randrange(25)) if rng.random() < 0.8 else None
                        add("rectifications", {
                            "id": new_id(), "application_id": case_id, "evaluation_id": evaluation_id,
                            "status": "closed" if closed else "open", "level": level, "item_code": item.code,
                            "department": item.department, "handling_unit": filing, "opened_at": when,
                            "due_on": calendar.deadline(when.astimezone(DISTRICT_TZ).date(), 15).date,
                            "due_estimated": False, "closed_at": closed, "closed_by": None, "outcome": None,
                        })  # fmt: skip
                if grid:
                    due = calendar.deadline(finish, 3).date
                    done = due + dt.timedelta(days=rng.randint(-3, 1)) if rng.random() < 0.9 else None
                    add("grid_tasks", {
                        "id": new_id(), "application_id": case_id, "grid": grid, "stage": "after",
                        "kind": "follow_up", "trigger": f"h{position}", "opened_on": finish, "due_on": due,
                        "status": "done" if done else "open", "completed_at": None, "completed_on": done,
                        "completed_by": None, "outcome": None, "note": None, "evaluation_id": None,
                        "created_at": _at(finish, rng),
                    })  # fmt: skip
            elif rng.random() < 0.03:
                status = "withdrawn"
                history(status, finish)
                state = clock.stop(calendar, state, finish)
            row |= clock.clock_columns(state) | {"status": status}
            if grid:
                due = calendar.deadline(created, 1).date
                done = due if rng.random() < 0.9 else None
                add("grid_tasks", {
                    "id": new_id(), "application_id": case_id, "grid": grid, "stage": "during", "kind": "accepted",
                    "trigger": "h2", "opened_on": created, "due_on": due, "status": "done" if done else "open",
                    "completed_at": None, "completed_on": done, "completed_by": None, "outcome": None, "note": None,
                    "evaluation_id": None, "created_at": _at(created, rng),
                })  # fmt: skip
            for position_m, state_name in enumerate(rng.choices(["prefilled", "provided"], [60, 40], k=2)):
                add("application_materials", {
                    "id": new_id(), "application_id": case_id, "key": f"m{position_m}", "position": position_m,
                    "name": "材料", "required": True, "source": "certificate", "certificate_type": None,
                    "state": state_name, "reason": None, "certificate": None, "file_sha256": None,
                    "file_type": None, "file_size": None, "updated_at": _at(created, rng),
                })  # fmt: skip
        add("applications", row)
        if len(chunk["applications"]) >= CHUNK:
            yield chunk
            chunk = {}
    if chunk:
        yield chunk


ORDER = (applications, application_history, application_materials, evaluations, rectifications, grid_tasks)


async def seed(db: Database, n: int, end: dt.date) -> None:
    started = time.perf_counter()
    done = 0
    for chunk in synthetic(n, end):
        async with db.transaction() as conn:
            for table in ORDER:
                rows = chunk.get(table.name)
                if rows:
                    await conn.execute(insert(table), rows)
        done += len(chunk["applications"])
        if done % 100_000 == 0 or done == n:
            print(f"  seeded {done:,} cases ({time.perf_counter() - started:.0f} s)", flush=True)
    async with db.transaction() as conn:
        await conn.execute(insert(grid_sync).values(name="history", last_at=dt.datetime.now(dt.UTC)))
        if db.engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE"))


_PG_SEED = (
    """CREATE TABLE bench_items (idx int, code text, name text, department text, promised int)""",
    """CREATE TABLE bench_grids (idx int, code text)""",
    # Cases: 5 % not accepted, the rest accepted on the day they were filed; ~85 % completed (90 % approved) within
    # promised + 3 days when that falls before the period ends, 3 % withdrawn, the rest open; 80 % with a grid.
    """
    INSERT INTO applications (id, item_code, item_name, item_version, department, filing_unit, handling_unit, grid,
        status, version, applicant_id_number, applicant_id_index, applicant_id_number_masked, applicant_name,
        applicant_name_masked, applicant_phone, applicant_phone_masked, consent, purpose, created_by, created_at,
        updated_at, accepted_at, accepted_on, tracking_number, promised_days, deadline, deadline_estimated,
        stopped_on)
    SELECT lpad(to_hex(s.g), 32, '0'), i.code, i.name, 1, i.department, substr(gr.code, 1, 12),
        substr(gr.code, 1, 12), CASE WHEN s.g % 5 <> 0 THEN gr.code END,
        CASE WHEN s.r1 < 0.05 THEN 'not_accepted'
             WHEN s.r1 < 0.90 AND s.done <= CAST(:end AS date) THEN
                 CASE WHEN s.r2 < 0.9 THEN 'approved' ELSE 'denied' END
             WHEN s.r1 > 0.97 AND s.done <= CAST(:end AS date) THEN 'withdrawn'
             ELSE 'in_review' END,
        1, '-', lpad(s.g::text, 64, '0'), '430302********001X', '-', '张*', '-', '138****0000', true, 'bench',
        'bench', s.created + time '10:00' - interval '8 hours', s.created + time '10:00' - interval '8 hours',
        CASE WHEN s.r1 >= 0.05 THEN s.created + time '10:05' - interval '8 hours' END,
        CASE WHEN s.r1 >= 0.05 THEN s.created END,
        CASE WHEN s.r1 >= 0.05 THEN 'T' || lpad(s.g::text, 20, '0') END,
        CASE WHEN s.r1 >= 0.05 THEN i.promised END,
        CASE WHEN s.r1 >= 0.05 THEN s.created + ceil(i.promised * 1.4)::int END,
        false,
        CASE WHEN s.r1 >= 0.05 AND (s.r1 < 0.90 OR s.r1 > 0.97) AND s.done <= CAST(:end AS date) THEN s.done END
    FROM (
        SELECT g, random() AS r1, random() AS r2, (CAST(:end AS date) - (g % 365))::date AS created,
               (CAST(:end AS date) - (g % 365))::date + (g % 19) AS done
        FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) AS g
    ) s
    JOIN bench_items i ON i.idx = s.g % :items
    JOIN bench_grids gr ON gr.idx = (s.g * 7) % :grids
    """,
    """
    INSERT INTO application_history (id, application_id, position, status, from_status, at, actor, actor_role)
    SELECT md5(id || 'h1'), id, 1, 'draft', NULL, created_at, 'bench', 'clerk'
    FROM applications WHERE id BETWEEN :lo_id AND :hi_id
    UNION ALL
    SELECT md5(id || 'h2'), id, 2, CASE WHEN accepted_on IS NULL THEN 'not_accepted' ELSE 'accepted' END, 'draft',
           created_at + interval '5 minutes', 'bench', 'clerk' FROM applications WHERE id BETWEEN :lo_id AND :hi_id
    UNION ALL
    SELECT md5(id || 'h3'), id, 3, 'correction_required', 'accepted', created_at + interval '1 day', 'bench', 'officer'
    FROM applications WHERE accepted_on IS NOT NULL AND right(id, 1) = '7' AND id BETWEEN :lo_id AND :hi_id
    UNION ALL
    SELECT md5(id || 'h4'), id, 4, status, 'in_review', stopped_on + time '15:00' - interval '8 hours',
           'bench', 'officer'
    FROM applications WHERE stopped_on IS NOT NULL AND id BETWEEN :lo_id AND :hi_id
    """,
    """
    INSERT INTO application_materials (id, application_id, key, position, name, required, source, state, updated_at)
    SELECT md5(a.id || 'm' || k), a.id, 'm' || k, k, '材料', true, 'certificate',
           CASE WHEN (hashtext(a.id) + k) % 5 < 3 THEN 'prefilled' ELSE 'provided' END, a.created_at
    FROM applications a CROSS JOIN generate_series(0, 1) AS k
    WHERE a.accepted_on IS NOT NULL AND a.id BETWEEN :lo_id AND :hi_id
    """,
    """
    INSERT INTO evaluations (id, application_id, level, comment, created_at)
    SELECT md5(id || 'e'), id, 5 - (abs(hashtext(id)) % 100 / 60 + abs(hashtext(id)) % 100 / 85
                              + abs(hashtext(id)) % 100 / 93 + abs(hashtext(id)) % 100 / 97),
           '', stopped_on + time '16:00' - interval '8 hours'
    FROM applications
    WHERE status IN ('approved', 'denied') AND abs(hashtext(id || 'x')) % 10 < 4 AND id BETWEEN :lo_id AND :hi_id
    """,
    """
    INSERT INTO rectifications (id, application_id, evaluation_id, status, level, item_code, department,
        handling_unit, opened_at, due_on, due_estimated, closed_at)
    SELECT md5(e.id || 'r'), e.application_id, e.id, 'closed', e.level, a.item_code, a.department, a.handling_unit,
           e.created_at, (e.created_at + interval '21 days')::date, false, e.created_at + interval '10 days'
    FROM evaluations e JOIN applications a ON a.id = e.application_id
    WHERE e.level <= 2 AND a.id BETWEEN :lo_id AND :hi_id
    """,
    """
    INSERT INTO grid_tasks (id, application_id, grid, stage, kind, trigger, opened_on, due_on, status,
        completed_on, created_at)
    SELECT md5(id || 't1'), id, grid, 'during', 'accepted', 'h2', accepted_on, accepted_on + 1,
           CASE WHEN right(id, 1) = '3' THEN 'open' ELSE 'done' END,
           CASE WHEN right(id, 1) = '3' THEN NULL ELSE accepted_on + 1 END, created_at
    FROM applications WHERE grid IS NOT NULL AND accepted_on IS NOT NULL AND id BETWEEN :lo_id AND :hi_id
    UNION ALL
    SELECT md5(id || 't2'), id, grid, 'after', 'follow_up', 'h4', stopped_on, stopped_on + 4,
           CASE WHEN right(id, 1) = '5' THEN 'open' ELSE 'done' END,
           CASE WHEN right(id, 1) = '5' THEN NULL ELSE stopped_on + 2 END, created_at
    FROM applications WHERE grid IS NOT NULL AND status IN ('approved', 'denied') AND id BETWEEN :lo_id AND :hi_id
    """,
)


async def seed_postgres(db: Database, n: int, end: dt.date) -> None:
    """The same shape as `seed`, generated by the server (Python would take most of an hour for a million)."""
    catalog = cached_catalog(DEFAULT_CONFIG_DIR)
    items = list(catalog.offered(end))
    grids = [u.code for u in catalog.units_at("grid")]
    started = time.perf_counter()
    async with db.transaction() as conn:
        for statement in _PG_SEED[:2]:
            await conn.execute(text(statement))
        await conn.execute(
            text("INSERT INTO bench_items VALUES (:idx, :code, :name, :department, :promised)"),
            [
                {"idx": k, "code": i.code, "name": i.name, "department": i.department, "promised": i.promised_days}
                for k, i in enumerate(items)
            ],
        )
        await conn.execute(
            text("INSERT INTO bench_grids VALUES (:idx, :code)"), [{"idx": k, "code": c} for k, c in enumerate(grids)]
        )
    # In chunks: each statement stays well inside the connection's command timeout.
    for lo in range(1, n + 1, 50_000):
        hi = min(n, lo + 49_999)
        params = {
            "lo": lo, "hi": hi, "lo_id": f"{lo:032x}", "hi_id": f"{hi:032x}",
            "end": end, "items": len(items), "grids": len(grids),
        }  # fmt: skip
        async with db.transaction() as conn:
            for statement in _PG_SEED[2:]:
                await conn.execute(text(statement), {k: v for k, v in params.items() if f":{k}" in statement})
        print(f"  seeded {hi:,} cases ({time.perf_counter() - started:.0f} s)", flush=True)
    async with db.transaction() as conn:
        await conn.execute(insert(grid_sync).values(name="history", last_at=dt.datetime.now(dt.UTC)))
    # VACUUM as well: what autovacuum does on a server after a bulk load (the visibility map lets index-only scans
    # skip the table); the test server runs with autovacuum off.
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM (ANALYZE) {', '.join(table.name for table in ORDER)}"))
    print(f"  seeded {n:,} cases in {time.perf_counter() - started:.0f} s", flush=True)


async def timings(db: Database, label: str, work: Any, runs: int = 3) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - t0)
    result = {"min_s": round(min(samples), 3), "median_s": round(statistics.median(samples), 3)}
    print(f"  {label}: min {result['min_s']:.3f} s, median {result['median_s']:.3f} s", flush=True)
    return result


async def reports_part(db: Database, start: dt.date) -> dict[str, Any]:
    service = ReportService(database=db, calendar=cached_calendar(), catalog=cached_catalog(DEFAULT_CONFIG_DIR))
    district = service.all_units()[0]

    async def count() -> None:
        async with db.read() as conn:
            await conn.execute(select(func.count()).select_from(applications))

    async def group() -> None:
        async with db.read() as conn:
            await conn.execute(select(applications.c.department, func.count()).group_by(applications.c.department))

    async def one() -> None:
        body = (await service.compute("monthly", start, [district]))[district]
        assert body["totals"]["accepted"] > 0

    async def every() -> None:
        await service.compute("monthly", start, service.all_units())

    return {
        "baseline_count": await timings(db, "baseline: count(*) over applications", count),
        "baseline_group": await timings(db, "baseline: GROUP BY department over applications", group),
        "monthly_district": await timings(db, f"monthly report {start}, district", one),
        "monthly_all_units": await timings(db, f"monthly report {start}, all {len(service.all_units())} units", every),
    }


def wrk(url: str, token: str | None, duration: float = 10.0, connections: int = 16) -> Any:
    threads = min(2, connections)
    cmd = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout=5s", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    return parse_wrk(out, url=url, connections=connections, threads=threads, duration_s=duration)


async def busiest(db: Database) -> tuple[str, str]:
    async with db.read() as conn:
        department = (
            await conn.execute(
                select(applications.c.department).group_by(applications.c.department).order_by(func.count().desc())
            )
        ).scalar()
        grid = (
            await conn.execute(
                select(grid_tasks.c.grid)
                .where(grid_tasks.c.status == "open")
                .group_by(grid_tasks.c.grid)
                .order_by(func.count().desc())
            )
        ).scalar()
    return str(department), str(grid)


#: The indexes the grid and report domains add to other domains' tables (their write cost is what is measured).
ADDED_INDEXES = (
    "ix_applications_grid_status",
    "ix_applications_accepted_on",
    "ix_applications_stopped_on",
    "ix_applications_created_at",
    "ix_applications_report_key",
    "ix_application_history_status_at",
    "ix_evaluations_created_at",
    "ix_grid_tasks_due_coverage",
    "ix_grid_tasks_evaluation_id",
    "ix_application_materials_report",
)
#: What reports_0002 / intake_0003 replaced or added: the first pass's single-column range indexes ("narrow").
NARROW_INDEXES = {
    "ix_applications_accepted_on": "applications (accepted_on)",
    "ix_applications_stopped_on": "applications (stopped_on)",
    "ix_applications_created_at": "applications (created_at)",
}
SECOND_PASS_ONLY = (
    "ix_applications_report_key",
    "ix_grid_tasks_due_coverage",
    "ix_grid_tasks_evaluation_id",
    "ix_application_materials_report",
)


def write_cost(n: int, rounds: int = 2) -> dict[str, Any]:
    """Insert the same ``n`` generated cases (all their rows) into fresh SQLite databases without the added
    indexes, with the first pass's narrow ones, and with all of them (the covering ones), in turn; only the
    inserts are timed."""
    end = period_end("monthly", last_complete("monthly", district_today()))
    chunks = list(synthetic(n, end))
    kinds = ("without", "narrow", "with")
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}

    async def one(kind: str) -> float:
        data_dir = Path(tempfile.mkdtemp(prefix="reports-write-"))
        db = Database.from_settings(bench_settings(data_dir))
        try:
            await db.migrate()
            async with db.transaction() as conn:
                if kind == "without":
                    for name in ADDED_INDEXES:
                        await conn.execute(text(f"DROP INDEX {name}"))
                elif kind == "narrow":
                    for name in (*NARROW_INDEXES, *SECOND_PASS_ONLY):
                        await conn.execute(text(f"DROP INDEX {name}"))
                    for name, on in NARROW_INDEXES.items():
                        await conn.execute(text(f"CREATE INDEX {name} ON {on}"))
            started = time.perf_counter()
            for chunk in chunks:
                async with db.transaction() as conn:
                    for table in ORDER:
                        if chunk.get(table.name):
                            await conn.execute(insert(table), chunk[table.name])
            return time.perf_counter() - started
        finally:
            await db.dispose()

    for _ in range(rounds):
        for kind in kinds:
            samples[kind].append(asyncio.run(one(kind)))
            print(f"  seeding {n:,} cases, {kind} added indexes: {samples[kind][-1]:.1f} s", flush=True)
    return {kind: [round(v, 2) for v in values] for kind, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--schema", default="", help="PostgreSQL schema (created; default a fresh one)")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes for the wrk part")
    parser.add_argument("--no-report", action="store_true", help="skip the monthly report timings")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--write-cost", type=int, metavar="N", help="only: seeding N cases with / without the indexes")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", CalendarEstimateWarning)  # synthetic deadlines run into next year
    print(machine(), flush=True)
    with open("/proc/loadavg") as fh:
        print("load average at start:", fh.read().strip(), flush=True)
    if args.write_cost:
        print(write_cost(args.write_cost))
        return 0
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="reports-bench-"))
    schema = args.schema or (f"bench_{new_id()[:12]}" if args.database_url else "")
    settings = bench_settings(data_dir, database_url=args.database_url, database_schema=schema)
    start = last_complete("monthly", district_today())
    end = period_end("monthly", start)
    results: dict[str, Any] = {"cases": args.cases, "month": start.isoformat()}

    async def prepare() -> tuple[dict[str, Any], dict[str, str], str, str]:
        db = Database.from_settings(settings)
        if schema:
            async with db.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await db.migrate()
        try:
            async with db.read() as conn:
                have = (await conn.execute(select(func.count()).select_from(applications))).scalar_one()
            if have == 0 and args.database_url.startswith("postgres"):
                await seed_postgres(db, args.cases, end)
            elif have == 0:
                await seed(db, args.cases, end)
            timing = {} if args.no_report else await reports_part(db, start)
            department, grid = await busiest(db)
            tokens = {
                "officer": (await create_token(db, role="officer", department=department))[0],
                "grid_worker": (await create_token(db, role="grid_worker", unit=grid))[0],
            }
            return timing, tokens, department, grid
        finally:
            await db.dispose()

    timing, tokens, department, grid = asyncio.run(prepare())
    results |= timing
    if not args.no_http:
        env = server_env(data_dir)
        if args.database_url:
            env |= {"ONEWINDOW_DATABASE_URL": args.database_url, "ONEWINDOW_DATABASE_SCHEMA": schema}
        env["ONEWINDOW_REPORT_JOBS_SECONDS"] = "0"
        with AsgiServer("gateway.app:create_app", flags=ServerFlags(workers=args.workers), env=env) as server:
            base = server.base_url
            for name, url, token in (
                ("baseline /health/live", f"{base}/health/live", None),
                (f"officer queue ({department})", f"{base}/api/v1/applications", tokens["officer"]),
                (f"grid task list ({grid})", f"{base}/api/v1/grid/tasks?status=open", tokens["grid_worker"]),
            ):
                wrk(url, token, duration=2.0)
                for connections in (1, 16):
                    meter = CpuMeter(server.pid)
                    r = wrk(url, token, connections=connections)
                    cpu = meter.stop()
                    served = max(1.0, r.requests_per_s * 10.0)
                    print(
                        f"  {name}, {connections} connection(s): {r.requests_per_s:.0f} req/s, p50 {r.p50_ms:.1f} ms, "
                        f"p99 {r.p99_ms:.1f} ms, non-2xx {r.non_2xx}; server CPU {cpu.server / served * 1000:.2f} ms "
                        f"per request (others {cpu.others:.1f} s, wrk {cpu.load_generator:.1f} s, "
                        f"idle {cpu.idle:.1f} s)",
                        flush=True,
                    )
                    results[f"{name} c{connections}"] = {
                        "rps": r.requests_per_s,
                        "p50_ms": r.p50_ms,
                        "p99_ms": r.p99_ms,
                        "non_2xx": r.non_2xx,
                        "server_cpu_ms_per_request": round(cpu.server / served * 1000, 3),
                        "cpu": msgspec.to_builtins(cpu),
                    }
    with open("/proc/loadavg") as fh:
        print("load average at end:", fh.read().strip(), flush=True)
    print(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
