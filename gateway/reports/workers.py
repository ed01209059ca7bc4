"""Report figures computed in a separate process, so a serving process's event loop never carries them.

Computing a month for every unit reads and folds the whole period — seconds at a million cases, mostly Python
work. On the loop that answers clerks and citizens that would hold every request for as long; in a thread it would
still take the interpreter lock from that loop. So a serving process computes reports in one child process of its
own (`ReportWorkers`): started with ``spawn`` on first use (a fresh interpreter: nothing of the server's sockets,
connections or loop is inherited), at a lower CPU priority (nice 10), with the parent's settings and its own
database connections. It reads only; the parent stores what it returns (`ReportService.generate`), so the one
writer path and the immutability rules stay where they are. One child per process bounds the work: requests for
several reports wait their turn instead of starting processes.

``Settings.report_processes`` = 0 computes in the serving process instead (the tests' default; the CLI command
computes in its own process anyway). A child that dies is replaced on the next request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.reports.periods import Period
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.reports.services import ReportService
    from gateway.storage.database import Database

#: The child's CPU priority relative to the serving processes (higher is lower priority).
NICENESS = 10

Bodies = dict[str, dict[str, Any]]


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(type(value))


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(kind)


def encode_settings(settings: Settings) -> bytes:
    return msgspec.json.encode(settings, enc_hook=_enc_hook)


def decode_settings(data: bytes) -> Settings:
    return msgspec.json.decode(data, type=Settings, dec_hook=_dec_hook)


class ReportWorkers:
    """The serving process's report child: ``await workers.compute(period, start, units)``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = encode_settings(settings)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self._settings,),
            )
        return self._pool

    async def compute(self, period: Period, start: dt.date, units: list[str]) -> Bodies:
        """The bodies of ``units``' reports, computed in the child (one retry on a fresh child if it died)."""
        for attempt in (1, 2):
            try:
                future = self._executor().submit(_compute, period, start.isoformat(), units)
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                self._discard()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def child_pid(self) -> int | None:
        """The child's process id, once started (for tests and diagnostics)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return next(iter(processes), None)

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the child (a computation in flight is abandoned; nothing was being written)."""
        if self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    process.terminate()
            self._discard()


# -- in the child ---------------------------------------------------------------------------------------------
_loop: asyncio.AbstractEventLoop | None = None
_service: ReportService | None = None
_database: Database | None = None


def _start(settings_json: bytes) -> None:
    global _loop, _service, _database
    from catalog.calendar import cached_calendar
    from catalog.loader import cached_catalog
    from gateway.reports.services import ReportService
    from gateway.storage.database import Database

    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    settings = decode_settings(settings_json)
    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)
    _database = Database.from_settings(settings)
    _service = ReportService(
        database=_database,
        calendar=cached_calendar(settings.config_dir),
        catalog=cached_catalog(settings.config_dir),
    )


def _compute(period: Period, start: str, units: list[str]) -> Bodies:
    assert _loop is not None and _service is not None, "the report child was not started"
    return _loop.run_until_complete(_service.compute(period, dt.date.fromisoformat(start), units))


__all__ = ["ReportWorkers", "decode_settings", "encode_settings"]
