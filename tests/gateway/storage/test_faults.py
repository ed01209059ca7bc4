"""Which errors count as "the database cannot serve now", and how a background round that met one is logged: one
warning line (the next round retries) — never a stack trace, which is kept for defects."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.storage import DatabaseBusy
from gateway.storage.faults import database_unavailable, log_failed_round


async def test_a_busy_writer_is_the_database_not_serving_now(busy_error: DatabaseBusy) -> None:
    busy = busy_error
    assert database_unavailable(busy)
    wrapped = RuntimeError("round failed")
    wrapped.__cause__ = busy
    assert database_unavailable(wrapped)
    assert not database_unavailable(IntegrityError("INSERT …", {}, Exception("UNIQUE constraint failed")))
    assert not database_unavailable(ValueError("a defect"))


async def test_a_round_that_met_a_busy_database_logs_one_line_without_a_stack(
    busy_error: DatabaseBusy, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("onewindow.test.rounds")
    busy = busy_error
    with caplog.at_level(logging.INFO, logger="onewindow.test.rounds"):
        log_failed_round(log, "grid task catch-up", busy)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == (
        "grid task catch-up skipped: the database is busy or unavailable (DatabaseBusy); the next round retries"
    )


def test_a_round_that_met_a_defect_logs_its_stack(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("onewindow.test.rounds")
    try:
        raise KeyError("missing")
    except KeyError as exc:
        with caplog.at_level(logging.INFO, logger="onewindow.test.rounds"):
            log_failed_round(log, "scheduled reports", exc)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.getMessage() == "scheduled reports failed"
    assert record.exc_info is not None and record.exc_info[0] is KeyError
