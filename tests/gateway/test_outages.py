"""`gateway.outages`: an outage of the database or the fast store answers 503 problem+json with Retry-After; any
other unexpected error stays a 500 with nothing of its stack in the body."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_exc

from gateway.outages import OUTAGE_AWARE_HANDLERS, RETRY_AFTER_SECONDS, outage_problem
from gateway.storage.faults import database_unavailable
from gateway.stores.faults import store_unavailable


def _wrapped(inner: Exception) -> Exception:
    wrapped = sa_exc.DBAPIError.instance("SELECT 1", {}, inner, Exception)
    assert isinstance(wrapped, Exception)
    return wrapped


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.TimeoutError("QueuePool limit of size 2 overflow 0 reached"),
        sa_exc.OperationalError("SELECT 1", {}, Exception("database is locked")),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError(111, "Connect call failed"),
        ExceptionGroup("lookups", [ValueError("x"), ConnectionResetError(104, "reset")]),
    ],
    ids=lambda e: type(e).__name__,
)
def test_database_outages_are_recognised(error: BaseException) -> None:
    assert database_unavailable(error)
    try:
        raise RuntimeError("while filing") from error
    except RuntimeError as outer:
        assert database_unavailable(outer), "a wrapped outage is still one"


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        sa_exc.ProgrammingError("SELEC", {}, Exception("syntax error")),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        ValueError("a bug"),
        KeyError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_defects_are_not_outages(error: BaseException) -> None:
    assert not database_unavailable(error) and not store_unavailable(error)
    assert outage_problem(error) is None


def test_store_outages_are_recognised() -> None:
    for error in (
        redis_errors.ConnectionError("Error 111 connecting"),
        redis_errors.TimeoutError("Timeout reading"),
        redis_errors.BusyLoadingError("loading"),
    ):
        assert store_unavailable(error) and not database_unavailable(error)
        problem = outage_problem(error)
        assert problem is not None and "shared store" in problem.detail
    assert not store_unavailable(redis_errors.ResponseError("WRONGTYPE"))


_FAULTS: dict[str, Exception] = {
    "pool": sa_exc.TimeoutError("QueuePool limit of size 2 overflow 0 reached, connection timed out"),
    "pg": _wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")),
    "redis": redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    "other": sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint")),
}


def _route(name: str) -> Any:
    @get(f"/boom/{name}", sync_to_thread=False, name=f"boom-{name}")
    def boom() -> None:
        raise _FAULTS[name]

    return boom


def test_outages_answer_503_with_retry_after_and_defects_500() -> None:
    with TestClient(Litestar([_route(n) for n in _FAULTS], exception_handlers=OUTAGE_AWARE_HANDLERS)) as client:
        for kind in ("pool", "pg", "redis"):
            response = client.get(f"/boom/{kind}")
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
            body = response.json()
            assert body["status"] == 503 and body["detail"].endswith("retry shortly.")
            assert "QueuePool" not in response.text and "127.0.0.1" not in response.text
        defect = client.get("/boom/other")
        assert defect.status_code == 500 and defect.json()["status"] == 500
        assert "duplicate key" not in defect.text and "Traceback" not in defect.text
