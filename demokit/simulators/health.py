"""湘潭市雨湖区卫生健康局 — JSON over mutual TLS, start/count (docs/simulators.md §5).

Types: 出生医学证明, 独生子女父母光荣证. The TLS layer (see `demokit.simulators.pki`) refuses any client without a
certificate from the simulator's CA, so the handlers need no further authentication.
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

DEFAULT_COUNT = 100

CERTIFICATE = RecordLayout(
    identifier="identifier",
    number="number",
    type_code="typeCode",
    name="name",
    holder_name="holder",
    holder_code="holderIdCard",
    holder_code_type="holderIdType",
    issuer_name="issuer",
    issuer_code="issuerCode",
    issue_date="issued",
    valid_from="validFrom",
    valid_until="validUntil",
    status="status",
    division_code="division",
    attributes="attributes",
    updated_at="changedAt",
    signature=None,
    signature_parts=("signatureAlg", "signatureKeyId", "signatureValue"),
)


class HealthSimulator(DepartmentSimulator):
    code = "health"
    bulk_path = "/nhc/api/certificates"
    layout = CERTIFICATE

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/nhc/api/certificates", self.certificates, name=f"{DATA_ROUTE}:certificates")

    async def certificates(self, request: web.Request) -> web.Response:
        if "holderIdCard" in request.query:
            records = self.records(self.holder_entries(request, "holderIdCard"))
            return json_response({"start": 0, "count": len(records), "total": len(records), "certificates": records})
        start = int_param(request, "start", default=0, low=0)
        count = page_size_param(request, "count", default=DEFAULT_COUNT)
        page, changed = self.changed_page(datetime_param(request, "changedSince"), start, count)
        records = self.records(page)
        return json_response({"start": start, "count": len(records), "total": changed, "certificates": records})
