"""The benchmarks' baseline answers what the public lookup answers, at its size: a ratio against a smaller body
would flatter or blame the gateway for JSON it does not write."""

from __future__ import annotations

import msgspec
from litestar.testing import TestClient

from bench.bare_app import create_bare_app
from gateway.tracking.schemas import TrackView


def test_the_baseline_answers_a_lookups_body_for_the_number_asked() -> None:
    with TestClient(create_bare_app()) as client:
        response = client.get("/api/v1/track/43030220261206000002X", params={"code": "4S7357XD"})
    assert response.status_code == 200
    body = msgspec.json.decode(response.content, type=TrackView)  # it decodes as the gateway's own answer
    assert body.tracking_number == "43030220261206000002X"
    assert [e.status_name for e in body.timeline] == ["已接件", "已受理"] and body.clock is not None
    # A fresh case's answer (two timeline entries, microsecond timestamps) is 670-690 bytes.
    assert 640 <= len(response.content) <= 720, len(response.content)
