"""Evaluations collected on the resident's behalf (a paper form a grid worker brings back), under the same rules as
the citizen's own: only after completion, one per case (一次一评), a bad review opens its rectification.

Other domains do not import this module: `gateway.app` hands `PaperEvaluations` to the grid domain, which calls it
inside its own transaction (the grid task is completed in the same commit as the evaluation).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import WorkingCalendar
from gateway import audit
from gateway.cases.tables import applications
from gateway.events import outbox, types
from gateway.problems import Conflict, NotFound
from gateway.storage.database import locked
from gateway.storage.metadata import new_id
from gateway.tracking.rectifications import open_rectification
from gateway.tracking.schemas import BAD_REVIEW_MAX_LEVEL, EvaluationIn
from gateway.tracking.services import TrackingService
from gateway.tracking.tables import evaluations


class PaperEvaluations:
    """Record a paper evaluation in the caller's transaction; the id of the new evaluation."""

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar

    async def __call__(
        self,
        conn: AsyncConnection,
        application_id: str,
        level: int | None,
        comment: str,
        *,
        actor: str,
        collected_by: str,
        now: dt.datetime,
    ) -> str:
        level, clean, _ = TrackingService._validate(EvaluationIn(level=level, comment=comment))
        current = (
            await conn.execute(locked(select(applications).where(applications.c.id == application_id), conn))
        ).first()
        if current is None:
            raise NotFound(f"No application {application_id!r}.")
        TrackingService._check_evaluable(current.status)
        taken = (
            await conn.execute(select(evaluations.c.id).where(evaluations.c.application_id == application_id))
        ).first()
        if taken is not None:
            raise Conflict("This case has already been evaluated (one evaluation per case).")
        evaluation_id = new_id()
        await conn.execute(
            evaluations.insert().values(
                id=evaluation_id, application_id=application_id, level=level, comment=clean, created_at=now
            )
        )
        # Announced like the citizen's own evaluation, marked as collected on paper by the grid.
        await outbox.emit(
            conn,
            types.EVALUATION_CREATED,
            current,
            {"evaluation_id": evaluation_id, "level": level, "channel": "paper"},
        )
        rectification = None
        if level <= BAD_REVIEW_MAX_LEVEL:
            rectification = await open_rectification(conn, self.calendar, current, evaluation_id, level, now)
        await audit.append(
            conn,
            actor=actor,
            action="evaluation.submitted",
            object_type="application",
            object_id=application_id,
            purpose=f"application:{application_id}",
            detail={
                "level": level,
                "channel": "paper",
                "collected_by": collected_by,
                "rectification": rectification.id if rectification else None,
            },
        )
        return evaluation_id


__all__ = ["PaperEvaluations"]
