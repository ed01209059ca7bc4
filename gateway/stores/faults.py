"""Which errors mean "the fast store (Redis) is unreachable right now": a 503 to retry, not a 500."""

from __future__ import annotations

from redis import exceptions as redis_errors

_REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # refused, reset, closed
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,  # restarting and loading its data
    redis_errors.TryAgainError,
)


def store_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, or its cause or context, says Redis cannot serve now."""
    error: BaseException | None = exc
    for _ in range(10):
        if error is None:
            return False
        if isinstance(error, _REDIS_DOWN):
            return True
        error = error.__cause__ or error.__context__
    return False


__all__ = ["store_unavailable"]
