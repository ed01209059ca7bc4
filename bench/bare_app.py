"""The baseline: a bare Litestar endpoint with no database, no auth, no middleware of ours.

It answers the same path shape and the same body as the public tracking lookup — a prebuilt
`gateway.tracking.schemas.TrackView` of a fresh case (status names and the clock included: 670-odd bytes), encoded
per request as the gateway encodes its own — so that the comparison in `bench/tracking_bench.py` measures what the
gateway adds (routing in a larger app, the rate limiter, the database read, decryption and masking), not JSON size
or shape. Served with ``--factory bench.bare_app:create_bare_app``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Litestar, get
from litestar.params import FromPath, QueryParameter

from gateway.cases.clock import ClockView
from gateway.cases.views import ItemRef
from gateway.tracking.schemas import TimelineEntry, TrackView

_AT = dt.datetime(2026, 3, 2, 9, 14, 3, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))


#: A fresh case's answer, as the lookup gives it (two timeline entries, the clock), built once: the handler only
#: encodes it — the same structs and encoder work as the gateway's answer, none of its reading or checking.
_ANSWER = TrackView(
    tracking_number="43030220261206000001M",
    item=ItemRef(code="0107001100", name="出生登记"),
    status="accepted",
    status_name="已受理",
    deadline=dt.date(2026, 3, 3),
    timeline=[
        TimelineEntry(status="draft", at=_AT, status_name="已接件"),
        TimelineEntry(status="accepted", at=_AT, status_name="已受理"),
    ],
    applicant_name="张*",
    accepted_at=_AT,
    clock=ClockView(
        promised_days=1,
        deadline=dt.date(2026, 3, 3),
        deadline_estimated=False,
        working_days_used=0,
        working_days_left=1,
        paused=False,
        stopped=False,
        due_soon=False,
        overdue=False,
    ),
)


@get("/api/v1/track/{tracking_number:str}", sync_to_thread=False)
def track(tracking_number: FromPath[str], code: Annotated[str, QueryParameter()]) -> TrackView:
    return msgspec.structs.replace(_ANSWER, tracking_number=tracking_number)


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[track, live], debug=False)
