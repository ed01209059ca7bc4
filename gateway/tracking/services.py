"""Public tracking by tracking number + query code, evaluation (好差评) after completion, and the rectification
tasks that bad reviews open.

Anti-enumeration: an unknown number and a wrong code give the same 404 body, and every such failure is counted
per client address (`gateway.stores.FailureLimiter`); a blocked client gets 429 with ``Retry-After``. A client
that only makes correct lookups is never counted.

A lookup never decrypts: the masked name was stored at intake. The query code is compared by its keyed hash.

The lookup is the gateway's hottest path, so it does the least it can: one prepared read (`TIMELINE`, run by
`Database.fetch` on the event loop's thread on SQLite), the keyed-hash comparison, and the limiter only where it
can matter. A failed lookup always consults it: 429 while the client is blocked, else the failure is counted (in
Redis, across processes, when configured). A correct lookup consults it only when this process has seen a failure
from the client within the window (`_RecentFailures`), so the citizens' lookups never wait for the store:

* in-process store: exact — the store knows no failure that the hint does not;
* shared store (Redis, several processes): a client blocked by failures made through other processes is answered
  429 by this one from its first failure here on (every failure asks the store first); only correct lookups that
  reach this process before any failure of that client does are answered without asking. An enumerating client
  fails almost every time, so that is at most about one unchecked lookup per process and window, while every
  citizen's correct lookup is spared a Redis round trip (~0.2 ms of CPU here, more than the rest of the lookup).

On SQLite the read is answered again while nothing has been committed (`PreparedRead.reuse`), and then the view
built from those very rows is returned again too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, bindparam, exists, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import WorkingCalendar
from gateway import audit
from gateway.identity.principal import Principal
from gateway.intake.cases import local_date, local_time
from gateway.intake.schemas import ItemRef
from gateway.intake.tables import applications
from gateway.lifecycle import clock
from gateway.lifecycle.history import clean_note
from gateway.lifecycle.machine import COMPLETED, STATUS_NAMES
from gateway.lifecycle.services import scope_filter
from gateway.lifecycle.tables import application_history
from gateway.privacy import FieldCipher, mask_text
from gateway.problems import BadRequest, Conflict, FieldError, NotFound, Problem, Unprocessable
from gateway.storage.database import Database
from gateway.storage.metadata import new_id, utcnow
from gateway.storage.prepared import PreparedRead, ReadRow
from gateway.stores import FailureLimiter
from gateway.tracking import numbers
from gateway.tracking.schemas import (
    BAD_REVIEW_MAX_LEVEL,
    COMMENT_MAX_CHARS,
    LEVEL_NAMES,
    RECTIFICATION_WORKING_DAYS,
    CloseRectification,
    Dimensions,
    EvaluationIn,
    EvaluationOut,
    RectificationRef,
    Rectifications,
    RectificationView,
    TimelineEntry,
    TrackView,
)
from gateway.tracking.tables import evaluations, rectifications

log = logging.getLogger("onewindow.tracking")

#: The one answer for an unknown number and a wrong code alike.
NO_MATCH = "No case matches this tracking number and query code."
#: The audit actor for citizens using the public lookup (they have no token).
CITIZEN_ACTOR = "citizen"


class NoMatch(NotFound):
    """The public lookup's 404: byte for byte the same whatever was wrong (no ``instance`` echoing the path)."""

    def to_problem(self, instance: str | None = None) -> Problem:
        return super().to_problem(None)


def no_match() -> NoMatch:
    return NoMatch(NO_MATCH)


#: The shape of a tracking number (division, date, sequence, check character). Only the shape is checked before
#: the read: a well-shaped number with a wrong date or check character finds no case, so it answers the same 404
#: (and counts as the same failure) as it would without reading, and a correct lookup skips the arithmetic.
_NUMBER_SHAPE = re.compile(r"^\d{20}[0-9A-Z]$")

#: Views remembered per service (the app's public one lives as long as the app).
_VIEW_MEMO_MAX = 1024

#: Beyond this many clients with a failure in the window the hint stops answering "no failures" (every lookup
#: asks the limiter) until they have expired.
_RECENT_MAX_CLIENTS = 10_000


class _RecentFailures:
    """The clients this process recorded a failed lookup for, each until its failure leaves the limiter's window.

    Keys are ``hash(client)`` (salted per process, never stored): a collision only makes a lookup ask the
    limiter when it need not. Entries are dropped only by `note`'s sweep, never on read, so threads (one event
    loop each) sharing a limiter cannot lose one another's entries.
    """

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until: dict[int, float] = {}

    def note(self, client: str, window_s: float) -> None:
        now = time.monotonic()
        if len(self.until) >= _RECENT_MAX_CLIENTS:
            for key in [k for k, t in self.until.items() if t <= now]:
                self.until.pop(key, None)
        self.until[hash(client)] = now + window_s

    def may_be_blocked(self, client: str) -> bool:
        if len(self.until) >= _RECENT_MAX_CLIENTS:
            return True
        until = self.until.get(hash(client))
        return until is not None and until > time.monotonic()


#: One hint per limiter (by identity), shared by every `TrackingService` built on it (they are built per request).
_recent_by_limiter: dict[int, _RecentFailures] = {}


def _timeline_query() -> Select[Any]:
    """The case joined to its history, by tracking number (the ``number`` parameter)."""
    a, h = applications, application_history
    evaluated = exists().where(evaluations.c.application_id == a.c.id)
    return (
        select(
            a.c.tracking_number,
            a.c.query_code_hash,
            a.c.item_code,
            a.c.item_name,
            a.c.status,
            a.c.deadline,
            a.c.deadline_estimated,
            a.c.applicant_name_masked,
            a.c.accepted_at,
            evaluated.label("evaluated"),
            h.c.status.label("h_status"),
            h.c.at.label("h_at"),
        )
        .join(h, h.c.application_id == a.c.id)
        .where(a.c.tracking_number == bindparam("number"))
        .order_by(h.c.position)
    )


#: The public lookup's one read, built once (`Database.fetch` runs it inline on SQLite).
TIMELINE = PreparedRead(_timeline_query(), name="tracking.timeline", reuse=True)


class TrackingService:
    def __init__(
        self,
        *,
        database: Database,
        calendar: WorkingCalendar,
        cipher: FieldCipher,
        limiter: FailureLimiter | None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.calendar = calendar
        self.cipher = cipher
        self.limiter = limiter
        self.now = now
        #: The last view per tracking number with the first row it was built from (views are never mutated).
        self._views: dict[str, tuple[ReadRow, TrackView]] = {}
        self._recent: _RecentFailures | None = None
        if limiter is not None:
            self._recent = _recent_by_limiter.get(id(limiter)) or _recent_by_limiter.setdefault(
                id(limiter), _RecentFailures()
            )

    # -- verification --------------------------------------------------------------------------------------
    async def _verified(self, conn: AsyncConnection, tracking_number: str, code: str | None) -> Row[Any] | None:
        number = numbers.normalise_tracking_number(tracking_number)
        query_code = numbers.normalise_query_code(code or "")
        # Malformed input never reaches the database, but answers exactly like a wrong code.
        if numbers.tracking_number_problem(number) is not None or not numbers.is_query_code(query_code):
            return None
        row = (await conn.execute(select(applications).where(applications.c.tracking_number == number))).first()
        if row is None or not numbers.query_code_matches(self.cipher, number, query_code, row.query_code_hash):
            return None
        return row

    async def _fail(self, client: str) -> NoMatch:
        """The uniform 404 after counting the failure — or 429 when the client is blocked already (not counted)."""
        limiter, recent = self.limiter, self._recent
        if limiter is not None and recent is not None:
            recent.note(client, limiter.window_ms / 1000)  # first: from now on this client's lookups ask the store
            await limiter.check(client)
            wait = await limiter.record_failure(client)
            if wait is not None:
                log.warning("tracking lookups from one client blocked for %d s after repeated failures", wait)
        return no_match()

    async def _check_succeeded(self, client: str) -> None:
        """Before answering a correct lookup: 429 while the client is blocked."""
        limiter, recent = self.limiter, self._recent
        if limiter is not None and (recent is None or recent.may_be_blocked(client)):
            await limiter.check(client)

    async def _check_client(self, client: str) -> None:
        if self.limiter is not None:
            await self.limiter.check(client)

    # -- lookup ----------------------------------------------------------------------------------------------
    async def track(self, tracking_number: str, code: str | None, *, client: str) -> TrackView:
        """The citizen's view of a case. One indexed query (the case joined to its history): the public lookup is
        the gateway's hottest path."""
        number = numbers.normalise_tracking_number(tracking_number)
        query_code = numbers.normalise_query_code(code or "")
        rows: list[ReadRow] = []
        # Malformed input never reaches the database, but answers exactly like a wrong code.
        if _NUMBER_SHAPE.match(number) is not None and numbers.is_query_code(query_code):
            rows = await self.db.fetch(TIMELINE, number=number)
        if not rows or not numbers.query_code_matches(self.cipher, number, query_code, rows[0].query_code_hash):
            raise await self._fail(client)
        await self._check_succeeded(client)
        row = rows[0]
        memo = self._views.get(number)
        if memo is not None and memo[0] is row:
            # The very rows of the last lookup (the read was answered again because nothing was committed since):
            # the same view. The memo holds the row, so no new row can reuse its identity.
            return memo[1]
        view = self._view(rows)
        if self.db.inline is not None:  # rows are only ever answered again by SQLite's inline reader
            if len(self._views) >= _VIEW_MEMO_MAX:
                del self._views[next(iter(self._views))]
            self._views[number] = (row, view)
        return view

    @staticmethod
    def _view(rows: list[ReadRow]) -> TrackView:
        row = rows[0]
        evaluated = bool(row.evaluated)
        return TrackView(
            tracking_number=row.tracking_number,
            item=ItemRef(code=row.item_code, name=row.item_name),
            status=row.status,
            status_name=STATUS_NAMES.get(row.status, row.status),
            deadline=row.deadline,
            deadline_estimated=bool(row.deadline_estimated),
            timeline=[
                TimelineEntry(status=r.h_status, at=local_time(r.h_at), status_name=STATUS_NAMES.get(r.h_status, ""))
                for r in rows
            ],
            applicant_name=row.applicant_name_masked,
            accepted_at=local_time(row.accepted_at) if row.accepted_at else None,
            can_evaluate=row.status in COMPLETED and not evaluated,
            evaluated=evaluated,
        )

    @staticmethod
    def _timeline_query(number: str) -> Select[Any]:
        """The lookup's statement for one number, with the number bound (`track` itself runs TIMELINE)."""
        return TIMELINE.statement.params(number=number)

    # -- evaluation ------------------------------------------------------------------------------------------
    @staticmethod
    def _validate(body: EvaluationIn) -> tuple[int, str, Dimensions | None]:
        errors: list[FieldError] = []
        if body.level is None:
            errors.append(FieldError("level", "is required: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意"))
        elif not 1 <= body.level <= 5:
            errors.append(FieldError("level", f"must be 1..5, got {body.level}"))
        comment = " ".join(body.comment.split())
        if len(comment) > COMMENT_MAX_CHARS:
            errors.append(FieldError("comment", f"is too long (at most {COMMENT_MAX_CHARS} characters)"))
        if body.level is not None and body.level <= BAD_REVIEW_MAX_LEVEL and not comment:
            errors.append(FieldError("comment", "is required with a bad review: say what went wrong, so it is fixed"))
        dims = body.dimensions
        if dims is not None:
            for name in ("overall", "efficiency", "service", "attitude"):
                value = getattr(dims, name)
                if value is not None and not 1 <= value <= 5:
                    errors.append(FieldError(f"dimensions.{name}", f"must be 1..5, got {value}"))
        if errors:
            raise Unprocessable("The evaluation is not complete.", errors=errors)
        assert body.level is not None
        return body.level, mask_text(comment), dims

    async def evaluate(
        self, tracking_number: str, code: str | None, body: EvaluationIn, *, client: str
    ) -> EvaluationOut:
        """Record the citizen's one evaluation of a completed case; a bad one opens a rectification task."""
        async with self.db.read() as conn:
            row = await self._verified(conn, tracking_number, code)
        if row is None:
            raise await self._fail(client)
        await self._check_client(client)
        level, comment, dims = self._validate(body)
        now = self.now()
        evaluation_id = new_id()
        rectification: RectificationRef | None = None
        try:
            async with self.db.transaction() as conn:
                current = (await conn.execute(select(applications).where(applications.c.id == row.id))).first()
                assert current is not None
                self._check_evaluable(current.status)
                if (
                    await conn.execute(select(evaluations.c.id).where(evaluations.c.application_id == row.id))
                ).first() is not None:
                    raise Conflict("This case has already been evaluated (one evaluation per case).")
                await conn.execute(
                    evaluations.insert().values(
                        id=evaluation_id,
                        application_id=row.id,
                        level=level,
                        comment=comment,
                        overall=dims.overall if dims else None,
                        efficiency=dims.efficiency if dims else None,
                        service=dims.service if dims else None,
                        attitude=dims.attitude if dims else None,
                        created_at=now,
                    )
                )
                if level <= BAD_REVIEW_MAX_LEVEL:
                    rectification = await self._open_rectification(conn, current, evaluation_id, level, now)
                await audit.append(
                    conn,
                    actor=CITIZEN_ACTOR,
                    action="evaluation.submitted",
                    object_type="application",
                    object_id=row.id,
                    purpose=f"application:{row.id}",
                    detail={"level": level, "rectification": rectification.id if rectification else None},
                )
        except IntegrityError:
            # Two submissions at once: the unique index let one through.
            raise Conflict("This case has already been evaluated (one evaluation per case).") from None
        return EvaluationOut(
            id=evaluation_id,
            tracking_number=row.tracking_number,
            level=level,
            level_name=LEVEL_NAMES[level],
            comment=comment,
            dimensions=dims,
            created_at=local_time(now),
            rectification=rectification,
        )

    @staticmethod
    def _check_evaluable(status: str) -> None:
        if status not in COMPLETED:
            raise Conflict(
                f"The case can be evaluated once it is completed; it is {status}.",
                extra={"status": status, "allowed": sorted(COMPLETED)},
            )

    async def _open_rectification(
        self, conn: AsyncConnection, app: Row[Any], evaluation_id: str, level: int, now: dt.datetime
    ) -> RectificationRef:
        due = clock.start(self.calendar, local_date(now), RECTIFICATION_WORKING_DAYS)
        rectification_id = new_id()
        await conn.execute(
            rectifications.insert().values(
                id=rectification_id,
                application_id=app.id,
                evaluation_id=evaluation_id,
                status="open",
                level=level,
                item_code=app.item_code,
                department=app.department,
                handling_unit=app.handling_unit,
                opened_at=now,
                due_on=due.deadline,
                due_estimated=due.deadline_estimated,
            )
        )
        await audit.append(
            conn,
            actor="system",
            action="rectification.opened",
            object_type="rectification",
            object_id=rectification_id,
            purpose=f"application:{app.id}",
            detail={"level": level, "due_on": due.deadline.isoformat()},
        )
        return RectificationRef(id=rectification_id, due_on=due.deadline, due_estimated=due.deadline_estimated)

    # -- supervision -----------------------------------------------------------------------------------------
    async def rectifications(self, principal: Principal, *, status: str = "open") -> Rectifications:
        if status not in ("open", "closed", "all"):
            raise BadRequest(
                f"Unknown status {status!r}.", errors=[FieldError("status", "must be open, closed or all")]
            )
        today = local_date(self.now())
        query = (
            select(
                rectifications,
                applications.c.tracking_number,
                applications.c.item_name,
                evaluations.c.comment,
            )
            .join(applications, applications.c.id == rectifications.c.application_id)
            .join(evaluations, evaluations.c.id == rectifications.c.evaluation_id)
            .order_by(rectifications.c.due_on, rectifications.c.opened_at)
        )
        if status != "all":
            query = query.where(rectifications.c.status == status)
        scope = scope_filter(principal)
        if scope is not None:
            query = query.where(scope)
        async with self.db.read() as conn:
            rows = list(await conn.execute(query))
        items = []
        for r in rows:
            left = self.calendar.working_days_between(today, r.due_on)
            items.append(
                RectificationView(
                    id=r.id,
                    application_id=r.application_id,
                    tracking_number=r.tracking_number or "",
                    item=ItemRef(code=r.item_code, name=r.item_name),
                    department=r.department,
                    unit=r.handling_unit,
                    level=r.level,
                    level_name=LEVEL_NAMES.get(r.level, str(r.level)),
                    comment=r.comment,
                    status=r.status,
                    opened_at=local_time(r.opened_at),
                    due_on=r.due_on,
                    due_estimated=bool(r.due_estimated),
                    working_days_left=left,
                    overdue=r.status == "open" and today > r.due_on,
                    closed_at=local_time(r.closed_at) if r.closed_at else None,
                    outcome=r.outcome,
                )
            )
        return Rectifications(items=items, total=len(items))

    async def close_rectification(
        self, principal: Principal, rectification_id: str, body: CloseRectification
    ) -> RectificationView:
        """Close a rectification with what was done and what the follow-up call (回访) found."""
        outcome = clean_note(body.outcome)
        if not outcome:
            raise Unprocessable(
                "Say how the complaint was rectified.",
                errors=[FieldError("outcome", "is required: what was done and the result of the follow-up call")],
            )
        now = self.now()
        async with self.db.transaction() as conn:
            row = (await conn.execute(select(rectifications).where(rectifications.c.id == rectification_id))).first()
            if row is None:
                raise NotFound(f"No rectification {rectification_id!r}.")
            if row.status != "open":
                raise Conflict("This rectification is already closed.", extra={"status": row.status, "allowed": []})
            await conn.execute(
                update(rectifications)
                .where(rectifications.c.id == rectification_id)
                .values(status="closed", closed_at=now, closed_by=principal.actor, outcome=outcome)
            )
            await audit.append(
                conn,
                actor=principal.actor,
                role=principal.role.value,
                action="rectification.closed",
                object_type="rectification",
                object_id=rectification_id,
                purpose=f"application:{row.application_id}",
            )
        listing = await self.rectifications(principal, status="all")
        for item in listing.items:
            if item.id == rectification_id:
                return item
        raise NotFound(f"No rectification {rectification_id!r}.")  # pragma: no cover - just written


__all__ = ["CITIZEN_ACTOR", "NO_MATCH", "NoMatch", "TrackingService", "no_match"]
