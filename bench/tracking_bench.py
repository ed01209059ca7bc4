"""Public tracking lookup vs a bare Litestar endpoint, served the same way, in the same run, with wrk.

    .venv/bin/python -m bench.tracking_bench [--duration 15] [--warmup 3] [--connections 64] [--workers 1,2]

What it does:
1. prepares a data dir (temporary): the demo's start-up steps (simulators, sync, tokens), then one application
   filed and accepted through ``POST /api/v1/applications``; the simulators are stopped again;
2. for each worker count: serves ``bench.bare_app:create_bare_app`` and then ``gateway.app:create_app`` (the app
   factory ``onewindow serve`` uses) with the same ASGI server and flags, checks the answers are right, and runs
   wrk (warm-up, then the measured run) against ``GET /api/v1/track/{n}?code=…`` on each;
3. prints a table and the verdict against the target (tracking ≥ 50 % of the bare throughput, p99 ≤ 25 ms at
   64 connections), and with ``--json FILE`` writes every number.

wrk is Debian's package: ``apt-get install wrk``. Nothing here runs in the test suite.
With several workers each process has its own in-memory failure limiter (no Redis configured): correct lookups are
never throttled, so the benchmark is unaffected, but a deployment with several workers should set
ONEWINDOW_REDIS_URL so the anti-enumeration limit is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
import msgspec

from bench.harness import AsgiServer, ServerFlags, WrkResult, machine, measure, wrk_path
from bench.prepare import prepare_data_dir, server_env

TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0


class Row(msgspec.Struct, kw_only=True):
    app: str
    workers: int
    flags: str
    result: WrkResult


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, str]
    rows: list[Row]
    verdicts: list[str]


def _check_tracking(base_url: str, number: str, code: str) -> None:
    """The lookup answers 200 with the right case, and a wrong code the uniform 404, before we load it."""
    good = httpx.get(f"{base_url}/api/v1/track/{number}", params={"code": code}, timeout=10.0)
    if good.status_code != 200 or good.json()["tracking_number"] != number:
        raise SystemExit(f"tracking lookup is not answering correctly: {good.status_code} {good.text[:300]}")
    if "applicant_name" not in good.json():
        raise SystemExit("tracking answer lacks applicant_name")


def _check_bare(base_url: str, number: str, code: str) -> None:
    r = httpx.get(f"{base_url}/api/v1/track/{number}", params={"code": code}, timeout=10.0)
    if r.status_code != 200:
        raise SystemExit(f"bare endpoint answers {r.status_code}")


def _line(row: Row) -> str:
    r = row.result
    return (
        f"{row.app:<9} {row.flags:<70} {r.requests_per_s:>9.0f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f}"
        f" {r.non_2xx:>6} {r.socket_errors:>6}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of the discarded warm-up run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the servers")
    parser.add_argument("--data-dir", type=Path, help="reuse/prepare this data dir instead of a temporary one")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    args = parser.parse_args(argv)
    wrk_path()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    with tempfile.TemporaryDirectory(prefix="onewindow-bench-") as tmp:
        data_dir = (args.data_dir or Path(tmp) / "var").resolve()
        print(f"preparing {data_dir} …", flush=True)
        prepared = asyncio.run(prepare_data_dir(data_dir))
        number, code = prepared.tracking_number, prepared.query_code
        path = f"/api/v1/track/{number}?code={code}"
        env = server_env(data_dir)
        if args.python != sys.executable:
            # a scratch interpreter (e.g. with granian) still imports the project and its dependencies from here
            site = next(p for p in sys.path if p.endswith("site-packages"))
            env["PYTHONPATH"] = f"{Path(__file__).resolve().parent.parent}:{site}"
        rows: list[Row] = []
        for n in workers:
            flags = ServerFlags(server=args.server, workers=n)
            apps = [
                ("bare", "bench.bare_app:create_bare_app", _check_bare),
                ("tracking", "gateway.app:create_app", _check_tracking),
            ]
            for app, factory, check in apps:
                with AsgiServer(factory, flags=flags, env=env, python=args.python) as server:
                    check(server.base_url, number, code)
                    result = measure(
                        server.base_url + path,
                        connections=args.connections,
                        threads=args.threads,
                        duration_s=args.duration,
                        warmup_s=args.warmup,
                    )
                    check(server.base_url, number, code)  # still right after the load
                row = Row(app=app, workers=n, flags=flags.describe(), result=result)
                rows.append(row)
                print(_line(row), flush=True)

    verdicts: list[str] = []
    for n in workers:
        bare = next(r for r in rows if r.app == "bare" and r.workers == n)
        track = next(r for r in rows if r.app == "tracking" and r.workers == n)
        ratio = track.result.requests_per_s / bare.result.requests_per_s
        ok = ratio >= TARGET_RATIO and track.result.p99_ms <= TARGET_P99_MS and track.result.non_2xx == 0
        verdicts.append(
            f"{n} worker(s): tracking {track.result.requests_per_s:.0f} req/s = {ratio:.0%} of bare "
            f"{bare.result.requests_per_s:.0f} req/s; tracking p99 {track.result.p99_ms:.1f} ms "
            f"(target ≥ {TARGET_RATIO:.0%} and ≤ {TARGET_P99_MS:g} ms): {'MET' if ok else 'MISSED'}"
        )
    report = Report(machine=machine(), rows=rows, verdicts=verdicts)
    print()
    print(
        f"{'app':<9} {'server':<70} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non2xx':>6} {'errors':>6}"
    )
    for row in rows:
        print(_line(row))
    print()
    for verdict in verdicts:
        print(verdict)
    print(msgspec.json.encode(report.machine).decode())
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
