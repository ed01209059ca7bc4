"""Bulk certificate sync, end to end: fetch, decode, verify, encrypt, store — certificates per second on SQLite.

    .venv/bin/python -m bench.sync_bench [--citizens 5000] [--verify-processes N] [--repeat N] [--profile] [--json F]

What it does:
1. starts ``onewindow simulate`` (the seven department systems) in a child process on free ports, seeded with
   ``--citizens`` synthetic citizens (5,000 citizens hold ~18,000 certificates), so the simulators have their own
   process (and core) as real department systems would;
2. makes a fresh data dir with an empty, migrated SQLite database and new keys;
3. runs ``onewindow connectors sync --full``'s code path in this process — every department concurrently through
   `connectors.sync.sync_all` into the `CertificateStore`, signatures verified in ``--verify-processes`` worker
   processes (default 1, as the CLI does for ``--full``) — and times it from the first request to the last commit
   (opening the connector pool, which starts the verify workers, is timed separately);
4. reports certificates/s (fetched) and stored/s, and where the machine's CPU went meanwhile: this process, the
   verify workers, the simulators, everything else (other work on the shared cores) and idle. ``--repeat N`` runs
   N syncs against the same simulators, each into a fresh data dir. With ``--profile`` the sync runs under cProfile
   and the top functions by own time and by cumulative time are printed.

Target (issue 3): ≥ 5,000 certificates/s on this 2-core machine. Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec

from bench.harness import PYTHON, REPO_ROOT, free_port, machine

TARGET_PER_SECOND = 5000.0


class DepartmentFigures(msgspec.Struct, kw_only=True):
    code: str
    fetched: int
    stored: int
    rejected: int
    pages: int
    seconds: float
    errors: list[str]


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, str]
    citizens: int
    verify_processes: int
    fetched: int
    stored: int
    rejected: int
    seconds: float
    #: CPU seconds the gateway process (all its threads) spent during the sync; not the simulators or workers.
    gateway_cpu_seconds: float
    #: Certificates per CPU second of the gateway process: the rate if it had a core to itself.
    per_cpu_second: float
    #: Opening the connector pool (starting the verify workers); not in ``seconds``.
    pool_open_seconds: float
    #: Where all of the machine's CPU time went during the sync.
    cpu: CpuAccount
    load_average: list[float]
    per_second: float
    stored_per_second: float
    #: Certificates per second counting the pool's opening too (the verify workers' start-up).
    per_second_with_open: float
    departments: list[DepartmentFigures]
    verdict: str


#: Process ids of the running ``onewindow simulate`` children (for the CPU account).
SIMULATOR_PIDS: list[int] = []


@contextlib.contextmanager
def simulators(citizens: int, data_dir: Path, *, faults: str = "", attempts: int = 5) -> Iterator[str]:
    """``onewindow simulate`` in a child process; yields its control URL once every department answers.

    Eight consecutive free ports are needed (control + seven departments); a port taken between the probe and the
    bind makes the child exit, and the start is tried again on other ports.
    """
    for _ in range(attempts):
        port = free_port()
        if port > 65535 - 8 or any(_taken(port + i) for i in range(1, 8)):
            continue
        command = [PYTHON, "-m", "gateway.cli", "simulate", "--port", str(port), "--citizens", str(citizens)]
        command += ["--data-dir", str(data_dir)] + (["--faults", faults] if faults else [])
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            if not _wait_started(process, url):
                continue  # lost a port race: try others
            SIMULATOR_PIDS.append(process.pid)
            try:
                yield url
            finally:
                SIMULATOR_PIDS.remove(process.pid)
            return
        finally:
            _stop(process)
    raise RuntimeError(f"simulators did not start after {attempts} attempts")


def _wait_started(process: subprocess.Popen[bytes], url: str, timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            message = process.stderr.read().decode() if process.stderr else ""
            if "address already in use" in message:
                return False
            raise RuntimeError(f"simulators exited: {message}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return True
        if time.monotonic() > deadline:
            raise RuntimeError(f"simulators did not start within {timeout:g} s")
        time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK, idle / _TICK


class CpuAccount(msgspec.Struct, kw_only=True):
    """Where the machine's CPU time went during the sync (seconds, all cores; the wall time × cores in total)."""

    gateway: float  # this process: event loop, aiosqlite's thread, encryption, SQLite
    verify_workers: float  # the signature verification processes
    simulators: float  # the seven department systems (their own process)
    others: float  # everything else on the machine: other helpers' builds and tests
    idle: float


class _CpuMeter:
    """Our processes' CPU and the machine's, from now to `stop`. Verify workers started in between (an executor
    that spawns on first use) count from zero."""

    def __init__(self) -> None:
        self.workers = _children(os.getpid())
        self.sims = [p for pid in SIMULATOR_PIDS for p in (pid, *_children(pid))]
        self._start = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        busy, idle = _machine_cpu()
        return (
            time.process_time(),
            sum(_process_cpu(p) for p in self.workers),
            sum(_process_cpu(p) for p in self.sims),
            busy,
            idle,
        )

    def stop(self) -> CpuAccount:
        self.workers += [p for p in _children(os.getpid()) if p not in self.workers]
        end = self._read()
        gateway, workers, sims, busy, idle = (b - a for a, b in zip(self._start, end, strict=True))
        return CpuAccount(
            gateway=round(gateway, 2),
            verify_workers=round(workers, 2),
            simulators=round(sims, 2),
            others=round(max(busy - gateway - workers - sims, 0.0), 2),
            idle=round(idle, 2),
        )


def _taken(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class SyncRun(msgspec.Struct, kw_only=True):
    seconds: float
    #: Opening the connector pool (sessions, and starting the verify workers), before the clock starts.
    pool_open_seconds: float
    cpu: CpuAccount
    departments: list[DepartmentFigures]
    profile: str


async def sync_once(data_dir: Path, control_url: str, *, profile: bool, workers: int) -> SyncRun:
    from connectors.client import ConnectorPool
    from connectors.registry import load_trust
    from connectors.sync import sync_all
    from gateway.certificates.runtime import department_specs
    from gateway.certificates.store import CertificateStore
    from gateway.privacy import FieldCipher, KeyRing
    from gateway.settings import load_settings
    from gateway.storage import Database

    settings = load_settings(environ={}, data_dir=data_dir)
    specs = await department_specs(settings, simulators_url=control_url)
    db = Database.from_settings(settings)
    await db.migrate()
    store = CertificateStore(db, FieldCipher(KeyRing.load(settings.data_dir)), actor="bench", purpose="sync")
    profiler = cProfile.Profile() if profile else None
    try:
        trust = load_trust(settings.config_dir)
        opening = time.perf_counter()
        async with ConnectorPool(specs, data_dir=settings.data_dir, trust=trust, verify_processes=workers) as pool:
            started = time.perf_counter()
            meter = _CpuMeter()
            if profiler is not None:
                profiler.enable()
            reports = await sync_all(pool, store, full=True)
            if profiler is not None:
                profiler.disable()
            seconds = time.perf_counter() - started
            cpu = meter.stop()
    finally:
        await db.dispose()
    figures = [
        DepartmentFigures(
            code=r.code,
            fetched=r.fetched,
            stored=r.stored,
            rejected=r.rejected,
            pages=r.pages,
            seconds=r.seconds,
            errors=r.errors,
        )
        for r in reports
    ]
    text = ""
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(30)
        text = out.getvalue()
    return SyncRun(seconds=seconds, pool_open_seconds=started - opening, cpu=cpu, departments=figures, profile=text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="run the sync under cProfile and print the top")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the reports as a JSON array to FILE")
    parser.add_argument(
        "--verify-processes",
        type=int,
        default=1,
        help="verify signatures in N worker processes (default 1, as `connectors sync --full`; 0: inline)",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="N syncs, each into a fresh data dir")
    args = parser.parse_args(argv)
    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="onewindow-sync-bench-") as tmp:
        sims_dir = Path(tmp) / "var"
        with simulators(args.citizens, sims_dir) as control_url:
            for index in range(args.repeat):
                # The gateway's data dir holds only the simulators' PKI (the health system's client certificate):
                # a fresh database and fresh keys each run.
                data_dir = Path(tmp) / f"run{index}"
                data_dir.mkdir()
                (data_dir / "simulators").symlink_to(sims_dir / "simulators", target_is_directory=True)
                run = asyncio.run(sync_once(data_dir, control_url, profile=args.profile, workers=args.verify_processes))
                reports.append(_report(args, run))
                _print(reports[-1], run.profile)
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(reports)) + b"\n")
    if len(reports) > 1:
        rates = sorted(r.per_second for r in reports)
        print(f"{len(reports)} runs: {rates[0]:,.0f} / {rates[len(rates) // 2]:,.0f} / {rates[-1]:,.0f} certificates/s "
              f"(min / median / max)")  # fmt: skip
    return 0 if all(not e for r in reports for f in r.departments for e in f.errors) else 1


def _report(args: argparse.Namespace, run: SyncRun) -> Report:
    seconds, figures, cpu = run.seconds, run.departments, run.cpu.gateway
    fetched = sum(f.fetched for f in figures)
    stored = sum(f.stored for f in figures)
    per_second = fetched / seconds if seconds else 0.0
    errors = [e for f in figures for e in f.errors]
    verdict = "errors: " + "; ".join(errors) if errors else ("meets" if per_second >= TARGET_PER_SECOND else "misses")
    return Report(
        machine=machine(),
        citizens=args.citizens,
        verify_processes=args.verify_processes,
        fetched=fetched,
        stored=stored,
        rejected=sum(f.rejected for f in figures),
        seconds=round(seconds, 3),
        gateway_cpu_seconds=round(cpu, 3),
        per_cpu_second=round(fetched / cpu if cpu else 0.0, 1),
        pool_open_seconds=round(run.pool_open_seconds, 3),
        cpu=run.cpu,
        load_average=[round(x, 2) for x in os.getloadavg()],
        per_second=round(per_second, 1),
        stored_per_second=round(stored / seconds if seconds else 0.0, 1),
        per_second_with_open=round(fetched / (seconds + run.pool_open_seconds) if seconds else 0.0, 1),
        departments=figures,
        verdict=f"{verdict} the target of {TARGET_PER_SECOND:,.0f}/s" if not errors else verdict,
    )


def _print(report: Report, profile: str) -> None:
    if profile:
        print(profile, file=sys.stderr)
    m = report.machine
    print(f"machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['date']}")
    print(f"{report.citizens} citizens, {report.verify_processes} verify processes: {report.fetched} fetched, "
          f"{report.stored} stored, {report.rejected} rejected in {report.seconds:.2f} s")  # fmt: skip
    print(f"{report.per_second:,.0f} certificates/s ({report.stored_per_second:,.0f} stored/s): {report.verdict}; "
          f"{report.per_second_with_open:,.0f}/s counting the pool's opening")  # fmt: skip
    print(f"gateway process CPU {report.gateway_cpu_seconds:.2f} s = {report.per_cpu_second:,.0f} certificates per "
          f"CPU second; load average {report.load_average}")  # fmt: skip
    c = report.cpu
    ours = c.gateway + c.verify_workers + c.simulators
    print(f"CPU seconds during the sync (wall {report.seconds:.2f} s x {m['nproc']} cores): gateway {c.gateway:.2f}, "
          f"verify workers {c.verify_workers:.2f}, simulators {c.simulators:.2f} (= {ours:.2f}, "
          f"{report.fetched / ours if ours else 0:,.0f} certificates per CPU second); others {c.others:.2f}, "
          f"idle {c.idle:.2f}; pool open {report.pool_open_seconds:.2f} s")  # fmt: skip
    for f in report.departments:
        print(f"  {f.code:<18} {f.fetched:>6} fetched {f.stored:>6} stored {f.pages:>4} pages {f.seconds:>7.2f} s")


if __name__ == "__main__":
    sys.exit(main())
