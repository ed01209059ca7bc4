"""Outages answered as outages: when the database or the fast store cannot serve, a request answers 503
problem+json with ``Retry-After`` — never a 500, never a stack trace — and the same request succeeds once they are
back, without restarting the gateway (the drills in tests/drills/ stop each one mid-run).

`outage_or_unexpected` replaces the catch-all handler of `gateway.problems`: an unexpected exception that
`gateway.storage.faults.database_unavailable` or `gateway.stores.faults.store_unavailable` recognises becomes a 503
(logged as one warning line naming the error's type, since every request during an outage would log the same
stack); anything else stays the logged 500.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response

from gateway.problems import EXCEPTION_HANDLERS, ServiceUnavailable, problem_response
from gateway.storage.faults import database_unavailable
from gateway.stores.faults import store_unavailable

log = logging.getLogger("onewindow.outages")

#: What a client is told to wait before retrying (seconds): a restarting database is usually back within seconds.
RETRY_AFTER_SECONDS = 2

_unexpected = EXCEPTION_HANDLERS[Exception]


def outage_problem(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for an outage of the database or the fast store, or None when ``exc`` is not one."""
    if database_unavailable(exc):
        what = "The database is unavailable"
    elif store_unavailable(exc):
        what = "The shared store is unavailable"
    else:
        return None
    return ServiceUnavailable(f"{what}; retry shortly.", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def outage_or_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    problem = outage_problem(exc)
    if problem is None:
        response: Response[bytes] = _unexpected(request, exc)
        return response
    log.warning("%s %s answered 503: %s (%s)", request.method, request.url.path, problem.detail, type(exc).__name__)
    return problem_response(problem.to_problem(request.url.path), problem.headers)


#: The gateway's exception handlers: `gateway.problems`' with the catch-all replaced.
OUTAGE_AWARE_HANDLERS: dict[type[Exception] | int, Any] = {**EXCEPTION_HANDLERS, Exception: outage_or_unexpected}

__all__ = ["OUTAGE_AWARE_HANDLERS", "RETRY_AFTER_SECONDS", "outage_or_unexpected", "outage_problem"]
