"""`onewindow worker`: the background jobs (event delivery, its sweeps) without serving HTTP.

Several may run at once, beside any number of ``serve`` processes: each delivery is claimed by one of them at a
time (`gateway.events.dispatcher`). SIGTERM or Ctrl-C stops it after the round in flight (exit 0).
"""

from __future__ import annotations

import argparse

from gateway.commands.support import add_settings_options, command_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run the background jobs (event delivery) without HTTP")
    add_settings_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from gateway.events.jobs import run_worker

    settings = command_settings(args, "worker")
    if settings is None:
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("onewindow worker: delivering events (Ctrl-C stops)", flush=True)
        await run_worker(settings, stop)

    asyncio.run(main())
    return 0
