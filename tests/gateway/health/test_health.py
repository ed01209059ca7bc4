from __future__ import annotations

from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings


def test_live_and_ready_answer_ok(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/live").json() == {"status": "ok", "checks": {}}
        response = client.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


def test_unknown_route_is_problem_json(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/nowhere")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == 404 and body["title"] == "Not found"


def test_openapi_is_3_1(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        spec = client.get("/schema/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
        assert "/health/ready" in spec["paths"]
