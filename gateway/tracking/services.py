"""Public tracking by tracking number + query code, and the citizen's evaluation (好差评) after completion.

Anti-enumeration: an unknown number and a wrong code give the same 404 body, and every such failure is counted
per client address (`gateway.stores.FailureLimiter`); a blocked client gets 429 with ``Retry-After``. A client
that only makes correct lookups is never counted, and its lookups never wait for the limiter's store
(`FailureLimiter.check_success`).

A lookup never decrypts: the masked name was stored at intake. The query code is compared by its keyed hash.
The lookup is the gateway's hottest path, so it does the least it can: one prepared read (`TIMELINE`, which
`Database.fetch_keyed` answers together with the other lookups of the same moment: on SQLite on the event loop's
thread, those of one turn of the loop; on PostgreSQL those queued up behind queries in flight) and the keyed-hash
comparison.

A bad review opens a rectification in the same transaction (`gateway.tracking.rectifications`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, ColumnElement, Select, String, any_, bindparam, exists, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import WorkingCalendar, local_time
from gateway import audit
from gateway.cases import clock, numbers
from gateway.cases.machine import COMPLETED, STATUS_NAMES
from gateway.cases.tables import application_history, applications
from gateway.cases.views import ItemRef
from gateway.events import outbox, types
from gateway.privacy import FieldCipher, mask_text
from gateway.problems import Conflict, FieldError, NotFound, Problem, Unprocessable
from gateway.storage.database import Database, locked
from gateway.storage.metadata import new_id, utcnow
from gateway.storage.prepared import KeyedRead, PreparedRead, ReadRow
from gateway.stores import FailureLimiter
from gateway.tracking.rectifications import open_rectification
from gateway.tracking.schemas import (
    BAD_REVIEW_MAX_LEVEL,
    COMMENT_MAX_CHARS,
    LEVEL_NAMES,
    Dimensions,
    EvaluationIn,
    EvaluationOut,
    RectificationRef,
    TimelineEntry,
    TrackView,
)
from gateway.tracking.tables import evaluations

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


def _timeline_query(number: ColumnElement[bool]) -> Select[Any]:
    """The case joined to its history, by tracking number (``number``: the condition on it)."""
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
            a.c.promised_days,
            a.c.paused_on,
            a.c.days_left_at_pause,
            a.c.stopped_on,
            evaluated.label("evaluated"),
            h.c.status.label("h_status"),
            h.c.at.label("h_at"),
        )
        .join(h, h.c.application_id == a.c.id)
        .where(number)
        .order_by(h.c.position)
    )


#: The public lookup's one read, built once: `Database.fetch_keyed` runs the one-number form inline on SQLite (with
#: ``IN (…)`` for the lookups of one turn of the event loop), and on PostgreSQL the many-numbers form (``= ANY``)
#: for the lookups that queued up behind queries in flight (their rows split back by ``tracking_number``). Nothing
#: is kept between lookups: citizens do not repeat one lookup the way a benchmark does.
TIMELINE = KeyedRead(
    PreparedRead(_timeline_query(applications.c.tracking_number == bindparam("number")), name="tracking.timeline"),
    PreparedRead(
        _timeline_query(applications.c.tracking_number == any_(bindparam("numbers", type_=ARRAY(String)))),
        name="tracking.timeline.batch",
    ),
    column="tracking_number",
)


class EarlyRead(NamedTuple):
    """What the public lookup's front door (`gateway.tracking.lookup`) read before it handed a request on to the
    route: `TIMELINE`'s rows for the normalised ``number``, or the error the read raised. The route answers from
    it instead of reading again, so a lookup is read (and a failure counted) once."""

    number: str
    rows: list[ReadRow]
    error: Exception | None = None


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
        if self.limiter is not None:
            await self.limiter.fail(client)
        return no_match()

    async def _check_client(self, client: str) -> None:
        if self.limiter is not None:
            await self.limiter.check(client)

    # -- lookup ----------------------------------------------------------------------------------------------
    async def track(
        self, tracking_number: str, code: str | None, *, client: str, early: EarlyRead | None = None
    ) -> TrackView:
        """The citizen's view of a case. One indexed query (the case joined to its history): the public lookup is
        the gateway's hottest path. ``early``: what the front door already read for this request."""
        number = numbers.normalise_tracking_number(tracking_number)
        query_code = numbers.normalise_query_code(code or "")
        rows: list[ReadRow] = []
        # Malformed input never reaches the database, but answers exactly like a wrong code.
        if _NUMBER_SHAPE.match(number) is not None and numbers.is_query_code(query_code):
            if early is not None and early.number == number:
                if early.error is not None:
                    raise early.error
                rows = early.rows
            else:
                rows = await self.db.fetch_keyed(TIMELINE, number)
        if not self._matches(number, query_code, rows):
            raise await self._fail(client)
        if self.limiter is not None:
            await self.limiter.check_success(client)
        return self._view(rows)

    def _matches(self, number: str, query_code: str, rows: list[ReadRow]) -> bool:
        return bool(rows) and numbers.query_code_matches(self.cipher, number, query_code, rows[0].query_code_hash)

    def correct_view(self, number: str, query_code: str, rows: list[ReadRow], *, client: str) -> TrackView | None:
        """The front door's answer (`gateway.tracking.lookup`; ``number`` and ``query_code`` normalised and
        well-shaped, ``rows`` `TIMELINE`'s for ``number``): the view when the code matches and the failure limiter
        need not be asked (`FailureLimiter.success_needs_check`), else ``None`` — `track` answers then."""
        if not self._matches(number, query_code, rows):
            return None
        if self.limiter is not None and self.limiter.success_needs_check(client):
            return None
        return self._view(rows)

    def _view(self, rows: list[ReadRow]) -> TrackView:
        row = rows[0]
        evaluated = bool(row.evaluated)
        state = clock.clock_state(row)
        clock_view = clock.view(self.calendar, state, local_time(self.now()).date()) if state else None
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
            clock=clock_view,
        )

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
                # Concurrent submissions for one case queue on its row (PostgreSQL): the second finds the first's
                # evaluation and answers 409; the unique index is the last line of defence.
                query = select(applications).where(applications.c.id == row.id)
                current = (await conn.execute(locked(query, conn))).first()
                if current is None:  # purged meanwhile (only drafts are, so not a case that can be evaluated)
                    raise no_match()
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
                await outbox.emit(
                    conn, types.EVALUATION_CREATED, current, {"evaluation_id": evaluation_id, "level": level}
                )
                if level <= BAD_REVIEW_MAX_LEVEL:
                    rectification = await open_rectification(conn, self.calendar, current, evaluation_id, level, now)
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
                extra={"current_status": status, "allowed": sorted(COMPLETED)},
            )


__all__ = ["CITIZEN_ACTOR", "NO_MATCH", "TIMELINE", "EarlyRead", "NoMatch", "TrackingService", "no_match"]
