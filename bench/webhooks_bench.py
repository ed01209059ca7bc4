"""Webhook delivery: commit → delivery latency at a sustained rate, and how fast one worker drains a backlog.

    .venv/bin/python -m bench.webhooks_bench [--rate 200] [--seconds 30] [--backlog 10000] [--database-url URL]

Three processes, all on loopback: this one commits events (each its own write transaction with one
`gateway.events.outbox.emit`, like a case change), ``onewindow worker`` delivers them, and a receiver
(``python -m bench.webhooks_bench --receiver PORT``, aiohttp, answers 204) records when each ``webhook-id``
arrived. The event's data carries the commit time (``bench_committed``), so the receiver computes commit →
delivery on the one machine clock.

1. **Baseline** (same run, same receiver): this process POSTs the same signed bodies straight to the receiver at
   the rate, without the gateway: what loopback HTTP alone costs.
2. **Latency**: ``--seconds`` of events at ``--rate`` per second (a fixed schedule, not "as fast as possible"),
   one subscription; p50 / p90 / p99 / max of commit → arrival. Target: p99 ≤ 1 s at 200 events/s.
3. **Backlog**: ``--backlog`` events committed with no worker running, then one worker started; deliveries per
   second from its start to the last arrival (and from the first arrival). Target: ≥ 500/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout

from bench.harness import PYTHON, REPO_ROOT, free_port, machine, percentile
from gateway.events import outbox, signing, types
from gateway.events.dispatcher import Dispatcher, message_body
from gateway.events.schemas import SubscriptionIn
from gateway.events.subscriptions import SubscriptionService
from gateway.identity.principal import Principal, Role
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings, load_settings
from gateway.storage import Database, DatabaseBusy, utcnow

ONEWINDOW = Path(sys.executable).parent / "onewindow"


# -- the receiver (its own process) ----------------------------------------------------------------------------


def run_receiver(port: int) -> None:
    arrivals: dict[str, float] = {}
    latencies: list[float] = []
    first: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        message = request.headers.get("webhook-id", "")
        if message not in arrivals:
            arrivals[message] = now
            if not first:
                first.append(now)
            committed = msgspec.json.decode(body)["data"].get("bench_committed")
            if isinstance(committed, float):
                latencies.append(now - committed)
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        last = max(arrivals.values()) if arrivals else 0.0
        return web.json_response(
            {"count": len(arrivals), "latencies": latencies, "first": first[0] if first else 0.0, "last": last}
        )

    async def reset(_: web.Request) -> web.Response:
        arrivals.clear()
        latencies.clear()
        first.clear()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- the gateway side ------------------------------------------------------------------------------------------


def case(n: int) -> outbox.CaseRef:
    return outbox.CaseRef(
        id=f"{n:032x}",
        item_code="0205006100",
        department="civil_affairs",
        filing_unit="430302001000",
        handling_unit="430302001000",
        status="in_review",
    )


FAILED_COMMITS: list[str] = []


async def commit_one(db: Database, n: int) -> None:
    try:
        await _commit(db, n)
    except (DatabaseBusy, SQLAlchemyTimeout) as exc:  # the database could not keep up: counted, reported
        FAILED_COMMITS.append(str(exc))


async def _commit(db: Database, n: int) -> None:
    async with db.transaction() as conn:
        await outbox.emit(
            conn,
            types.APPLICATION_STATUS_CHANGED,
            case(n % 500),
            {"status": "in_review", "bench_committed": time.time()},
        )


async def paced(rate: float, seconds: float, work: Any) -> int:
    """Call ``work(i)`` on a fixed schedule of ``rate`` per second for ``seconds``; returns how many ran late."""
    interval = 1 / rate
    start = time.monotonic()
    total = int(rate * seconds)
    late = 0
    pending: set[asyncio.Task[None]] = set()
    for i in range(total):
        due = start + i * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.1:
            late += 1
        task = asyncio.create_task(work(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    return late


async def stats(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


async def wait_count(http: aiohttp.ClientSession, base: str, count: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        current = await stats(http, base)
        if current["count"] >= count or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else 0.0,
    }


class Worker:
    def __init__(self, settings: Settings, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
        env.update(
            ONEWINDOW_DATA_DIR=str(settings.data_dir),
            ONEWINDOW_DATABASE_URL=settings.database_url,
            ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        )
        self.out = log.open("wb")
        self.proc = subprocess.Popen(
            [str(ONEWINDOW), "worker"], cwd=REPO_ROOT, env=env, stdout=self.out, stderr=subprocess.STDOUT
        )

    async def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


class InProcess:
    """The dispatcher in this process, as ``onewindow serve`` runs it (the embedded default)."""

    def __init__(self, settings: Settings, cipher: FieldCipher, db: Database) -> None:
        self.dispatcher = Dispatcher(database=db, cipher=cipher, settings=settings)
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.dispatcher.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await self.task
        await self.dispatcher.close()


def start_worker(
    args: argparse.Namespace, settings: Settings, log: Path, cipher: FieldCipher, db: Database
) -> Worker | InProcess:
    return Worker(settings, log) if args.worker_process else InProcess(settings, cipher, db)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    settings = load_settings(
        environ={}, data_dir=data_dir, database_url=args.database_url, webhook_allowed_networks="127.0.0.0/8"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [PYTHON, "-m", "bench.webhooks_bench", "--receiver", str(port)], cwd=REPO_ROOT
    )
    db = Database.from_settings(settings)
    results: dict[str, Any] = {
        "machine": machine(),
        "rate": args.rate,
        "seconds": args.seconds,
        "database": "PostgreSQL" if args.database_url else "SQLite",
        "dispatcher": "onewindow worker" if args.worker_process else "in-process",
    }
    try:
        await db.migrate()
        cipher = FieldCipher(KeyRing.load(settings.data_dir))
        service = SubscriptionService(database=db, cipher=cipher, settings=settings)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    await stats(http, base)
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            # 1. Baseline: the same bodies, signed, POSTed straight to the receiver at the rate.
            secret = signing.new_secret()

            async def post_direct(i: int) -> None:
                body = message_body("application.status_changed", utcnow(), {"bench_committed": time.time()})
                headers = signing.headers([secret], f"direct-{i}", int(time.time()), body)
                async with http.post(f"{base}/hook", data=body, headers=headers) as response:
                    await response.read()

            late = await paced(args.rate, args.seconds, post_direct)
            got = await wait_count(http, base, int(args.rate * args.seconds), 30)
            results["baseline"] = summary(got["latencies"]) | {"late_sends": late}
            async with http.post(f"{base}/reset"):
                pass

            # 2. Latency through the outbox and a worker process.
            await service.create(
                Principal(token_id="bench", role=Role.ADMIN),
                SubscriptionIn(url=f"{base}/hook", events=[types.APPLICATION_STATUS_CHANGED]),
            )
            worker = start_worker(args, settings, data_dir / "worker-latency.log", cipher, db)
            try:
                await asyncio.sleep(2.0)  # started and polling
                load_before = os.getloadavg()
                late = await paced(args.rate, args.seconds, lambda i: commit_one(db, i))
                got = await wait_count(http, base, int(args.rate * args.seconds) - len(FAILED_COMMITS), 60)
            finally:
                await worker.stop()
            results["latency"] = summary(got["latencies"]) | {
                "late_commits": late,
                "failed_commits": len(FAILED_COMMITS),
                "delivered": got["count"],
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            }
            async with http.post(f"{base}/reset"):
                pass

            # 3. Backlog: committed with no worker, then one worker drains it.
            for chunk in range(0, args.backlog, 1000):
                async with db.transaction() as conn:
                    for n in range(chunk, min(args.backlog, chunk + 1000)):
                        await outbox.emit(conn, types.APPLICATION_STATUS_CHANGED, case(n), {"status": "in_review"})
            load_before = os.getloadavg()
            started = time.time()
            worker = start_worker(args, settings, data_dir / "worker-backlog.log", cipher, db)
            try:
                got = await wait_count(http, base, args.backlog, 300)
            finally:
                await worker.stop()
            elapsed = got["last"] - started
            results["backlog"] = {
                "events": args.backlog,
                "delivered": got["count"],
                "seconds_from_worker_start": elapsed,
                "per_second_from_worker_start": got["count"] / elapsed if elapsed > 0 else 0.0,
                "per_second_first_to_last": got["count"] / max(1e-9, got["last"] - got["first"]),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            }
    finally:
        await db.dispose()
        receiver.send_signal(signal.SIGINT)
        receiver.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--database-url", default="", help="default: SQLite in a fresh data dir")
    parser.add_argument(
        "--worker-process", action="store_true", help="deliver from `onewindow worker` (default: in this process)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return
    results = asyncio.run(bench(args))
    m = results["machine"]
    print(f"machine: {m}; {results['database']}, dispatcher {results['dispatcher']}")
    for name in ("baseline", "latency"):
        r = results[name]
        print(
            f"{name:9} n={r['n']}  p50 {r['p50_ms']:.1f} ms  p90 {r['p90_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
            f"  max {r['max_ms']:.1f} ms"
        )
    lat = results["latency"]
    print(f"latency: {lat['failed_commits']} commits refused (database busy), {lat['late_commits']} started late")
    print(f"latency: delivered {lat['delivered']}, load {lat['loadavg_before']} → {lat['loadavg_after']}")
    b = results["backlog"]
    print(
        f"backlog: {b['delivered']}/{b['events']} in {b['seconds_from_worker_start']:.1f} s from the worker's start: "
        f"{b['per_second_from_worker_start']:.0f}/s ({b['per_second_first_to_last']:.0f}/s first to last arrival); "
        f"load {b['loadavg_before']} → {b['loadavg_after']}"
    )
    print(
        f"verdict: p99 {'≤' if lat['p99_ms'] <= 1000 else '>'} 1 s at {args.rate:g}/s; "
        f"backlog {'≥' if b['per_second_from_worker_start'] >= 500 else '<'} 500/s"
    )
    if args.json:
        args.json.write_bytes(msgspec.json.encode(results))


if __name__ == "__main__":
    main()
