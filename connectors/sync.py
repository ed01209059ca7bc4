"""The sync engine: department -> mapped -> verified -> a `CertificateSink` (the gateway's store).

- `sync_department` pages through a department's bulk list (incrementally from the sink's saved cursor unless
  ``full``), verifies every certificate, and hands each page to the sink in one ``accept`` call. A page reaches
  the sink only when all of it decoded and mapped, so a department failing mid-way never leaves half a page
  stored; the report then carries the classified error. Rejected certificates go to the sink too, flagged by
  their `Verification`, so the store can record why they were refused; they are never valid.
- The incremental cursor is the largest ``updated_at`` seen, saved only after a complete run (the department
  returns records changed strictly after it; saving mid-run could skip records sharing a timestamp).
- Fetching, verifying and storing overlap: a page's verification starts as soon as it is mapped, up to
  ``PAGES_AHEAD + 1`` pages ahead of the one being stored; with ``verify_processes`` on the pool, verification runs
  in worker processes, i.e. on the other cores.
- A record that cannot be decoded or mapped never costs its page: it goes to the sink as a `QuarantinedRecord`
  (field, value kind, rule — never the value) with the rest of its page, and the run goes on. When the share of
  such records among those received passes the department's ``[quality] max_rejected_share``, the report says
  ``degraded`` and the sink records the run's quality (`DepartmentQuality`) for ``connectors check`` and
  readiness.
- `fetch_holder` is the intake's live pull; `probe` is ``onewindow connectors check``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from connectors.client import ConnectorPool, ListSample, Page, PageStream
from connectors.errors import ConnectorError
from connectors.mapping import MappedRecord, QuarantinedRecord
from connectors.model import Certificate, FetchedCertificate, Verification
from connectors.spec import DepartmentSpec
from connectors.trust import TrustStore
from connectors.verifier import Verifier


class StoredCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What the sink did with one batch."""

    stored: int = 0  # valid certificates inserted or updated
    rejected: int = 0  # rejected certificates recorded as such
    unchanged: int = 0


class DepartmentQuality(msgspec.Struct, frozen=True, kw_only=True):
    """How much of what one sync run received had to be rejected, and whether that makes the department degraded."""

    department: str
    received: int
    quarantined: int
    max_rejected_share: float
    at: dt.datetime

    @property
    def share(self) -> float:
        return self.quarantined / self.received if self.received else 0.0

    @property
    def degraded(self) -> bool:
        return self.share > self.max_rejected_share


class CertificateSink(Protocol):
    """Where synced certificates go (the gateway implements it over its database)."""

    async def accept(
        self, batch: Sequence[FetchedCertificate], quarantined: Sequence[QuarantinedRecord] = ()
    ) -> StoredCounts:
        """One page: its certificates and its rejected records, stored together."""

    async def record_quality(self, quality: DepartmentQuality) -> None:
        """Remember the last run's rejected share (called after every run that received records)."""

    async def cursor(self, department: str) -> str | None:
        """The saved incremental-sync cursor (an ISO 8601 datetime), or None for a first run."""

    async def save_cursor(self, department: str, cursor: str) -> None: ...


class SyncProgress(Protocol):
    def __call__(self, department: str, fetched: int, pages: int) -> None: ...


class SyncReport(msgspec.Struct, kw_only=True):
    """One department's outcome; the first five fields are the ``connectors sync --json`` entry (docs/api.md)."""

    code: str
    fetched: int = 0
    stored: int = 0
    rejected: int = 0
    errors: list[str] = []
    #: Records that could not be decoded or mapped, stored as rejections (`QuarantinedRecord`).
    quarantined: int = 0
    #: ``quarantined`` / records received; ``degraded`` when above the department's ``max_rejected_share``.
    rejected_share: float = 0.0
    degraded: bool = False
    #: Rejections by verification status (``bad_signature``, ``revoked``, …).
    rejections: dict[str, int] = {}
    #: Quarantined records by unified field (``issue_date``, ``(record)``, ``(page)`` …).
    quarantine: dict[str, int] = {}
    pages: int = 0
    full: bool = False
    since: str | None = None
    cursor: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


class ProbeResult(msgspec.Struct, kw_only=True):
    """``onewindow connectors check`` for one department."""

    code: str
    ok: bool
    health: bool = False
    list: bool = False
    breaker: str = "closed"
    milliseconds: float = 0.0
    error: str | None = None
    error_kind: str | None = None
    #: The first record of the list call, mapped (personal fields included: callers mask before showing it).
    sample: Certificate | None = None
    #: Why that record could not be mapped, when it could not.
    sample_rejection: QuarantinedRecord | None = None


def verify_record(
    trust: TrustStore,
    spec: DepartmentSpec,
    record: MappedRecord,
    *,
    fetched_at: dt.datetime,
    today: dt.date,
    expected_holder: str | None = None,
) -> FetchedCertificate:
    """A mapped record with its verification: trust store checks plus "does this department issue this type"."""
    certificate = record.certificate
    if not certificate.type_key:
        verification = _unknown_type(spec, certificate)
    else:
        verification = trust.verify(certificate, expected_holder=expected_holder, today=today, department=spec.code)
    return FetchedCertificate(
        certificate=certificate,
        source_department=spec.code,
        fetched_at=fetched_at,
        verification=verification,
        source_updated_at=record.updated_at,
    )


def _parse_cursor(cursor: str | None) -> dt.datetime | None:
    if not cursor:
        return None
    try:
        return dt.datetime.fromisoformat(cursor)
    except ValueError:
        return None  # an unreadable cursor means a full sync, never a crash


_END = object()
#: Pages fetched (and verifying) ahead of the one being stored, per department, besides the one the fetcher holds.
PAGES_AHEAD = 2


async def sync_department(
    pool: ConnectorPool,
    code: str,
    sink: CertificateSink,
    *,
    since: dt.datetime | None = None,
    full: bool = False,
    progress: SyncProgress | None = None,
    today: dt.date | None = None,
    page_size: int | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> SyncReport:
    """Pull one department into ``sink``. Never raises a `ConnectorError`: failures land in ``report.errors``."""
    started = time.perf_counter()
    report = SyncReport(code=code, full=full)
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    try:
        spec = pool.spec(code)
        client = pool.client(code)
        if not full and since is None:
            since = _parse_cursor(await sink.cursor(code))
        report.since = since.isoformat() if since else None
        stream = client.pages(since=since, page_size=page_size)
        try:
            newest = await _run(pool, spec, stream, sink, report, since, now, today, progress)
        finally:
            await _record_quality(sink, spec, report, now())
        stop = getattr(stream, "stop_reason", "end")
        if stop not in ("", "end"):
            report.errors.append(f"[{code}] paging: {stop}")
        elif newest is not None and newest != since:
            report.cursor = newest.isoformat()
            await sink.save_cursor(code, report.cursor)
    except ConnectorError as exc:
        report.errors.append(str(exc))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _record_quality(sink: CertificateSink, spec: DepartmentSpec, report: SyncReport, at: dt.datetime) -> None:
    received = report.fetched + report.quarantined
    quality = DepartmentQuality(
        department=spec.code,
        received=received,
        quarantined=report.quarantined,
        max_rejected_share=spec.quality.max_rejected_share,
        at=at,
    )
    report.rejected_share = round(quality.share, 4)
    report.degraded = quality.degraded
    if received:  # an incremental run that found nothing new says nothing about the department's records
        await sink.record_quality(quality)


def _unknown_type(spec: DepartmentSpec, certificate: Certificate) -> Verification:
    return Verification(
        status="untrusted_issuer",
        reason=f"type code {certificate.type_code} is not a type {spec.code} issues",
        key_id=certificate.signature.key_id if certificate.signature else None,
    )


async def _verify_page(
    verifier: Verifier, spec: DepartmentSpec, page: Page, fetched_at: dt.datetime, today: dt.date
) -> list[FetchedCertificate]:
    certificates = [r.certificate for r in page.records]
    verdicts = await verifier.verify_batch(certificates, department=spec.code, today=today)
    return [
        FetchedCertificate(
            certificate=record.certificate,
            source_department=spec.code,
            fetched_at=fetched_at,
            verification=verdict if record.certificate.type_key else _unknown_type(spec, record.certificate),
            source_updated_at=record.updated_at,
        )
        for record, verdict in zip(page.records, verdicts, strict=True)
    ]


async def _run(
    pool: ConnectorPool,
    spec: DepartmentSpec,
    stream: PageStream,
    sink: CertificateSink,
    report: SyncReport,
    since: dt.datetime | None,
    now: Callable[[], dt.datetime],
    today: dt.date | None,
    progress: SyncProgress | None,
) -> dt.datetime | None:
    # Two stages joined by a bounded queue. The fetcher pulls, decodes and maps page n+k and starts its
    # verification at once (in the worker processes when the pool has them), so up to PAGES_AHEAD + 1 pages verify
    # while the storer writes page n; the storer takes pages strictly in order. Failures travel down the queue in
    # order, so every page before a failure is stored and none after it.
    pages: asyncio.Queue[object] = asyncio.Queue(maxsize=PAGES_AHEAD)
    tz = spec.mapping.tzinfo() if spec.mapping else dt.UTC
    verifying: list[asyncio.Future[list[FetchedCertificate]]] = []

    async def fetch_stage() -> None:
        try:
            async for page in stream:
                fetched_at = now()
                day = today or fetched_at.astimezone(tz).date()
                verification = asyncio.ensure_future(_verify_page(pool.verifier, spec, page, fetched_at, day))
                verifying.append(verification)
                await pages.put((verification, page.quarantined))
        except Exception as exc:  # handed on, so the storer never waits for a page that will not come
            await pages.put(exc)
        else:
            await pages.put(_END)

    newest = since
    rejections = dict(report.rejections)
    fetcher = asyncio.create_task(fetch_stage())
    try:
        while True:
            item = await pages.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            future, quarantined = item
            batch: list[FetchedCertificate] = await future
            verifying.remove(future)
            for fetched in batch:
                status = fetched.verification.status
                if status != "valid":
                    rejections[status] = rejections.get(status, 0) + 1
                updated = fetched.source_updated_at
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
            report.fetched += len(batch)
            report.rejected = sum(rejections.values())
            report.rejections = rejections
            report.pages += 1
            if quarantined:
                report.quarantined += len(quarantined)
                for q in quarantined:
                    report.quarantine[q.field] = report.quarantine.get(q.field, 0) + 1
            if batch or quarantined:
                counts = await sink.accept(batch, quarantined)
                report.stored += counts.stored
            if progress is not None:
                progress(spec.code, report.fetched, report.pages)
    finally:
        fetcher.cancel()
        for verification in verifying:
            verification.cancel()
        tasks: list[asyncio.Future[Any]] = [fetcher, *verifying]
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:  # noqa: S110 - a page after the failure that ended the run: never stored
                pass
    return newest


async def sync_all(
    pool: ConnectorPool,
    sink: CertificateSink,
    codes: Sequence[str] | None = None,
    *,
    full: bool = False,
    progress: SyncProgress | None = None,
) -> list[SyncReport]:
    """Every (or the named) department, concurrently; one report each, in the order of ``codes``.

    Department failures are in the reports; an exception (the sink failing) is raised once every department has
    stopped, so no sync is left running behind the caller's back.
    """
    selected = list(codes) if codes else pool.codes
    results = await asyncio.gather(
        *(sync_department(pool, c, sink, full=full, progress=progress) for c in selected), return_exceptions=True
    )
    reports: list[SyncReport] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        reports.append(result)
    return reports


def _codes_for(spec: DepartmentSpec, types: Sequence[str]) -> list[str]:
    """Type keys or official type codes -> the codes this department issues (others dropped)."""
    issued = set(spec.types.values())
    codes: list[str] = []
    for t in types:
        c = spec.types.get(t, t)
        if c in issued and c not in codes:
            codes.append(c)
    return codes


async def fetch_holder(
    pool: ConnectorPool,
    code: str,
    holder_id: str,
    type_codes: Sequence[str] = (),
    *,
    today: dt.date | None = None,
) -> list[FetchedCertificate]:
    """Live pull of one holder's certificates from one department (intake lookup).

    ``type_codes`` may hold type keys or official type codes; types this department does not issue are ignored
    (and when none is left, nothing is asked). Raises `ConnectorError` subclasses; the caller bounds the time.
    Certificates of another holder come back flagged ``wrong_holder``.
    """
    spec = pool.spec(code)
    codes = _codes_for(spec, type_codes)
    if type_codes and not codes:
        return []
    records = await pool.client(code).holder(holder_id, codes)
    fetched_at = dt.datetime.now(dt.UTC)
    day = today or fetched_at.astimezone(spec.mapping.tzinfo() if spec.mapping else dt.UTC).date()
    return [
        verify_record(pool.trust, spec, r, fetched_at=fetched_at, today=day, expected_holder=holder_id) for r in records
    ]


async def probe(pool: ConnectorPool, code: str) -> ProbeResult:
    """Health endpoint, then one authenticated minimal list call."""
    started = time.perf_counter()
    result = ProbeResult(code=code, ok=False)
    try:
        client = pool.client(code)
        await client.check_health()
        result.health = True
        sample = await client.check_list()
        result.list = True
        result.ok = True
        if isinstance(sample, ListSample):
            result.sample = sample.record.certificate if sample.record is not None else None
            result.sample_rejection = sample.quarantined
    except ConnectorError as exc:
        result.error = str(exc)
        result.error_kind = exc.kind
    try:
        result.breaker = await pool.client(code).breaker_state()
    except ConnectorError:
        result.breaker = "unknown"
    result.milliseconds = round((time.perf_counter() - started) * 1000, 1)
    return result
