"""Every paging style terminates: empty page, missing or repeated cursor, totals, short pages, max_pages."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.formats import Document
from connectors.paging import Pager, minimal_params
from connectors.spec import CursorPaging, OffsetPaging, PageNumberPaging, Paging


class Listing:
    """A fake department listing of ``total`` records; ``shape`` builds each response body."""

    def __init__(self, total: int, shape: Any) -> None:
        self.rows = [{"n": i} for i in range(total)]
        self.shape = shape
        self.calls: list[dict[str, str]] = []

    async def __call__(self, params: list[tuple[str, str]]) -> Document:
        query = dict(params)
        self.calls.append(query)
        body = self.shape(self.rows, query)
        return Document(body["items"], json=body)


async def collect(paging: Paging, listing: Listing, **kwargs: int) -> tuple[list[int], Pager]:
    pager = Pager(paging, listing, **kwargs)
    seen: list[int] = []
    async for document in pager:
        seen.extend(r["n"] for r in document.records)
    return seen, pager


def cursor_shape(repeat: bool = False, empty_cursor: str | None = None) -> Any:
    def shape(rows: list[dict[str, int]], q: dict[str, str]) -> dict[str, Any]:
        start, size = int(q.get("cursor", "0")), int(q["limit"])
        page = rows[start : start + size]
        following = start + size if start + size < len(rows) else None
        nxt: Any = "0" if repeat else (str(following) if following is not None else empty_cursor)
        return {"items": page, "next": nxt}

    return shape


CURSOR = CursorPaging(cursor_param="cursor", next_cursor="next", limit_param="limit", page_size=10)


async def test_cursor_paging_yields_everything_once() -> None:
    seen, pager = await collect(CURSOR, Listing(25, cursor_shape()))
    assert seen == list(range(25)) and pager.pages == 3 and pager.stop_reason == "end"


@pytest.mark.parametrize("empty", [None, ""])
async def test_cursor_paging_stops_on_missing_cursor(empty: str | None) -> None:
    seen, pager = await collect(CURSOR, Listing(20, cursor_shape(empty_cursor=empty)))
    assert seen == list(range(20)) and pager.pages == 2 and pager.stop_reason == "end"


async def test_cursor_paging_stops_on_a_repeated_cursor() -> None:
    listing = Listing(1000, cursor_shape(repeat=True))
    _, pager = await collect(CURSOR, listing)
    assert pager.pages == 2 and "repeated" in pager.stop_reason
    assert [c.get("cursor") for c in listing.calls] == [None, "0"]


async def test_cursor_paging_stops_on_an_empty_page_even_with_a_cursor() -> None:
    listing = Listing(0, lambda rows, q: {"items": [], "next": "more"})
    seen, pager = await collect(CURSOR, listing)
    assert seen == [] and pager.pages == 1 and pager.stop_reason == "end"


async def test_max_pages_guard() -> None:
    endless = Listing(0, lambda rows, q: {"items": [{"n": 1}], "next": f"c{len(q)}{q.get('cursor', '')}"})
    _, pager = await collect(CURSOR, endless, max_pages=7)
    assert pager.pages == 7 and "max_pages=7" in pager.stop_reason


def offset_shape(with_total: bool, with_more: bool, cap: int | None = None) -> Any:
    def shape(rows: list[dict[str, int]], q: dict[str, str]) -> dict[str, Any]:
        start, size = int(q["offset"]), int(q["limit"])
        size = min(size, cap) if cap else size
        body: dict[str, Any] = {"items": rows[start : start + size]}
        if with_total:
            body["total"] = len(rows)
        if with_more:
            body["hasMore"] = start + size < len(rows)
        return body

    return shape


@pytest.mark.parametrize(("with_total", "with_more"), [(True, False), (False, True), (False, False)])
@pytest.mark.parametrize("total", [0, 9, 10, 25])
async def test_offset_paging(with_total: bool, with_more: bool, total: int) -> None:
    paging = OffsetPaging(
        offset_param="offset",
        limit_param="limit",
        page_size=10,
        total="total" if with_total else "",
        has_more="hasMore" if with_more else "",
    )
    listing = Listing(total, offset_shape(with_total, with_more))
    seen, pager = await collect(paging, listing)
    assert seen == list(range(total)) and pager.stop_reason == "end"
    assert pager.pages <= total // 10 + 1


async def test_offset_paging_survives_a_server_capping_the_limit() -> None:
    paging = OffsetPaging(offset_param="offset", limit_param="limit", page_size=10, total="total")
    seen, pager = await collect(paging, Listing(25, offset_shape(True, False, cap=4)))
    assert seen == list(range(25)) and pager.pages == 7


def page_shape(with_pages: bool) -> Any:
    def shape(rows: list[dict[str, int]], q: dict[str, str]) -> dict[str, Any]:
        page, size = int(q["page"]), int(q["size"])
        body: dict[str, Any] = {"items": rows[(page - 1) * size : page * size]}
        if with_pages:
            body["total_pages"] = -(-len(rows) // size)
        return body

    return shape


@pytest.mark.parametrize("with_pages", [True, False])
@pytest.mark.parametrize("total", [0, 10, 25])
async def test_page_number_paging(with_pages: bool, total: int) -> None:
    paging = PageNumberPaging(
        page_param="page", size_param="size", page_size=10, total_pages="total_pages" if with_pages else ""
    )
    listing = Listing(total, page_shape(with_pages))
    seen, pager = await collect(paging, listing)
    assert seen == list(range(total)) and pager.stop_reason == "end"
    assert [c["page"] for c in listing.calls] == [str(p) for p in range(1, pager.pages + 1)]


async def test_page_number_paging_ignores_a_lying_total() -> None:
    # total_pages says 1000 but the data ends: the empty page stops it.
    paging = PageNumberPaging(page_param="page", size_param="size", page_size=10, total_pages="total_pages")
    listing = Listing(15, lambda rows, q: {**page_shape(False)(rows, q), "total_pages": 1000})
    seen, pager = await collect(paging, listing)
    assert seen == list(range(15)) and pager.pages == 3


def test_minimal_params() -> None:
    assert minimal_params(CURSOR) == [("limit", "1")]
    assert minimal_params(OffsetPaging(offset_param="skip", limit_param="take")) == [("skip", "0"), ("take", "1")]
    assert minimal_params(PageNumberPaging(page_param="p", size_param="s", first_page=0)) == [("p", "0"), ("s", "1")]
