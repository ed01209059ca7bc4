"""``/api/v1/catalog``: the service items a window offers, with conditional GET (ETag / If-None-Match)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter

from catalog.calendar import district_today
from catalog.catalog import Catalog
from catalog.models import Level, PublicItem
from gateway.catalog import services
from gateway.catalog.schemas import ItemList
from gateway.context import AppContext
from gateway.identity.auth import EXCLUDE_KEY
from gateway.problems import NotFound, problem_spec

_CACHE_CONTROL = "no-cache"  # clients may keep a copy but must revalidate: the catalog changes on redeploy


def provide_catalog(context: NamedDependency[AppContext]) -> Catalog:
    """Litestar dependency ``catalog``: the catalog loaded once by `create_app`."""
    return context.catalog


def _not_modified(etag: str) -> Response[Any]:
    return Response(content=None, status_code=304, headers={"ETag": etag, "Cache-Control": _CACHE_CONTROL})


_NOT_MODIFIED = ResponseSpec(data_container=None, description="Not modified: the If-None-Match ETag is current")
_BAD_REQUEST = problem_spec("Invalid filter; `errors` names the parameter")
_NOT_FOUND = problem_spec("No item with this code")


class CatalogController(Controller):
    path = "/api/v1/catalog"
    tags = ("catalog",)
    # The catalog is the district's published 办事指南: no personal data, readable without a token.
    opt = {EXCLUDE_KEY: True}  # noqa: RUF012 - Litestar layer API (copied by the router: no mappingproxy)

    @get(
        "/items",
        operation_id="listCatalogItems",
        summary="List service items",
        description=(
            "Items offered today (published and within their validity dates), street items first. `q` searches "
            "by Chinese substring or pinyin (full or initials, e.g. `zdshbz`) and orders by relevance. "
            "`all=true` also lists concept items and items outside their validity."
        ),
        responses={304: _NOT_MODIFIED, 400: _BAD_REQUEST},
        sync_to_thread=False,
    )
    def list_items(
        self,
        catalog: NamedDependency[Catalog],
        level: Annotated[Level | None, QueryParameter(description="street or community")] = None,
        department: Annotated[str | None, QueryParameter(description="department code, e.g. civil_affairs")] = None,
        q: Annotated[str | None, QueryParameter(max_length=100, description="Chinese or pinyin search")] = None,
        include_all: Annotated[bool, QueryParameter(name="all", description="include concept / expired items")] = False,
        if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    ) -> Response[ItemList]:
        today = district_today()
        etag = services.list_etag(
            catalog, today=today, level=level, department=department, q=q, include_all=include_all
        )
        if services.etag_matches(if_none_match, etag):
            return _not_modified(etag)
        body = services.list_items(
            catalog, today=today, level=level, department=department, q=q, include_all=include_all
        )
        return Response(body, headers={"ETag": etag, "Cache-Control": _CACHE_CONTROL})

    @get(
        "/items/{code:str}",
        operation_id="getCatalogItem",
        summary="One service item by code",
        description="Any item in the catalog, whatever its status; `status` and the validity dates say whether "
        "windows offer it.",
        responses={304: _NOT_MODIFIED, 404: _NOT_FOUND},
        sync_to_thread=False,
    )
    def get_item(
        self,
        catalog: NamedDependency[Catalog],
        code: FromPath[str],
        if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    ) -> Response[PublicItem]:
        item = catalog.item(code)
        if item is None:
            raise NotFound(f"No catalog item with code {code!r}.")
        etag = services.item_etag(catalog, code)
        if services.etag_matches(if_none_match, etag):
            return _not_modified(etag)
        return Response(catalog.public(item), headers={"ETag": etag, "Cache-Control": _CACHE_CONTROL})
