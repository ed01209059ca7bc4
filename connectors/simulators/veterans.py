"""湘潭市雨湖区退役军人事务局 — plain JSON, no authentication, skip/take (docs/simulators.md §6).

Types: 中华人民共和国退役军人优待证. Field names follow the public-security style with a few of its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from connectors.model import Certificate
from connectors.simulators.base import (
    DATA_ROUTE,
    DepartmentSimulator,
    citizen_id_param,
    datetime_param,
    int_param,
    iso_date,
    iso_datetime,
    json_response,
)

DEFAULT_TAKE = 100


def card_record(certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    signature = certificate.signature
    return {
        "cardId": certificate.identifier,
        "cardNo": certificate.number,
        "typeCode": certificate.type_code,
        "cardName": certificate.name,
        "name": certificate.holder_name,
        "idNumber": certificate.holder_code,
        "idType": certificate.holder_code_type,
        "issuerName": certificate.issuer_name,
        "issuerCode": certificate.issuer_code,
        "issueDate": certificate.issue_date.isoformat(),
        "validFrom": certificate.valid_from.isoformat(),
        "validTo": iso_date(certificate.valid_until),
        "status": certificate.status,
        "regionCode": certificate.division_code,
        "ext": certificate.attributes,
        "modified": iso_datetime(updated_at),
        "sign": None
        if signature is None
        else {"alg": signature.alg, "keyId": signature.key_id, "value": signature.value},
    }


class VeteransSimulator(DepartmentSimulator):
    code = "veterans"
    bulk_path = "/veterans/cards"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/veterans/cards", self.cards, name=f"{DATA_ROUTE}:cards")

    async def cards(self, request: web.Request) -> web.Response:
        if "idNumber" in request.query:
            holder = citizen_id_param(request, "idNumber")
            entries = self.store.of_holder(holder)
            return json_response({"list": [card_record(*r) for r in self.present(entries)], "hasMore": False})
        skip = int_param(request, "skip", default=0, low=0)
        take = int_param(request, "take", default=DEFAULT_TAKE, low=1, high=500)
        first = self.store.start_after(datetime_param(request, "since")) + skip
        page = self.store.slice(first, first + take)
        more = first + len(page) < len(self.store)
        return json_response({"list": [card_record(*r) for r in self.present(page)], "hasMore": more})
