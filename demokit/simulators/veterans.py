"""湘潭市雨湖区退役军人事务局 — plain JSON, no authentication, skip/take (docs/simulators.md §6).

Types: 中华人民共和国退役军人优待证. Field names follow the public-security style with a few of its own.
"""

from __future__ import annotations

from aiohttp import web

from demokit.simulators.base import (
    DATA_ROUTE,
    DepartmentSimulator,
    RecordLayout,
    datetime_param,
    int_param,
    json_response,
    page_size_param,
)

DEFAULT_TAKE = 100

CARD = RecordLayout(
    identifier="cardId",
    number="cardNo",
    type_code="typeCode",
    name="cardName",
    holder_name="name",
    holder_code="idNumber",
    holder_code_type="idType",
    issuer_name="issuerName",
    issuer_code="issuerCode",
    issue_date="issueDate",
    valid_from="validFrom",
    valid_until="validTo",
    status="status",
    division_code="regionCode",
    attributes="ext",
    updated_at="modified",
    signature="sign",
    signature_parts=("alg", "keyId", "value"),
)


class VeteransSimulator(DepartmentSimulator):
    code = "veterans"
    bulk_path = "/veterans/cards"
    layout = CARD

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/veterans/cards", self.cards, name=f"{DATA_ROUTE}:cards")

    async def cards(self, request: web.Request) -> web.Response:
        if "idNumber" in request.query:
            return json_response({"list": self.records(self.holder_entries(request, "idNumber")), "hasMore": False})
        skip = int_param(request, "skip", default=0, low=0)
        take = page_size_param(request, "take", default=DEFAULT_TAKE)
        page, changed = self.changed_page(datetime_param(request, "since"), skip, take)
        return json_response({"list": self.records(page), "hasMore": skip + len(page) < changed})
