"""`onewindow worker`: every background job of a serving process without serving HTTP — event delivery
(`gateway.events`), the provincial reporter (`gateway.province`), the scheduled reports and grid tasks, the
purges — by running the application's own lifespans with ``jobs_in_process`` on, so a worker runs exactly what
``serve`` would run in-process.

Several may run at once, beside any number of ``serve --no-jobs`` processes: each delivery and report step is
claimed by one of them at a time, and each scheduled slot by one process (`gateway.scheduling`). With Redis, the
events it delivers reach every serving process's live stream through Redis pub/sub. SIGTERM or Ctrl-C stops it
after the round in flight (exit 0).
"""

from __future__ import annotations

import argparse

from gateway.commands.support import add_settings_options, command_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run the background jobs (events, provincial reports, schedules) without HTTP")
    add_settings_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    import msgspec

    from gateway.app import create_app

    settings = command_settings(args, "worker")
    if settings is None:
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        app = create_app(msgspec.structs.replace(settings, jobs_in_process=True))
        async with app.lifespan():
            print("onewindow worker: running the background jobs (Ctrl-C stops)", flush=True)
            await stop.wait()

    asyncio.run(main())
    return 0
