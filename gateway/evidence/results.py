"""Results flow back as certificates: a case approved for an item whose result is itself a certificate (the
catalog's ``result_certificate``, e.g. 最低生活保障证, 残疾人证) gets an e-certificate of the district.

In the approving transaction: the applicant's ID number and name are decrypted (a ``personal_data.read`` audit
record, purpose: issuing the result), the certificate is built — a GB/T 36904 identifier under the certificate
type's code (its definer's USCC + sequence), the district as issuer (`gateway.certificates.issuer`), the tracking
number as serial, hence a valid MOD 37,36 check character — signed with the gateway's issuer key, verified against
the trust store holding that key, and stored like any pulled certificate (`CertificateStore.write`, department
``district``), with a ``certificate.issued`` audit record. Later applications find it in the store like a
department's certificate (level A); `issued_certificates` answers it when the live pull of its type's department
finds nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_date, local_time
from catalog.catalog import Catalog
from catalog.models import Item
from connectors.model import Certificate, FetchedCertificate
from connectors.trust import TrustStore
from gateway import audit
from gateway.certificates.issuer import DISTRICT_ISSUER, DistrictIssuer
from gateway.certificates.lookup import CertificateView
from gateway.certificates.store import CertificateStore, Holder
from gateway.certificates.tables import certificates
from gateway.events import outbox, types
from gateway.identity.principal import Principal
from gateway.privacy import FieldCipher


class ResultIssuer:
    """Issues result certificates for one gateway (its catalog, cipher, issuer key and certificate store)."""

    def __init__(
        self, *, catalog: Catalog, cipher: FieldCipher, issuer: DistrictIssuer, store: CertificateStore
    ) -> None:
        self.catalog = catalog
        self.cipher = cipher
        self.issuer = issuer
        self.store = store
        self.trust = TrustStore([issuer.trusted_key()])

    def _decrypt(self, row: Row[Any], column: str) -> str:
        return self.cipher.decrypt(getattr(row, column), table="applications", column=column, row_id=row.id)

    async def issue(
        self, conn: AsyncConnection, *, row: Row[Any], item: Item | None, principal: Principal, now: dt.datetime
    ) -> str | None:
        """Issue the result certificate of an approved case (in the caller's transaction); its identifier, or None
        when the item's result is not a certificate. ``row`` must already carry the tracking number."""
        if item is None or item.result_certificate is None or not row.tracking_number:
            return None
        kind = self.catalog.certificate_type(item.result_certificate)
        if kind is None:  # the catalog check refuses this; a reloaded catalog must not break approvals
            return None
        id_number = self._decrypt(row, "applicant_id_number")
        name = self._decrypt(row, "applicant_name")
        today = local_date(now)
        certificate = self.issuer.sign(
            Certificate(
                identifier=self.issuer.identifier(kind.type_code, row.tracking_number),
                number=f"YH{row.tracking_number}",
                type_key=kind.key,
                type_code=kind.type_code,
                name=kind.name,
                holder_name=name,
                holder_code=id_number,
                holder_code_type="111",
                issuer_name=self.issuer.issuer_name,
                issuer_code=self.issuer.issuer_code,
                issue_date=today,
                valid_from=today,
                valid_until=None,
                attributes={"item_code": item.code, "tracking_number": row.tracking_number},
            )
        )
        verification = self.trust.verify(
            certificate, expected_holder=id_number, today=today, department=DISTRICT_ISSUER
        )
        if not verification.ok:  # our own key and identifier: a failure here is a bug, never a silent store
            raise RuntimeError(f"issued certificate does not verify: {verification.status} {verification.reason}")
        fetched = FetchedCertificate(
            certificate=certificate,
            source_department=DISTRICT_ISSUER,
            fetched_at=now,
            verification=verification,
            source_updated_at=now,
        )
        holder = Holder(id_number=id_number, index=row.applicant_id_index)
        await self.store.write(conn, self.store.prepare([fetched], now=now, holder=holder))
        await audit.append(
            conn,
            actor=principal.actor,
            role=principal.role.value,
            action="personal_data.read",
            object_type="application",
            object_id=row.id,
            purpose=f"issue the result certificate of application:{row.id}",
            detail={"fields": ["applicant_id_number", "applicant_name"]},
        )
        await audit.append(
            conn,
            actor=principal.actor,
            role=principal.role.value,
            action="certificate.issued",
            object_type="certificate",
            object_id=certificate.identifier,
            purpose=f"application:{row.id}",
            detail={
                "application": row.id,
                "type": kind.key,
                "key_id": self.issuer.key_id,
                "holder": row.applicant_id_index,
            },
        )
        # Thin, like every event: the case's ids and the certificate's type; receivers fetch the rest.
        await outbox.emit(conn, types.CERTIFICATE_ISSUED, row, {"status": "approved", "certificate_type": kind.key})
        return certificate.identifier


def _issued_query() -> Select[Any]:
    """The district's own certificates of one holder among some types, oldest first (built once, see `_ISSUED`)."""
    c = certificates.c
    return (
        select(
            c.identifier,
            c.type_key,
            c.name,
            c.number,
            c.issuer_name,
            c.issue_date,
            c.valid_from,
            c.valid_until,
            c.status,
            c.verification_status,
            c.fetched_at,
        )
        .where(
            c.holder_index == bindparam("holder_index"),
            c.type_key.in_(bindparam("types", expanding=True)),
            c.department == DISTRICT_ISSUER,
        )
        .order_by(c.issue_date, c.fetched_at)
    )


#: Built once: a statement built per intake, with its expanding parameter, left reference cycles behind.
_ISSUED = _issued_query()


async def issued_certificates(
    conn: AsyncConnection, holder: Holder, types: Sequence[str], today: dt.date, *, holder_name: str
) -> dict[str, CertificateView]:
    """The district's own usable certificates of ``holder`` among ``types``, newest per type, shown with the
    applicant's already masked ``holder_name`` (nothing is decrypted). For materials the lookup did not find: a
    live pull of the type's department does not know what the district issued."""
    if not types:
        return {}
    rows = await conn.execute(_ISSUED, {"holder_index": holder.index, "types": list(types)})
    found: dict[str, CertificateView] = {}
    for r in rows:
        usable = (
            r.verification_status == "valid"
            and r.status == "01"
            and r.valid_from <= today
            and (r.valid_until is None or r.valid_until >= today)
        )
        if not usable:
            continue
        found[r.type_key] = CertificateView(
            identifier=r.identifier,
            type_key=r.type_key,
            name=r.name,
            number=r.number,
            issuer_name=r.issuer_name,
            issue_date=r.issue_date,
            valid_from=r.valid_from,
            valid_until=r.valid_until,
            status=r.status,
            holder_name=holder_name,
            department=DISTRICT_ISSUER,
            source="store",
            fetched_at=local_time(r.fetched_at),
        )
    return found


__all__ = ["ResultIssuer", "issued_certificates"]
