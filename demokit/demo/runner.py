"""`run_demo`: the steps of `demokit.demo.steps` in order, then the gateway served until Ctrl-C or SIGTERM.

The simulators and the gateway share one event loop in one process, so stopping is one thing: uvicorn's graceful
shutdown (the app's lifespan closes its connectors and database), then the simulators' context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

from demokit.demo.events import department_pushback, department_tokens, provincial_platform
from demokit.demo.steps import (
    DEMO_CITIZEN_COUNT,
    DemoFile,
    Scenario,
    choose_scenario,
    create_demo_tokens,
    demo_settings,
    population_info,
    prepare_database,
    read_demo_file,
    start_simulators,
    sync_certificates,
    write_demo_file,
)
from gateway.settings import Settings


class DemoError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


def bind_socket(host: str, port: int) -> socket.socket:
    """The gateway's listening socket, bound before anything else starts (a taken port fails fast)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DemoError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port") from None
    sock.set_inheritable(True)
    return sock


class StopFlag:
    """SIGINT/SIGTERM before and after serving set a flag instead of killing the process half-way.

    While uvicorn serves it installs its own handlers; when it returns it re-raises the signal it caught, which
    lands here (a no-op), so the process ends with exit status 0 after a clean shutdown.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


#: Where the departments' webhook receiver line goes in the banner (known only once the gateway serves).
BANNER_WEBHOOKS = "  webhooks       …"


@contextlib.contextmanager
def standard_error_to(path: Path) -> Iterator[None]:
    """Send this process's standard error (file descriptor 2: the gateway's JSON log lines, uvicorn's messages) to
    ``path`` (appended, mode 0600: the lines hold no personal data, but they are the operator's) until the block
    ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def banner(settings: Settings, demo: DemoFile, scenario: Scenario, demo_path: Path, *, started_in: float) -> str:
    """What the demo prints once it serves: where things are and how to try them."""
    base = demo.base_url
    citizen = scenario.citizens[0]
    item = scenario.item
    tok = f'$(python3 -c \'import json;print(json.load(open("{demo_path}"))["tokens"]["clerk"])\')'
    body = (
        f'{{"item_code": "{item.code}", "applicant": {{"id_number": "{citizen.id_number}", '
        f'"name": "{citizen.name}", "phone": "13800000000"}}, "consent": true, '
        f'"accept": {"true" if item.accept_without_uploads else "false"}}}'
    )
    lines = [
        "",
        f"OneWindow (一窗通) demo is up in {started_in:.1f} s",
        f"  gateway        {base}",
        f"  API docs       {base}/schema/swagger   (OpenAPI: {base}/schema/openapi.json)",
        f"  citizen page   {base}/track   (办件编号 + 查询码, as printed on the receipt)",
        f"  staff console  {base}/console   (sign in with a token from the file below)",
        f"  health         {base}/health/ready   (metrics: {base}/metrics)",
        f"  departments    {', '.join(f'{code} {url}' for code, url in demo.simulators.items())}",
        BANNER_WEBHOOKS,
        f"  tokens etc.    {demo_path}  (mode 0600: tokens for {', '.join(demo.tokens)}; the grid)",
        f"  data dir       {settings.data_dir}",
        f"  gateway log    {settings.data_dir / 'logs' / 'gateway.log'}   (JSON lines: tail -f it to watch requests)",
        "",
        f"File {item.name} ({item.code}) for {citizen.name} at the clerk's window ({scenario.clerk_unit});",
        "the materials the departments hold come back prefilled:",
        "",
        f"  TOKEN={tok}",
        f'  curl -s {base}/api/v1/applications -H "Authorization: Bearer $TOKEN" \\',
        f"       -H 'Content-Type: application/json' -d '{body}'",
        "",
        "Then track it as the citizen would, with the tracking_number and query_code from that answer:",
        "",
        f"  curl -s '{base}/api/v1/track/<tracking_number>?code=<query_code>'",
        "",
        "The simulated departments that can push (all but health and natural_resources) hear of each accepted case",
        "by webhook and push their results back: such a case moves on to 审查中, 办结 and 已送达 by itself within",
        "seconds, and the tracking answer shows each step.",
        "",
        "Ctrl-C stops the gateway and the department simulators.",
        "",
    ]
    return "\n".join(lines)


async def run_demo(settings: Settings, *, out: TextIO = sys.stdout, stop: StopFlag | None = None) -> int:
    """Start everything, serve until asked to stop, stop everything. Returns the exit status."""
    import uvicorn

    from gateway.app import create_app

    stop = stop or StopFlag()
    started = time.monotonic()
    sock = bind_socket(settings.host, settings.port)
    try:
        async with contextlib.AsyncExitStack() as stack:
            print("Starting the department simulators …", file=out, flush=True)
            sims = await stack.enter_async_context(start_simulators(settings.host, settings.port, settings.data_dir))
            settings = demo_settings(settings, sims)
            settings = await stack.enter_async_context(provincial_platform(settings))
            db = await prepare_database(settings)
            stack.push_async_callback(db.dispose)
            population = population_info(sims)
            previous = read_demo_file(settings.data_dir)
            full = previous is None or previous.population != population
            print(
                f"Syncing certificates from the departments ({'full' if full else 'incremental'}) …",
                file=out,
                flush=True,
            )
            summary = await sync_certificates(settings, db, full=full)
            print(
                f"  {summary.fetched} fetched, {summary.stored} stored "
                f"({', '.join(f'{code} {n}' for code, n in summary.departments.items())}); "
                "revoked, expired or badly signed ones are not stored as valid",
                file=out,
                flush=True,
            )
            for error in summary.errors:
                print(f"  warning: {error}", file=out, flush=True)
            from catalog.loader import cached_catalog

            catalog = cached_catalog(settings.config_dir)
            scenario = choose_scenario(catalog, sims.demo_citizens(DEMO_CITIZEN_COUNT))
            tokens = await create_demo_tokens(db, scenario)
            push_tokens = await department_tokens(db, settings)
            await db.dispose()
            demo = DemoFile(
                base_url=f"http://{_display_host(settings.host)}:{settings.port}",
                tokens=tokens,
                officer_department=scenario.officer_department,
                citizens=scenario.citizens,
                units={"clerk": scenario.clerk_unit, "clerk_other_unit": scenario.other_unit},
                item=scenario.item,
                simulators=sims.urls,
                population=population,
                created_at=dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
                grid=scenario.grid,
            )
            demo_path = write_demo_file(settings.data_dir, demo)
            if stop.requested:
                return 0
            # The gateway's own JSON log lines go to a file, not between the banner's lines on the terminal.
            log_path = settings.data_dir / "logs" / "gateway.log"
            stack.enter_context(standard_error_to(log_path))
            app = create_app(settings)
            config = uvicorn.Config(
                app,
                log_level="warning",
                http="httptools",
                lifespan="on",
                timeout_graceful_shutdown=5,
                proxy_headers=False,  # X-Forwarded-For is the gateway's to read (Settings.trusted_proxies)
            )
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            # uvicorn offers a flag, not an event, for "listening and lifespan started"
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if server.started:
                # The webhook line is part of the banner: subscribe first, then print it all at once.
                subscribed = io.StringIO()
                await stack.enter_async_context(
                    department_pushback(demo.base_url, tokens["admin"], push_tokens, settings, subscribed)
                )
                text = banner(settings, demo, scenario, demo_path, started_in=time.monotonic() - started)
                print(text.replace(BANNER_WEBHOOKS, subscribed.getvalue().rstrip("\n")), file=out, flush=True)
            await serving
            if not server.started:
                raise DemoError(f"the gateway did not start (see {log_path})")
            print("Stopping …", file=out, flush=True)
    finally:
        sock.close()
    print("Stopped.", file=out, flush=True)
    return 0


__all__ = ["DemoError", "StopFlag", "banner", "bind_socket", "run_demo"]
