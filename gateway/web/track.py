"""``/track``: the citizen's status page, in Chinese, with or without JavaScript.

- ``GET /track`` is the form (fields ``tracking_number`` and ``code``). The receipt's QR code opens
  ``/track#n=…&c=…``: the fragment never leaves the browser, and ``track.js`` copies it into the form, removes it
  from the address bar and submits — so the query code travels only in a POST body, never in a URL or a log.
- ``POST /track`` answers the status page, or — for an unknown number and a wrong code alike — the same
  "no match" page, counted by the API's failure limiter (429 page once the client is blocked).
- ``POST /track/evaluation`` records the 好差评 once the case is completed (the tracking service's rules).

Every answer is ``no-store`` with ``Referrer-Policy: no-referrer``: the pages carry a tracking number.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response.base import ASGIResponse

from gateway.identity.auth import EXCLUDE_KEY
from gateway.problems import Conflict, NotFound, TooManyRequests, Unprocessable
from gateway.tracking.controllers import client_address, public_tracking
from gateway.tracking.schemas import (
    BAD_REVIEW_MAX_LEVEL,
    COMMENT_MAX_CHARS,
    LEVEL_NAMES,
    RECTIFICATION_WORKING_DAYS,
    Dimensions,
    EvaluationIn,
    TrackView,
)
from gateway.web.rendering import fast_page

#: The window dimensions a citizen rates besides the overall level (each 1..5).
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("overall", "整体评价"),
    ("efficiency", "办事效率"),
    ("service", "服务质量"),
    ("attitude", "服务态度"),
)
#: Statuses in which the clock is stopped, with the words the page says about it.
PAUSED_WORDS = {
    "correction_required": "等待您补齐补正材料，办理时限暂停计算；材料补齐后继续计算剩余工作日。",
    "special_procedure": "本件进入特别程序（如听证、检验、专家评审），办理时限暂停计算。",
}
_FIELD_MAX = 64


def _field(form: Any, name: str, limit: int = _FIELD_MAX) -> str:
    value = form.get(name) or ""
    return value[:limit] if isinstance(value, str) else ""


def _level(form: Any, name: str) -> int | None:
    raw = _field(form, name, 2)
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 5 else None


def _context(view: TrackView | None, **extra: Any) -> dict[str, Any]:
    return {
        "view": view,
        "paused_words": PAUSED_WORDS,
        "levels": sorted(LEVEL_NAMES.items(), reverse=True),
        "dimensions": DIMENSIONS,
        "comment_max": COMMENT_MAX_CHARS,
        "bad_max": BAD_REVIEW_MAX_LEVEL,
        "rectification_days": RECTIFICATION_WORKING_DAYS,
        "number": "",
        "code": "",
        "errors": [],
        "evaluation": None,
        "message": None,
    } | extra


@get("/track", opt={EXCLUDE_KEY: True}, include_in_schema=False, name="web:track")
async def track_form() -> ASGIResponse:
    return fast_page("track.html", _context(None))


@post("/track", opt={EXCLUDE_KEY: True}, include_in_schema=False, status_code=200)
async def track_lookup(request: Request[Any, Any, Any]) -> ASGIResponse:
    form = await request.form()
    number, code = _field(form, "tracking_number").strip(), _field(form, "code")
    try:
        view = await public_tracking(request).track(number, code, client=client_address(request))
    except NotFound:
        return fast_page("track.html", _context(None, number=number, message="no_match"), status_code=404)
    except TooManyRequests as exc:
        return fast_page("track.html", _context(None, message="blocked"), status_code=429, headers=exc.headers)
    return fast_page("track.html", _context(view, number=view.tracking_number, code=code))


@post("/track/evaluation", opt={EXCLUDE_KEY: True}, include_in_schema=False, status_code=200)
async def track_evaluate(request: Request[Any, Any, Any]) -> ASGIResponse:
    form = await request.form()
    number, code = _field(form, "tracking_number").strip(), _field(form, "code")
    dims = {name: _level(form, name) for name, _ in DIMENSIONS}
    body = EvaluationIn(
        level=_level(form, "level"),
        comment=_field(form, "comment", COMMENT_MAX_CHARS + 1),
        dimensions=Dimensions(**dims) if any(v is not None for v in dims.values()) else None,
    )
    service = public_tracking(request)
    client = client_address(request)
    try:
        outcome = await service.evaluate(number, code, body, client=client)
    except NotFound:
        return fast_page("track.html", _context(None, number=number, message="no_match"), status_code=404)
    except TooManyRequests as exc:
        return fast_page("track.html", _context(None, message="blocked"), status_code=429, headers=exc.headers)
    except (Unprocessable, Conflict) as exc:
        view = await service.track(number, code, client=client)
        errors = [e.message for e in exc.errors or []] or [exc.detail]
        status = 422 if isinstance(exc, Unprocessable) else 409
        return fast_page(
            "track.html",
            _context(view, number=number, code=code, errors=[_chinese(e) for e in errors]),
            status_code=status,
        )
    view = await service.track(number, code, client=client)
    return fast_page("track.html", _context(view, number=number, code=code, evaluation=outcome))


def _chinese(message: str) -> str:
    """The evaluation's validation messages, said to a citizen."""
    if "bad review" in message:
        return "选择“不满意”或“非常不满意”时，请写明遇到的问题，以便我们整改。"
    if "already been evaluated" in message:
        return "本件已经评价过（一事一评）。"
    if "is required" in message:
        return "请选择满意程度。"
    if "too long" in message:
        return f"意见请控制在 {COMMENT_MAX_CHARS} 字以内。"
    if "completed" in message:
        return "办结后才能评价。"
    return "评价未能提交，请检查后重试。"


__all__ = ["track_evaluate", "track_form", "track_lookup"]
