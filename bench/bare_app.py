"""The baseline: a bare Litestar endpoint with no database, no auth, no middleware of ours.

It answers the same path shape and a body of the same shape and size as the public tracking lookup, so that the
comparison in `bench/tracking_bench.py` measures what the gateway adds (routing in a larger app, the rate limiter,
the database read, decryption and masking), not JSON size. Served with ``--factory bench.bare_app:create_bare_app``.
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, get


class Step(msgspec.Struct):
    status: str
    at: str


class ItemRef(msgspec.Struct):
    code: str
    name: str


class Tracking(msgspec.Struct):
    tracking_number: str
    item: ItemRef
    status: str
    deadline: str
    timeline: list[Step]
    applicant_name: str


_ITEM = ItemRef(code="430302-MZ-0001", name="最低生活保障")
_TIMELINE = [Step("draft", "2026-03-02T09:14:03+08:00"), Step("accepted", "2026-03-02T09:14:03+08:00")]


@get("/api/v1/track/{tracking_number:str}", sync_to_thread=False)
def track(tracking_number: str, code: str) -> Tracking:
    return Tracking(
        tracking_number=tracking_number,
        item=_ITEM,
        status="accepted",
        deadline="2026-03-16",
        timeline=_TIMELINE,
        applicant_name="张*",
    )


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[track, live], debug=False)
