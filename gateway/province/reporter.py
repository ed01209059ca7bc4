"""Reporting the history to the provincial platform: at least once, in order per case, retried with back-off,
never lost.

Each round:

1. **discover** — every history row without a delivery state gets one (``pending``; a draft's rows ``skipped``).
   The history is written in the transaction of each change, so a row a crash left undiscovered is found the next
   round: nothing depends on a process having seen the change happen.
2. **report** — the due rows (``pending``, ``next_attempt_at`` passed, no lease held) that are the earliest pending
   row of their case are claimed one by one (a conditional update takes a lease, so several reporter processes never
   send the same row at once), built into the national record, sent, and marked ``sent``, or given their next
   attempt time: ``initial_backoff`` × 2^(attempts-1), at most ``max_backoff``, plus up to a quarter at random. A
   later step of a case waits for the earlier one, so the platform receives each case's steps in order.
   When the platform is unreachable or answers 5xx the round ends there (the others keep their turn).

A report may reach the platform twice (sent, then a crash before ``sent`` was written): the record id is the history
row's id, by which the platform deduplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import msgspec
from litestar import Litestar
from sqlalchemy import Select, bindparam, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from yarl import URL

from catalog.calendar import local_time
from catalog.catalog import Catalog
from connectors.auth import RequestAuth, build_request_auth
from gateway.cases.tables import application_history
from gateway.context import AppContext, context_of
from gateway.province.reconcile import Reconciliation, reconcile
from gateway.province.records import build_record, record_kind, to_platform
from gateway.province.tables import province_reports
from gateway.province.target import PlatformError, ProvinceTarget, TargetError, load_target
from gateway.storage.database import Database
from gateway.storage.faults import log_failed_round
from gateway.storage.metadata import utcnow

log = logging.getLogger("onewindow.province")

_ENCODER = msgspec.json.Encoder()
#: A claimed row is the claimer's for this long (seconds); a reporter that died mid-send loses it afterwards.
LEASE_SECONDS = 60.0
DISCOVER_LIMIT = 1000


def _due_query() -> Select[Any]:
    """The rows due for sending, oldest first, each the earliest pending row of its case (parameters ``now`` and
    ``limit``; built once: per round, its alias and column collections left reference cycles behind)."""
    r = province_reports
    now = bindparam("now", type_=r.c.next_attempt_at.type)
    earlier = r.alias("earlier")
    waiting_for_earlier = exists().where(
        earlier.c.application_id == r.c.application_id,
        earlier.c.state == "pending",
        earlier.c.position < r.c.position,
    )
    return (
        select(r.c.history_id)
        .where(
            r.c.state == "pending",
            r.c.next_attempt_at <= now,
            or_(r.c.lease_until.is_(None), r.c.lease_until < now),
            ~waiting_for_earlier,
        )
        .order_by(r.c.next_attempt_at, r.c.created_at)
        .limit(bindparam("limit"))
    )


_DUE = _due_query()


class RoundResult(msgspec.Struct, kw_only=True):
    discovered: int = 0
    sent: int = 0
    failed: int = 0

    def add(self, other: RoundResult) -> None:
        self.discovered += other.discovered
        self.sent += other.sent
        self.failed += other.failed


class ProvinceReporter:
    def __init__(
        self,
        *,
        database: Database,
        target: ProvinceTarget,
        catalog: Catalog,
        session: aiohttp.ClientSession,
        environ: Mapping[str, str] | None = None,
        now: Callable[[], dt.datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.db = database
        self.target = target
        self.catalog = catalog
        self.session = session
        self.now = now
        self.jitter = jitter
        self._auth: RequestAuth = build_request_auth(target.auth, environ=environ)
        self._records_url = target.url(target.records_path)
        self._timeout = aiohttp.ClientTimeout(
            total=target.timeouts.total, sock_connect=target.timeouts.connect, sock_read=target.timeouts.read
        )

    # -- discovery -------------------------------------------------------------------------------------------
    async def discover(self) -> int:
        h, r = application_history, province_reports
        query = (
            select(h.c.id, h.c.application_id, h.c.position, h.c.status, h.c.from_status)
            .select_from(h.outerjoin(r, r.c.history_id == h.c.id))
            .where(r.c.history_id.is_(None), h.c.status != "draft")
            .order_by(h.c.at, h.c.position)
            .limit(DISCOVER_LIMIT)
        )
        now = self.now()
        try:
            async with self.db.transaction() as conn:
                rows = list(await conn.execute(query))
                if not rows:
                    return 0
                values = []
                for row in rows:
                    kind = record_kind(row.status, row.from_status)
                    values.append(
                        {
                            "history_id": row.id,
                            "application_id": row.application_id,
                            "position": row.position,
                            "kind": kind or "none",
                            "state": "pending" if kind else "skipped",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "lease_until": None,
                            "last_error": None,
                            "created_at": now,
                            "sent_at": None,
                        }
                    )
                await conn.execute(insert(r), values)
        except IntegrityError:  # another reporter discovered the same rows first: theirs stand
            return 0
        return len(values)

    # -- reporting -------------------------------------------------------------------------------------------
    async def _due(self, limit: int) -> list[str]:
        async with self.db.read() as conn:
            return [row.history_id for row in await conn.execute(_DUE, {"now": self.now(), "limit": limit})]

    async def _claim(self, history_id: str) -> bool:
        r = province_reports
        now = self.now()
        async with self.db.transaction() as conn:
            claimed = await conn.execute(
                update(r)
                .where(
                    r.c.history_id == history_id,
                    r.c.state == "pending",
                    or_(r.c.lease_until.is_(None), r.c.lease_until < now),
                )
                .values(lease_until=now + dt.timedelta(seconds=LEASE_SECONDS))
            )
            return claimed.rowcount == 1

    async def _payload(self, history_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(application_history).where(application_history.c.id == history_id))).one()
            record = await build_record(conn, row, self.target, self.catalog)
        return to_platform(record, self.target)

    async def send(self, payload: Mapping[str, Any]) -> None:
        """POST one record; `PlatformError` unless the platform's envelope says it was taken."""
        body = _ENCODER.encode(payload)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        await self._auth.apply("POST", URL(self._records_url).path, "", body, headers)
        try:
            async with self.session.post(
                self._records_url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.content.read(64 * 1024)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PlatformError(f"unreachable: {type(exc).__name__}", unavailable=True) from None
        if status >= 500 or status == 429:
            raise PlatformError(f"HTTP {status}", unavailable=True)
        try:
            envelope = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise PlatformError(f"HTTP {status}: the answer is not JSON", unavailable=False) from None
        code = str(envelope.get(self.target.result_code)) if isinstance(envelope, dict) else ""
        if status != 200 or code != self.target.result_ok:
            message = envelope.get("message", "") if isinstance(envelope, dict) else ""
            raise PlatformError(f"HTTP {status}, code {code}: {str(message)[:200]}", unavailable=False)

    def backoff(self, attempts: int) -> float:
        retry = self.target.retry
        base = min(retry.max_backoff, retry.initial_backoff * 2.0 ** max(attempts - 1, 0))
        return float(base * (1 + 0.25 * self.jitter()))

    async def _settle(self, history_id: str, error: str | None) -> None:
        r = province_reports
        now = self.now()
        async with self.db.transaction() as conn:
            attempts = (await conn.execute(select(r.c.attempts).where(r.c.history_id == history_id))).scalar_one() + 1
            values: dict[str, Any] = {"attempts": attempts, "lease_until": None}
            if error is None:
                values |= {"state": "sent", "sent_at": now, "last_error": None}
            else:
                values |= {
                    "last_error": error[:300],
                    "next_attempt_at": now + dt.timedelta(seconds=self.backoff(attempts)),
                }
            await conn.execute(update(r).where(r.c.history_id == history_id).values(**values))

    async def report_once(self) -> RoundResult:
        """One round: discover, then send what is due (at most ``retry.batch``)."""
        result = RoundResult(discovered=await self.discover())
        for history_id in await self._due(self.target.retry.batch):
            if not await self._claim(history_id):
                continue
            try:
                await self.send(await self._payload(history_id))
            except PlatformError as exc:
                await self._settle(history_id, str(exc))
                result.failed += 1
                log.warning("provincial report %s failed: %s", history_id, exc)
                if exc.unavailable:
                    break
            except Exception:  # a record that cannot be built waits its back-off; the others go on
                log.exception("provincial report %s could not be built", history_id)
                await self._settle(history_id, "internal error while building the record")
                result.failed += 1
            else:
                await self._settle(history_id, None)
                result.sent += 1
        return result

    async def drain(self, max_rounds: int = 10_000) -> RoundResult:
        """Rounds until one sends nothing (each case's next step becomes due once the one before it is sent)."""
        total = RoundResult()
        for _ in range(max_rounds):
            result = await self.report_once()
            total.add(result)
            if result.sent == 0:
                break
        return total


@contextlib.asynccontextmanager
async def open_reporter(
    context: AppContext, *, environ: Mapping[str, str] | None = None
) -> AsyncIterator[ProvinceReporter | None]:
    """A reporter on the context's database and the configured platform; None when there is none (no file, or
    ``enabled = false``)."""
    settings = context.settings
    try:
        target = load_target(settings.config_dir, settings.province_url)
    except TargetError as exc:
        log.error("the provincial platform file is invalid; cases are not reported: %s", exc)
        target = None
    if target is None or not target.enabled:
        yield None
        return
    async with aiohttp.ClientSession() as session:
        yield ProvinceReporter(
            database=context.database, target=target, catalog=context.catalog, session=session, environ=environ
        )


async def run_province_reporter(context: AppContext, *, stop: asyncio.Event | None = None) -> None:
    """Report cases to the provincial platform until ``stop`` is set (or the task is cancelled): a drain every
    ``settings.province_interval_seconds``. For ``serve`` / ``demo`` (`province_reporter_lifespan`) and for a
    worker process; several may run at once."""
    stop = stop or asyncio.Event()
    interval = context.settings.province_interval_seconds
    async with open_reporter(context) as reporter:
        if reporter is None:
            log.info("no provincial platform configured: cases are not reported")
            await stop.wait()
            return
        daily = DailyReconciliation()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                break
            try:
                await reporter.drain()
                await daily(reporter)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed round is logged and retried next time; the task must keep running
                log_failed_round(log, "provincial reporting round", exc)  # busy (intake first) or down: one line


class DailyReconciliation:
    """Once a local day (from 02:00, when yesterday's steps have had time to arrive): yesterday's reconciliation,
    its differences logged as warnings. When the platform does not answer, tried again an hour later."""

    RETRY_AFTER = dt.timedelta(hours=1)

    def __init__(self) -> None:
        self.done: dt.date | None = None
        self.next_try: dt.datetime | None = None

    async def __call__(self, reporter: ProvinceReporter) -> Reconciliation | None:
        now = reporter.now()
        local = local_time(now)
        day = local.date() - dt.timedelta(days=1)
        if self.done == day or local.hour < 2 or (self.next_try is not None and now < self.next_try):
            return None
        try:
            result = await reconcile(reporter.db, reporter.target, day, session=reporter.session)
        except PlatformError as exc:
            self.next_try = now + self.RETRY_AFTER
            log.warning("provincial reconciliation of %s: the platform did not answer (%s)", day, exc)
            return None
        self.done, self.next_try = day, None
        for diff in result.differences:
            log.warning(
                "provincial reconciliation of %s: %s: ours %d, platform %d", day, diff.status, diff.ours, diff.theirs
            )
        return result


@contextlib.asynccontextmanager
async def province_reporter_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs `run_province_reporter` while the application lives (``settings.province_reporting``; in a process
    that runs the background jobs, ``jobs_in_process``)."""
    context = context_of(app)
    if not (context.settings.province_reporting and context.settings.jobs_in_process):
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_province_reporter(context, stop=stop), name="onewindow-province-reporter")
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = [
    "LEASE_SECONDS",
    "DailyReconciliation",
    "PlatformError",
    "ProvinceReporter",
    "RoundResult",
    "open_reporter",
    "province_reporter_lifespan",
    "run_province_reporter",
]
