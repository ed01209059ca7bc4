"""Which errors mean "the database is unreachable or out of connections right now" — a 503 to retry, not a 500.

The database server stopped, restarting or refusing connections (too many clients, shutting down), a connection
dropped under a query, the pool's wait for a free connection running out (``database_pool_timeout_seconds``),
SQLite's file locked past its busy timeout or unreadable, a write transaction that waited past its turn for SQLite's
one writer (`DatabaseBusy`): each is a state of the deployment, not a defect of the request, and the same request
succeeds once it passes. Constraint violations, syntax errors and the like are not in this family: they stay 500s
and are logged with their stack.

`log_failed_round` is how a background loop (scheduled jobs, the event dispatcher, audit checkpoints…) reports a
round that failed: one warning line for this family, since the next round retries and every round of a busy or
absent database would log the same stack; anything else with its stack, as the defect it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc

from gateway.problems import ServiceUnavailable


class DatabaseBusy(ServiceUnavailable):
    """A write transaction waited too long for its turn (SQLite's single writer is busy)."""


#: asyncpg errors that mean the server or the connection is not there (classes 08, 53300, 57P0x, and the client's).
_ASYNCPG_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 admin shutdown and its kin
    asyncpg.exceptions.InterfaceError,  # connection closed, in a bad state
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, or an error it wraps, says the database cannot serve now."""
    for error in _chain(exc):
        if isinstance(error, DatabaseBusy):
            return True
        if isinstance(error, sa_exc.TimeoutError):  # the pool's wait for a connection ran out
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(error, _ASYNCPG_DOWN):
            return True
        if isinstance(error, ConnectionError | TimeoutError):  # refused, reset, or the connect timed out
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, what it wraps (``orig``, cause, context) and the members of exception groups, each once."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack and len(seen) < 20:
        error = stack.pop()
        if any(error is s for s in seen):
            continue
        seen.append(error)
        if isinstance(error, BaseExceptionGroup):
            stack.extend(error.exceptions)
        orig = getattr(error, "orig", None)
        for inner in (orig, error.__cause__, error.__context__):
            if isinstance(inner, BaseException):
                stack.append(inner)
    return seen


def log_failed_round(
    log: logging.Logger, what: str, exc: BaseException, *, extra: Mapping[str, object] | None = None
) -> None:
    """Log that a background round (``what``: "grid task catch-up", say) failed with ``exc``; the caller goes on.
    ``extra``: structured fields of the log line (a job's name and slot, say)."""
    if database_unavailable(exc):
        log.warning(
            "%s skipped: the database is busy or unavailable (%s); the next round retries",
            what,
            type(exc).__name__,
            extra=extra,
        )
    else:
        log.error("%s failed", what, exc_info=exc, extra=extra)


__all__ = ["DatabaseBusy", "database_unavailable", "log_failed_round"]
