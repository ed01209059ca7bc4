"""`/api/v1/catalog` over HTTP against the real app and the real catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from catalog.loader import CatalogError
from gateway.app import create_app
from gateway.settings import Settings, load_settings
from tests.catalog.test_loader import STREET_ITEM, write_config

ITEMS = "/api/v1/catalog/items"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    settings = load_settings(environ={}, data_dir=tmp_path_factory.mktemp("catalog-api") / "var")
    with TestClient(create_app(settings)) as c:
        yield c


def test_list_offers_every_item_with_contract_fields(client: TestClient[Litestar]) -> None:
    response = client.get(ITEMS)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == len(body["items"]) == 104
    item = body["items"][0]
    for field in (
        "code",
        "name",
        "level",
        "item_type",
        "department",
        "legal_basis",
        "legal_days",
        "promised_days",
        "visits",
        "online",
        "fee",
        "materials",
        "status",
    ):
        assert field in item
    assert set(item["materials"][0]) >= {"key", "name", "required", "source", "certificate_type"}


def test_filters_by_level_department_and_query(client: TestClient[Litestar]) -> None:
    assert client.get(ITEMS, params={"level": "street"}).json()["total"] == 59
    assert client.get(ITEMS, params={"level": "community"}).json()["total"] == 45
    civil = client.get(ITEMS, params={"department": "civil_affairs", "level": "street"}).json()
    assert civil["total"] == 10 and all(i["department"] == "civil_affairs" for i in civil["items"])
    found = client.get(ITEMS, params={"q": "zdshbz"}).json()
    assert [i["name"] for i in found["items"]] == ["最低生活保障", "最低生活保障申请受理"]
    found = client.get(ITEMS, params={"q": "zdshbz", "level": "community"}).json()
    assert [i["name"] for i in found["items"]] == ["最低生活保障申请受理"]
    assert client.get(ITEMS, params={"q": "火星"}).json() == {"items": [], "total": 0}
    assert client.get(ITEMS, params={"all": "true"}).json()["total"] == 104


def test_invalid_level_is_400_naming_level(client: TestClient[Litestar]) -> None:
    response = client.get(ITEMS, params={"level": "planet"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 400 and [e["field"] for e in body["errors"]] == ["level"]


def test_unknown_department_is_400_naming_department(client: TestClient[Litestar]) -> None:
    response = client.get(ITEMS, params={"department": "planning"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["department"]


def test_item_by_code_and_unknown_code(client: TestClient[Litestar]) -> None:
    response = client.get(f"{ITEMS}/0205001100")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "最低生活保障" and body["department_name"] == "湘潭市雨湖区民政局"
    missing = client.get(f"{ITEMS}/NOPE404")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["status"] == 404 and "NOPE404" in missing.json()["detail"]


def test_etag_and_if_none_match(client: TestClient[Litestar]) -> None:
    first = client.get(ITEMS, params={"level": "street"})
    etag = first.headers["etag"]
    again = client.get(ITEMS, params={"level": "street"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = client.get(ITEMS, params={"level": "street"}, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    other = client.get(ITEMS, params={"level": "community"}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    item = client.get(f"{ITEMS}/0205001100")
    assert client.get(f"{ITEMS}/0205001100", headers={"If-None-Match": item.headers["etag"]}).status_code == 304
    assert client.get(f"{ITEMS}/0205001201", headers={"If-None-Match": item.headers["etag"]}).status_code == 200


def test_openapi_documents_the_operations(client: TestClient[Litestar]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert paths[ITEMS]["get"]["operationId"] == "listCatalogItems"
    assert paths[f"{ITEMS}/{{code}}"]["get"]["operationId"] == "getCatalogItem"
    params = {p["name"] for p in paths[ITEMS]["get"]["parameters"]}
    assert {"level", "department", "q", "all"} <= params


def test_broken_catalog_stops_create_app(tmp_path: Path, settings: Settings) -> None:
    broken = write_config(tmp_path / "config", {"street/a.toml": STREET_ITEM.replace("visits = 1", "visits = 7")})
    with pytest.raises(CatalogError) as info:
        create_app(load_settings(environ={}, data_dir=settings.data_dir, config_dir=broken))
    assert "catalog/street/a.toml:0205001100:visits: must be 0, 1 or 2, got 7" in info.value.problems
