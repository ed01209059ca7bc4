"""湘潭市雨湖区卫生健康局 — JSON over mutual TLS, start/count (docs/simulators.md §5).

Types: 出生医学证明, 独生子女父母光荣证. The TLS layer (see `connectors.simulators.pki`) refuses any client without a
certificate from the simulator's CA, so the handlers need no further authentication.
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

DEFAULT_COUNT = 100


def health_record(certificate: Certificate, updated_at: dt.datetime) -> dict[str, Any]:
    signature = certificate.signature
    return {
        "identifier": certificate.identifier,
        "number": certificate.number,
        "typeCode": certificate.type_code,
        "name": certificate.name,
        "holder": certificate.holder_name,
        "holderIdCard": certificate.holder_code,
        "holderIdType": certificate.holder_code_type,
        "issuer": certificate.issuer_name,
        "issuerCode": certificate.issuer_code,
        "issued": certificate.issue_date.isoformat(),
        "validFrom": certificate.valid_from.isoformat(),
        "validUntil": iso_date(certificate.valid_until),
        "status": certificate.status,
        "division": certificate.division_code,
        "attributes": certificate.attributes,
        "changedAt": iso_datetime(updated_at),
        "signatureAlg": signature.alg if signature else None,
        "signatureKeyId": signature.key_id if signature else None,
        "signatureValue": signature.value if signature else None,
    }


class HealthSimulator(DepartmentSimulator):
    code = "health"
    bulk_path = "/nhc/api/certificates"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/nhc/api/certificates", self.certificates, name=f"{DATA_ROUTE}:certificates")

    async def certificates(self, request: web.Request) -> web.Response:
        if "holderIdCard" in request.query:
            holder = citizen_id_param(request, "holderIdCard")
            records = [health_record(*r) for r in self.present(self.store.of_holder(holder))]
            return json_response({"start": 0, "count": len(records), "total": len(records), "certificates": records})
        start = int_param(request, "start", default=0, low=0)
        count = int_param(request, "count", default=DEFAULT_COUNT, low=1, high=500)
        first = self.store.start_after(datetime_param(request, "changedSince"))
        total = len(self.store) - first
        page = self.store.slice(first + start, first + start + count)
        records = [health_record(*r) for r in self.present(page)]
        return json_response({"start": start, "count": len(records), "total": total, "certificates": records})
