"""What the drills share: the real ``onewindow serve`` in a child process, and Redis and PostgreSQL servers of their
own on free loopback ports (a drill that stops a service never touches the shared ones on 6379 and 5432).

`RedisServer` and `PostgresServer` skip the test, saying why, when the binaries are missing (or, for PostgreSQL
run as root, when there is no ``postgres`` user to run it as).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ONEWINDOW = Path(sys.executable).parent / "onewindow"
START_TIMEOUT = 90.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def environment(**values: str) -> dict[str, str]:
    """Embedded defaults whatever the caller's environment says (no PostgreSQL, Redis or metrics directory of the
    developer's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(values)
    return env


def onewindow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ONEWINDOW), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )


class Server:
    """One ``onewindow serve`` (``workers`` processes under uvicorn's supervisor when more than one) in a session of
    its own, so `stop` and `kill` reach every process; its output in a file (a full pipe would block it), named
    ``serve-<run>.log``."""

    def __init__(self, data_dir: Path, log_dir: Path, env: dict[str, str], run: int | str, *, workers: int = 1) -> None:
        self.name = f"serve-{run}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{self.name}.log"
        command = [str(ONEWINDOW), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir)]
        if workers > 1:
            command += ["--workers", str(workers)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def traces(self) -> list[str]:
        """Every stack trace the server wrote, each shortened to its logger, message and last frames (the part a
        truncated CI excerpt must still show); plain-text traces on stderr are given from their last lines."""
        found: list[str] = []
        lines = self.output().splitlines()
        for n, line in enumerate(lines):
            if "Traceback" not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                end = next((k for k in range(n + 1, len(lines)) if lines[k][:1] not in (" ", "\t")), len(lines) - 1)
                found.append(" | ".join(lines[max(n, end - 3) : end + 1]))
                continue
            tail = " | ".join(str(record.get("exception", "")).splitlines()[-4:])
            found.append(f"{record.get('logger')}: {record.get('message')} | {tail}")
        return found

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"onewindow serve exited with {self.proc.returncode}:\n{self.output()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        self.kill()
        pytest.fail(f"onewindow serve not ready after {START_TIMEOUT:.0f} s:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def _wait_port(port: int, *, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            reachable = sock.connect_ex(("127.0.0.1", port)) == 0
        if reachable == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} still {'down' if up else 'up'} after {timeout} s")


class RedisServer:
    """A throw-away ``redis-server`` (no persistence): `stop` kills it, `start` brings it back empty."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                *(self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"),
                *("--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
        _wait_port(self.port, up=False)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PostgresServer:
    """A throw-away PostgreSQL 15 cluster (``initdb`` in a temporary directory, trust authentication, loopback)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL server binaries are not installed ({PG_BIN}/initdb is missing)")
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run a PostgreSQL server as")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.folder = Path(tempfile.mkdtemp(prefix="onewindow-drill-pg-"))
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"
        )

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self, **settings: Any) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {k}={v}" for k, v in settings.items())
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(**settings: Any) -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start(**settings)
        yield server
    finally:
        server.close()


__all__ = [
    "ONEWINDOW",
    "REPO",
    "PostgresServer",
    "RedisServer",
    "Server",
    "environment",
    "free_port",
    "onewindow",
    "postgres_server",
    "redis_server",
    "servers",
]


# -- the workload: clerks filing and accepting, citizens tracking --------------------------------------------------

APPLICATIONS = "/api/v1/applications"


def clerk_headers(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """A clerk's bearer token of the street the intake fixtures use, made with ``onewindow tokens create``."""
    from tests.gateway.intake.fixtures import STREET

    made = onewindow(env, "tokens", "create", "--role", "clerk", "--unit", STREET, "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}


def filings(sims: Any, count: int, tag: str) -> dict[str, dict[str, Any]]:
    """``count`` create-and-accept bodies (医保电子凭证申领: the ID card is the one material) by Idempotency-Key."""
    import uuid

    from tests.gateway.intake.fixtures import ONE_CERT_ITEM, today_local

    today = today_local()
    adults = [
        c
        for c in sorted(sims.citizens, key=lambda c: c.id_number)
        if (today - c.birth_date).days >= 18 * 366
        and any(x.type_key == "resident_id_card" and x.status == "01" for x in c.certificates)
    ][:40]
    assert len(adults) >= 10
    return {
        f"{tag}-{n:04d}-{uuid.uuid4().hex[:8]}": {
            "item_code": ONE_CERT_ITEM,
            "applicant": {"id_number": c.id_number, "name": c.name, "phone": c.phone},
            "consent": True,
            "accept": True,
            "purpose": f"医保电子凭证申领 {n}",
        }
        for n, c in ((n, adults[n % len(adults)]) for n in range(count))
    }


Answer = tuple[int, bytes, dict[str, str]]


async def fire(
    client: httpx.AsyncClient, requests: dict[str, dict[str, Any]], headers: dict[str, str]
) -> dict[str, Answer | str]:
    """POST every filing at once with its key; each key's answer (status, body, headers) or the transport error."""
    results: dict[str, Answer | str] = {}

    async def one(key: str, body: dict[str, Any]) -> None:
        try:
            response = await client.post(APPLICATIONS, json=body, headers=headers | {"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            results[key] = type(exc).__name__
            return
        results[key] = (response.status_code, response.content, dict(response.headers))

    await asyncio.gather(*(one(key, body) for key, body in requests.items()))
    return results


def assert_clean_unavailable(answer: Answer) -> None:
    """A 503 the way clients are promised one: problem+json with ``status`` 503, ``Retry-After``, no stack trace."""
    import json

    status, body, headers = answer
    assert status == 503, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/problem+json"), headers
    assert headers.get("retry-after", "").isdigit(), headers
    problem = json.loads(body)
    assert problem["status"] == 503 and problem["detail"], problem
    assert b"Traceback" not in body and b'File "' not in body, body[:300]
