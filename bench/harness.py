"""What the benchmarks share: free ports, ASGI servers in child processes, wrk runs and their output parsed.

Both sides of a comparison are served by `AsgiServer`, so the ASGI server, worker count and flags are the same by
construction; only the application differs. wrk is Debian's package (``apt-get install wrk``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import msgspec

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_TICK = os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def machine() -> dict[str, str]:
    """The facts RESULTS.md records with every number."""
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count() or 0),
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        # other work on the cores shows in every number: say how busy the machine was
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


class ServerFlags(msgspec.Struct, frozen=True, kw_only=True):
    """How an ASGI application is served: identical for every side of one comparison."""

    server: str = "uvicorn"  # "uvicorn" or "granian" (the latter only when installed, for a measurement)
    workers: int = 1
    http: str = "httptools"
    loop: str = "uvloop"

    def describe(self) -> str:
        if self.server == "granian":
            return f"granian --interface asgi --workers {self.workers} --loop {self.loop}"
        return f"uvicorn --workers {self.workers} --http {self.http} --loop {self.loop} --log-level warning"


class AsgiServer:
    """An app factory (``module:function``) served in a child process; started and stopped by ``with``.

    The child gets its own process group so that stopping it also stops its worker processes.
    """

    def __init__(
        self,
        factory: str,
        *,
        flags: ServerFlags,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/health/live",
        python: str = PYTHON,
        source: Path = REPO_ROOT,
    ) -> None:
        self.factory = factory
        self.flags = flags
        self.host = host
        self.port = port or free_port(host)
        self.env = {**os.environ, **(env or {})}
        self.ready_path = ready_path
        self.python = python
        #: The tree the application is imported from (another checkout of the project, to compare two versions).
        self.source = source.resolve()
        if self.source != REPO_ROOT:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(self.source), self.env.get("PYTHONPATH"))))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The server's first process; its workers are in its process group (the same number)."""
        if self._proc is None:
            raise RuntimeError("the server is not running")
        return self._proc.pid

    def command(self) -> list[str]:
        f = self.flags
        if f.server == "granian":
            return [
                self.python, "-m", "granian", "--interface", "asgi", "--factory", "--host", self.host,
                "--port", str(self.port), "--workers", str(f.workers), "--loop", f.loop,
                "--log-level", "warning", "--no-access-log", self.factory,
            ]  # fmt: skip
        return [
            self.python, "-m", "uvicorn", "--factory", self.factory, "--host", self.host, "--port", str(self.port),
            "--workers", str(f.workers), "--http", f.http, "--loop", f.loop, "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip

    def __enter__(self) -> AsgiServer:
        # The server's log lines (one access line per request) go to a file, as a deployment's go to its log
        # collector — never to this terminal, which could not keep up. With several workers the metrics are
        # summed across them as `onewindow serve --workers N` does (PROMETHEUS_MULTIPROC_DIR).
        self._scratch = Path(tempfile.mkdtemp(prefix="onewindow-bench-server-"))
        env = dict(self.env)
        if self.flags.workers > 1:
            (self._scratch / "metrics").mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self._scratch / "metrics")
        self.log_path = self._scratch / "server.log"
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.source,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout=60.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        url = self.base_url + self.ready_path
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.factory}: server exited with {self._proc.returncode} before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code == 200:
                    # Every worker must have started: give the others the moment the first one needed.
                    if self.flags.workers > 1:
                        time.sleep(1.0)
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.factory}: not ready at {url} after {timeout:.0f} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        try:
            self._stop(proc)
        finally:
            scratch = getattr(self, "_scratch", None)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _stop(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# -- wrk ----------------------------------------------------------------------------------------------------


class WrkResult(msgspec.Struct, kw_only=True):
    url: str
    connections: int
    threads: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def wrk_path() -> str:
    """The wrk binary, or exit saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: apt-get install wrk   (Debian's package; the benchmark needs it)")
    return path


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def parse_wrk(output: str, *, url: str, connections: int, threads: int, duration_s: float) -> WrkResult:
    """Read wrk's text report (``--latency``)."""
    percentiles = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _LATENCY_LINE.findall(output)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if rps is None or total is None or 99 not in percentiles:
        raise RuntimeError(f"cannot read wrk output:\n{output}")
    return WrkResult(
        url=url,
        connections=connections,
        threads=threads,
        duration_s=duration_s,
        requests=int(total.group(1)),
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def run_wrk(
    url: str,
    *,
    connections: int = 64,
    threads: int = 2,
    duration_s: float = 15.0,
    timeout_s: float = 5.0,
    script: Path | None = None,
) -> WrkResult:
    """One wrk run with the latency distribution (``script``: a wrk Lua script, e.g. `rotating_paths`)."""
    cmd = [
        wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s",
        "--latency", *(["-s", str(script)] if script is not None else []), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration_s + 60).stdout
    return parse_wrk(out, url=url, connections=connections, threads=threads, duration_s=duration_s)


def measure(
    url: str, *, connections: int = 64, threads: int = 2, duration_s: float = 15.0, warmup_s: float = 3.0
) -> WrkResult:
    """A warm-up run (discarded), then the measured run."""
    if warmup_s > 0:
        run_wrk(url, connections=connections, threads=threads, duration_s=warmup_s)
    return run_wrk(url, connections=connections, threads=threads, duration_s=duration_s)


def measure_with_cpu(
    url: str,
    server: AsgiServer,
    *,
    connections: int = 64,
    threads: int = 2,
    duration_s: float = 15.0,
    warmup_s: float = 3.0,
    script: Path | None = None,
) -> tuple[WrkResult, CpuShare]:
    """`measure`, and where the machine's CPU went during the measured run (not the warm-up)."""
    if warmup_s > 0:
        run_wrk(url, connections=connections, threads=threads, duration_s=warmup_s, script=script)
    meter = CpuMeter(server.pid)
    result = run_wrk(url, connections=connections, threads=threads, duration_s=duration_s, script=script)
    return result, meter.stop()


def rotating_paths(paths: Sequence[str], directory: Path) -> Path:
    """A wrk Lua script (written in ``directory``) whose requests go to ``paths`` in turn, each of wrk's threads
    starting at a different one."""
    listed = ",\n".join(f"  {json.dumps(p)}" for p in paths)
    script = directory / "rotating_paths.lua"
    script.write_text(
        f"local paths = {{\n{listed}\n}}\n"
        "local i = 0\n"
        "local started = 0\n"
        "setup = function(thread)\n"
        "  started = started + 1\n"
        "  thread:set('start', started * 7919)\n"
        "end\n"
        "init = function(args)\n"
        "  i = (start or 0) % #paths\n"
        "end\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i])\n"
        "end\n"
    )
    return script


# -- CPU accounting -------------------------------------------------------------------------------------------


class CpuShare(msgspec.Struct, kw_only=True):
    """Where the machine's CPU went during one measured run (CPU seconds, all cores; wall time × cores in all)."""

    server: float  # the ASGI server's processes (its process group: the supervisor and the workers)
    database: float  # processes named ``postgres`` (the server and every backend, also other people's)
    load_generator: float  # wrk (and anything else this process ran and reaped meanwhile)
    others: float  # everything else on the machine
    idle: float


def _processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, process group, CPU seconds used so far) of every process (``/proc/<pid>/stat``)."""
    found: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # after the name: state, ppid, pgrp, …, utime (14th field of the line) and stime (15th)
        found[int(entry.name)] = (name, int(fields[2]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK, idle / _TICK


class CpuMeter:
    """The CPU a server's process group, the database and the rest of the machine use from now to `stop`.

    A process that exits in between is not counted (its time is in "others"); one started in between counts from
    zero. Resolution: the kernel's clock tick (10 ms), so measure runs of seconds.
    """

    def __init__(self, server_group: int, database_name: str = "postgres") -> None:
        self.server_group = server_group
        self.database_name = database_name
        self._start = self._read()

    def _read(self) -> tuple[dict[int, float], dict[int, float], float, float, float]:
        server: dict[int, float] = {}
        database: dict[int, float] = {}
        for pid, (name, group, cpu) in _processes().items():
            if group == self.server_group:
                server[pid] = cpu
            elif name == self.database_name:
                database[pid] = cpu
        children = os.times()
        busy, idle = _machine_cpu()
        return server, database, children.children_user + children.children_system, busy, idle

    def stop(self) -> CpuShare:
        server0, database0, children0, busy0, idle0 = self._start
        server1, database1, children1, busy1, idle1 = self._read()
        server = sum(cpu - server0.get(pid, 0.0) for pid, cpu in server1.items())
        database = sum(cpu - database0.get(pid, 0.0) for pid, cpu in database1.items())
        generator = children1 - children0
        busy = busy1 - busy0
        return CpuShare(
            server=round(server, 2),
            database=round(database, 2),
            load_generator=round(generator, 2),
            others=round(max(busy - server - database - generator, 0.0), 2),
            idle=round(idle1 - idle0, 2),
        )


# -- reporting ----------------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency that happened)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - start:.2f} s", flush=True)
