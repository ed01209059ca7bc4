"""The benchmarks' baseline answers what the public lookup answers, field for field, at about its size: a ratio
against a smaller body would flatter or blame the gateway for JSON it does not write."""

from __future__ import annotations

import msgspec
from litestar.testing import TestClient

from bench.bare_app import Clock, Step, Tracking, create_bare_app
from gateway.cases.clock import ClockView
from gateway.tracking.schemas import TimelineEntry, TrackView


def test_the_baseline_has_the_lookups_fields() -> None:
    assert Tracking.__struct_fields__ == TrackView.__struct_fields__
    assert Step.__struct_fields__ == TimelineEntry.__struct_fields__
    assert Clock.__struct_fields__ == ClockView.__struct_fields__


def test_the_baseline_answers_a_body_of_the_lookups_size() -> None:
    with TestClient(create_bare_app()) as client:
        response = client.get("/api/v1/track/43030220261206000001M", params={"code": "4S7357XD"})
    assert response.status_code == 200
    body = msgspec.json.decode(response.content, type=TrackView)  # it decodes as the gateway's own answer
    assert body.tracking_number == "43030220261206000001M" and body.clock is not None
    # A fresh case's answer (two timeline entries, microsecond timestamps) is 670-690 bytes.
    assert 640 <= len(response.content) <= 720, len(response.content)
