"""Paging styles as async iterators that always terminate.

Every iterator stops on an empty page and at ``max_pages``; cursor paging also stops on a missing or repeated
cursor (a department that hands out the same cursor twice would otherwise loop forever); offset and page-number
paging stop at the department's total (or ``has_more = false``) or, when the department says neither, on a short
page. ``Pager.stop_reason`` tells why it stopped: ``"end"`` for a normal end, anything else is worth reporting.

A page the department refuses with a result code declared ``rejected`` (`connectors.errors.RejectedResponse`) comes
out as an empty document whose ``refused`` says so; offset and page-number paging go on past it (by one page size),
at most `MAX_REFUSED_IN_A_ROW` times in a row; cursor paging cannot (no next cursor) and stops saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from connectors.errors import RejectedResponse
from connectors.formats import Document
from connectors.spec import CursorPaging, OffsetPaging, PageNumberPaging, Paging

Fetch = Callable[[list[tuple[str, str]]], Awaitable[Document]]
#: Refused pages in a row after which paging stops (a department refusing everything is not "more pages").
MAX_REFUSED_IN_A_ROW = 3


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
        return value.lower() in {"true", "1"}
    if isinstance(value, int):
        return bool(value)
    return None


class Pager:
    """Iterate the pages of one listing: ``async for document in Pager(paging, fetch, page_size=…)``."""

    def __init__(self, paging: Paging, fetch: Fetch, *, page_size: int | None = None, max_pages: int | None = None):
        self.paging = paging
        self.fetch = fetch
        self.page_size = page_size or paging.page_size
        self.max_pages = max_pages or paging.max_pages
        self.pages = 0
        self.stop_reason = ""
        self._refused_in_a_row = 0

    def __aiter__(self) -> AsyncIterator[Document]:
        paging = self.paging
        if isinstance(paging, CursorPaging):
            return self._cursor(paging)
        if isinstance(paging, OffsetPaging):
            return self._offset(paging)
        return self._page_number(paging)

    def _guard(self) -> bool:
        if self.pages >= self.max_pages:
            self.stop_reason = f"stopped at max_pages={self.max_pages}"
            return False
        return True

    async def _fetch(self, params: list[tuple[str, str]]) -> Document:
        """One page; a refused one as an empty document with ``refused`` set."""
        try:
            document = await self.fetch(params)
        except RejectedResponse as exc:
            document = Document([])
            document.refused = exc
            document.request_id = exc.request_id
            self._refused_in_a_row += 1
        else:
            self._refused_in_a_row = 0
        self.pages += 1
        return document

    def _refused_stop(self, document: Document) -> bool:
        """After a refused page: True (with the reason) when paging must stop."""
        if document.refused is None:
            return False
        if self._refused_in_a_row >= MAX_REFUSED_IN_A_ROW:
            self.stop_reason = f"stopped: the department refused {self._refused_in_a_row} pages in a row"
            return True
        return False

    async def _cursor(self, paging: CursorPaging) -> AsyncIterator[Document]:
        cursor: str | None = None
        seen: set[str] = set()
        while self._guard():
            params = [(paging.limit_param, str(self.page_size))] if paging.limit_param else []
            if cursor is not None:
                params.append((paging.cursor_param, cursor))
            document = await self._fetch(params)
            yield document
            if document.refused is not None:
                self.stop_reason = "stopped: the department refused a page, and a cursor cannot go past it"
                return
            if not document.records:
                self.stop_reason = "end"
                return
            value = document.value(paging.next_cursor)
            if value is None or value == "":
                self.stop_reason = "end"
                return
            cursor = str(value)
            if cursor in seen:
                self.stop_reason = "stopped: the department repeated a cursor"
                return
            seen.add(cursor)

    async def _offset(self, paging: OffsetPaging) -> AsyncIterator[Document]:
        offset = 0
        while self._guard():
            params = [(paging.offset_param, str(offset)), (paging.limit_param, str(self.page_size))]
            document = await self._fetch(params)
            yield document
            if document.refused is not None:
                if self._refused_stop(document):
                    return
                offset += self.page_size
                continue
            received = len(document.records)
            if received == 0:
                self.stop_reason = "end"
                return
            offset += received
            total = _as_int(document.value(paging.total)) if paging.total else None
            more = _as_bool(document.value(paging.has_more)) if paging.has_more else None
            if total is not None and offset >= total:
                self.stop_reason = "end"
                return
            if more is False:
                self.stop_reason = "end"
                return
            if total is None and more is None and received < self.page_size:
                self.stop_reason = "end"
                return

    async def _page_number(self, paging: PageNumberPaging) -> AsyncIterator[Document]:
        page = paging.first_page
        while self._guard():
            params = [(paging.page_param, str(page)), (paging.size_param, str(self.page_size))]
            document = await self._fetch(params)
            yield document
            if document.refused is not None:
                if self._refused_stop(document):
                    return
                page += 1
                continue
            received = len(document.records)
            if received == 0:
                self.stop_reason = "end"
                return
            served = page - paging.first_page + 1
            total_pages = _as_int(document.value(paging.total_pages)) if paging.total_pages else None
            if total_pages is not None and served >= total_pages:
                self.stop_reason = "end"
                return
            total = _as_int(document.value(paging.total)) if paging.total else None
            if total is not None and (served * self.page_size >= total or received < self.page_size):
                self.stop_reason = "end"
                return
            if total_pages is None and received < self.page_size:
                self.stop_reason = "end"
                return
            page += 1


def minimal_params(paging: Paging) -> list[tuple[str, str]]:
    """Parameters of a one-record first page (``connectors check``)."""
    if isinstance(paging, CursorPaging):
        return [(paging.limit_param, "1")] if paging.limit_param else []
    if isinstance(paging, OffsetPaging):
        return [(paging.offset_param, "0"), (paging.limit_param, "1")]
    assert isinstance(paging, PageNumberPaging)
    return [(paging.page_param, str(paging.first_page)), (paging.size_param, "1")]
