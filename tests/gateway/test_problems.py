"""Problem bodies (gateway/problems.py): the standard members always say what RFC 9457 says they say."""

from __future__ import annotations

import logging

import msgspec
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from gateway.problems import EXCEPTION_HANDLERS, STANDARD_MEMBERS, Conflict, problem_body


def test_extras_never_replace_or_fill_in_standard_members(caplog: pytest.LogCaptureFixture) -> None:
    problem = Conflict("Not from here.").to_problem("/things/1")
    extra = {
        "status": "accepted",
        "type": "elsewhere",
        "title": "x",
        "detail": "y",
        "instance": "/z",
        "errors": [{"field": "a", "message": "b"}],
        "current_status": "accepted",
        "allowed": ["in_review"],
    }
    with caplog.at_level(logging.WARNING, logger="onewindow.problems"):
        body = msgspec.json.decode(problem_body(problem, extra))
    assert body == {
        "type": "https://onewindow.invalid/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "Not from here.",
        "instance": "/things/1",
        "current_status": "accepted",
        "allowed": ["in_review"],
    }
    # `errors` was absent and stays absent: an extra does not fill in a standard member either.
    assert {"type", "title", "status", "detail", "instance", "errors"} == STANDARD_MEMBERS
    assert sum("ignored" in r.getMessage() for r in caplog.records) == 6


def test_a_conflict_over_http_keeps_its_status_number() -> None:
    @get("/case")
    async def case() -> None:
        raise Conflict("Only a draft can be accepted.", extra={"status": "accepted", "allowed": ["in_review"]})

    with TestClient(Litestar([case], exception_handlers=EXCEPTION_HANDLERS)) as client:
        response = client.get("/case")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 409 and body["allowed"] == ["in_review"] and "current_status" not in body
