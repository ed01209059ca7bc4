"""The baseline: a bare Litestar endpoint with no database, no auth, no middleware of ours.

It answers the same path shape and a body of the same shape and size as the public tracking lookup (the fields of
`gateway.tracking.schemas.TrackView`, status names and the clock included: 670-odd bytes, as a fresh case's answer),
so that the comparison in `bench/tracking_bench.py` measures what the gateway adds (routing in a larger app, the
rate limiter, the database read, decryption and masking), not JSON size. A test keeps the two field lists equal
(tests/bench). Served with ``--factory bench.bare_app:create_bare_app``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Litestar, get
from litestar.params import FromPath, QueryParameter


class Step(msgspec.Struct):
    status: str
    at: str
    status_name: str


class ItemRef(msgspec.Struct):
    code: str
    name: str


class Clock(msgspec.Struct):
    promised_days: int
    deadline: str
    deadline_estimated: bool
    working_days_used: int
    working_days_left: int
    paused: bool
    stopped: bool
    due_soon: bool
    overdue: bool


class Tracking(msgspec.Struct):
    tracking_number: str
    item: ItemRef
    status: str
    status_name: str
    deadline: str
    timeline: list[Step]
    applicant_name: str
    accepted_at: str
    deadline_estimated: bool
    can_evaluate: bool
    evaluated: bool
    clock: Clock


_ITEM = ItemRef(code="0107001100", name="出生登记")
_AT = "2026-03-02T09:14:03.123456+08:00"
_TIMELINE = [Step("draft", _AT, "已接件"), Step("accepted", _AT, "已受理")]
_CLOCK = Clock(
    promised_days=1,
    deadline="2026-03-03",
    deadline_estimated=False,
    working_days_used=0,
    working_days_left=1,
    paused=False,
    stopped=False,
    due_soon=False,
    overdue=False,
)


@get("/api/v1/track/{tracking_number:str}", sync_to_thread=False)
def track(tracking_number: FromPath[str], code: Annotated[str, QueryParameter()]) -> Tracking:
    return Tracking(
        tracking_number=tracking_number,
        item=_ITEM,
        status="accepted",
        status_name="已受理",
        deadline="2026-03-03",
        timeline=_TIMELINE,
        applicant_name="张*",
        accepted_at=_AT,
        deadline_estimated=False,
        can_evaluate=False,
        evaluated=False,
        clock=_CLOCK,
    )


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[track, live], debug=False)
