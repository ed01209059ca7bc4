"""`onewindow serve`: the gateway on embedded defaults, or PostgreSQL/Redis from the environment.

uvicorn's own proxy-header handling is off (``proxy_headers=False``): by default it would replace the client's
address with ``X-Forwarded-For`` from any peer at 127.0.0.1 (or ``FORWARDED_ALLOW_IPS``). The gateway reads that
header itself, from the proxies in ``Settings.trusted_proxies`` only (`gateway.clients`), the same way however
it is served.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gateway.settings import SettingsError, load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--config", type=Path, help="TOML settings file ([gateway] table)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); with more than one, set ONEWINDOW_REDIS_URL so idempotency leases, "
        "rate limits and breaker state are shared; metrics are summed over the workers (PROMETHEUS_MULTIPROC_DIR)",
    )
    p.add_argument(
        "--no-jobs",
        action="store_true",
        help="do not run the background jobs (event delivery) in this process; run `onewindow worker` instead",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    try:
        settings = load_settings(
            args.config,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            jobs_in_process=False if getattr(args, "no_jobs", False) else None,
        )
    except SettingsError as exc:
        print(f"onewindow serve: {exc}", file=sys.stderr)
        return 2
    from gateway.commands.connectors import department_file_problems

    problems = department_file_problems(settings)
    if problems:  # refuse to start on a malformed department file (each line: file: field: message with the fix)
        print("onewindow serve: cannot start: invalid department files:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    try:
        app = create_app(settings)
    except Exception as exc:  # refuse to start, saying why (broken catalog, bad keys, …)
        print(f"onewindow serve: cannot start: {exc}", file=sys.stderr)
        return 1
    if args.workers < 1:
        print("onewindow serve: --workers must be at least 1", file=sys.stderr)
        return 2
    print(f"OneWindow gateway on http://{settings.host}:{settings.port}  (docs: /schema/swagger)", flush=True)
    if args.workers == 1:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=None,  # the app's JSON logging (gateway/observability/logs.py) covers uvicorn's loggers
            access_log=False,  # its access line would carry the path and query; the gateway writes its own
            loop="auto",
            http="httptools",
            proxy_headers=False,
        )
        return 0
    if not settings.redis_url:
        print(
            "onewindow serve: warning: several workers without ONEWINDOW_REDIS_URL keep idempotency leases and "
            "rate limits per process",
            file=sys.stderr,
        )
    # Worker processes build their own app from the environment: hand them what the command line decided.
    os.environ.update(
        ONEWINDOW_HOST=settings.host,
        ONEWINDOW_PORT=str(settings.port),
        ONEWINDOW_DATA_DIR=str(settings.data_dir),
        ONEWINDOW_CONFIG_DIR=str(settings.config_dir),
        ONEWINDOW_JOBS_IN_PROCESS=str(settings.jobs_in_process).lower(),
    )
    if args.config is not None:
        os.environ["ONEWINDOW_CONFIG"] = str(args.config.resolve())
    with multiprocess_metrics():
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            workers=args.workers,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=None,
            access_log=False,
            loop="auto",
            http="httptools",
            proxy_headers=False,
        )
    return 0


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[Path]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers (they inherit the environment and import `prometheus_client`
    after it is set): the operator's directory, emptied of the previous run's files, or a private temporary one
    removed at exit. Every worker writes its counters there and a scrape of any worker sums them all."""
    from gateway.observability.metrics import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="onewindow-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
