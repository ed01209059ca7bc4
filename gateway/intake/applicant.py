"""Reading an applicant's personal data for a stated purpose: the applicant's identity and contact, and a
prefilled certificate as its department issued it.

Every other response shows the masked forms kept at intake. These two reads decrypt, and each one is recorded in
the audit log (``personal_data.read``: actor, role, object, the purpose the caller stated and which fields were
read — never their values) in the same transaction as the read, so no plaintext leaves the gateway without its
record committed first.

Who may read: the clerks of the window that filed the case or the unit handling it, the officers of the item's
department (the same scope as the case itself; outside it, 404 as for a missing case) and supervisors (oversight
and the follow-up calls of bad reviews, 回访). Not admins — they run the system, not cases — and not systems
(their tokens read status, never a person's data): 403.

Exceptions raised (`gateway.problems` families)::

    Unprocessable (422)   ``purpose`` missing, shorter than 2 or longer than 200 characters
    NotFound (404)        no such application in the caller's scope, no such material, or no prefilled
                          certificate for it
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_time
from connectors.model import STATUS_NAMES, Certificate
from gateway import audit
from gateway.cases.access import load_application
from gateway.cases.history import actor_scope
from gateway.cases.tables import application_materials
from gateway.certificates.store import CertificateStore, IssuedCertificate
from gateway.evidence.store import EvidenceStore
from gateway.identity.principal import Principal, Role
from gateway.intake.uploads import read as read_upload
from gateway.privacy import FieldCipher, mask_text
from gateway.problems import FieldError, Forbidden, NotFound, Unprocessable
from gateway.storage.database import Database

#: Roles that may read personal data at all (the case scope then decides which cases).
READER_ROLES = (Role.CLERK, Role.OFFICER, Role.SUPERVISOR)
PURPOSE_MIN = 2
PURPOSE_MAX = 200
#: The audit action of every read of personal data.
READ_ACTION = "personal_data.read"
#: Response headers of a personal-data read: no cache (browser, proxy) may keep a copy.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: A valid purpose as the OpenAPI document states it: at most `PURPOSE_MAX` characters, at least two of them
#: neither white space nor control characters, and no control characters that are not white space (white space
#: is collapsed to single spaces before the check).
_TEXT = r"[^\x00-\x08\x0e-\x1b\x7f]"
_VISIBLE = r"[^\s\x00-\x08\x0e-\x1b\x7f]"
PURPOSE_PATTERN = f"^{_TEXT}*{_VISIBLE}{_TEXT}*{_VISIBLE}{_TEXT}*$"
_TABLE = "applications"
#: The certificate fields that carry personal data (what the audit record lists as read).
CERTIFICATE_FIELDS = ("holder_name", "holder_code", "number", "attributes")


class ApplicantRecord(msgspec.Struct, kw_only=True):
    """``GET /api/v1/applications/{id}/applicant``: the applicant as given at intake, decrypted."""

    application_id: str
    id_number: str
    name: str
    phone: str
    address: str | None
    #: 网格 code (not encrypted; here for the receipt and the grid worker's follow-up).
    grid: str | None
    #: The purpose as recorded in the audit log (ID and phone numbers typed into it are masked there).
    purpose: str


class CertificateVerification(msgspec.Struct, kw_only=True):
    """What the gateway established about the certificate: its signature verified against the trust store when
    it arrived; ``revoked`` / ``expired`` when the issuer withdrew it since."""

    status: str
    reason: str
    #: The issuer key the signature verified with.
    key_id: str | None
    #: Valid by signature and by the issuer's status (01 有效), and within its validity today.
    usable: bool


class IssuedCertificateRecord(msgspec.Struct, kw_only=True):
    """``GET /api/v1/applications/{id}/materials/{key}/certificate``: the prefilled certificate as issued."""

    application_id: str
    material_key: str
    #: Every field the issuer signed, with the signature (`alg`, `key_id`, `value`), decrypted.
    certificate: Certificate
    #: 有效, 撤销, … for ``certificate.status``.
    status_name: str
    verification: CertificateVerification
    #: The department system it was pulled from, and when.
    department: str
    fetched_at: dt.datetime
    purpose: str


def check_purpose(raw: str | None) -> str:
    """The stated purpose, whitespace collapsed and ID/phone numbers masked (it goes into the audit log); 422
    naming ``purpose`` when it is missing or out of bounds."""
    text = " ".join((raw or "").split())
    problem = None
    if raw is not None and len(raw) > PURPOSE_MAX:
        problem = f"is too long ({len(raw)} characters, at most {PURPOSE_MAX})"
    elif not text:
        problem = (
            f"is required: say why you need the applicant's personal data, e.g. 审核低保申请 "
            f"({PURPOSE_MIN} to {PURPOSE_MAX} characters)"
        )
    elif len(text) < PURPOSE_MIN:
        problem = f"is too short: at least {PURPOSE_MIN} characters saying why you read the data"
    elif len(text) > PURPOSE_MAX:
        problem = f"is too long ({len(text)} characters, at most {PURPOSE_MAX})"
    elif _CONTROL.search(text):
        problem = "contains control characters"
    if problem is not None:
        raise Unprocessable("Reading personal data needs a stated purpose.", errors=[FieldError("purpose", problem)])
    return mask_text(text)


def _usable(issued: IssuedCertificate, today: dt.date) -> bool:
    cert = issued.certificate
    return (
        issued.verification_status == "valid"
        and cert.status == "01"
        and cert.valid_from <= today
        and (cert.valid_until is None or cert.valid_until >= today)
    )


class Scan(msgspec.Struct, frozen=True, kw_only=True):
    """A material's scan as handed in (or the verified copy it reused), for the caller to download."""

    content: bytes
    content_type: str
    filename: str


#: File name extension per sniffed type (`gateway.intake.uploads.sniff`).
_EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


class PersonalDataService:
    """The audited reads — applicant, certificate, scan — over one database, cipher and certificate store."""

    def __init__(
        self, *, database: Database, cipher: FieldCipher, store: CertificateStore, data_dir: Path | None = None
    ) -> None:
        self.db = database
        self.cipher = cipher
        self.store = store
        #: Where uploaded scans live (``<data_dir>/uploads``); None: scans are not served.
        self.data_dir = data_dir

    @staticmethod
    def _check_role(principal: Principal) -> None:
        # The controller's guard says the same; this keeps the service safe when called from elsewhere.
        if principal.role not in READER_ROLES:
            raise Forbidden(f"A {principal.role.value} token does not read personal data.")

    @staticmethod
    def _detail(principal: Principal, **detail: Any) -> dict[str, Any]:
        scope = actor_scope(principal)
        return detail | ({"actor_scope": scope} if scope else {})

    async def _audit_read(
        self,
        conn: AsyncConnection,
        principal: Principal,
        object_type: str,
        object_id: str,
        purpose: str,
        **detail: Any,
    ) -> None:
        """The ``personal_data.read`` record of one read: who, what, why — never the values read."""
        await audit.append(
            conn,
            actor=principal.actor,
            role=principal.role.value,
            action=READ_ACTION,
            object_type=object_type,
            object_id=object_id,
            purpose=purpose,
            detail=self._detail(principal, **detail),
        )

    def _decrypt(self, row: Row[Any], column: str) -> str:
        return self.cipher.decrypt(getattr(row, column), table=_TABLE, column=column, row_id=row.id)

    async def applicant(self, principal: Principal, application_id: str, purpose: str | None) -> ApplicantRecord:
        """The applicant's ID number, name, phone and address, decrypted, with the read audited."""
        self._check_role(principal)
        stated = check_purpose(purpose)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal)
            record = ApplicantRecord(
                application_id=row.id,
                id_number=self._decrypt(row, "applicant_id_number"),
                name=self._decrypt(row, "applicant_name"),
                phone=self._decrypt(row, "applicant_phone"),
                address=self._decrypt(row, "applicant_address") if row.applicant_address else None,
                grid=row.grid,
                purpose=stated,
            )
            fields = ["id_number", "name", "phone"] + (["address"] if record.address is not None else [])
            await self._audit_read(conn, principal, "application", row.id, stated, subject="applicant", fields=fields)
        return record

    async def certificate(
        self, principal: Principal, application_id: str, key: str, purpose: str | None
    ) -> IssuedCertificateRecord:
        """The certificate that prefilled material ``key``, as issued (from the certificate store, decrypted)."""
        self._check_role(principal)
        stated = check_purpose(purpose)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal)
            material = (
                await conn.execute(
                    select(application_materials.c.state, application_materials.c.certificate).where(
                        application_materials.c.application_id == row.id, application_materials.c.key == key
                    )
                )
            ).first()
            if material is None:
                raise NotFound(f"Item {row.item_code} has no material {key!r}.")
            identifier = (material.certificate or {}).get("identifier") if material.state == "prefilled" else None
            if not identifier:
                raise NotFound(f"Material {key!r} was not prefilled from a certificate (it is {material.state}).")
            issued = await self.store.issued(conn, str(identifier))
            if issued is None:
                raise NotFound(f"Certificate {identifier} is no longer in the certificate store.")
            await self._audit_read(
                conn,
                principal,
                "certificate",
                str(identifier),
                stated,
                application=row.id,
                material=key,
                type_key=issued.certificate.type_key,
                fields=list(CERTIFICATE_FIELDS),
            )
        today = local_time(dt.datetime.now(dt.UTC)).date()
        return IssuedCertificateRecord(
            application_id=row.id,
            material_key=key,
            certificate=issued.certificate,
            status_name=STATUS_NAMES.get(issued.certificate.status, issued.certificate.status),
            verification=CertificateVerification(
                status=issued.verification_status,
                reason=issued.verification_reason,
                key_id=issued.key_id,
                usable=_usable(issued, today),
            ),
            department=issued.department,
            fetched_at=local_time(issued.fetched_at),
            purpose=stated,
        )

    async def scan(self, principal: Principal, application_id: str, key: str, purpose: str | None) -> Scan:
        """Material ``key``'s scan: the upload (checked against its hash), or the verified copy from the evidence
        store that filled it (level B, reused); the read audited like the others, once the content is in hand."""
        self._check_role(principal)
        stated = check_purpose(purpose)
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            material = (
                await conn.execute(
                    select(
                        application_materials.c.state,
                        application_materials.c.file_sha256,
                        application_materials.c.file_type,
                        application_materials.c.evidence,
                    ).where(application_materials.c.application_id == row.id, application_materials.c.key == key)
                )
            ).first()
            if material is None:
                raise NotFound(f"Item {row.item_code} has no material {key!r}.")
            evidence_id = (material.evidence or {}).get("evidence_id") if not material.file_sha256 else None
            found: tuple[bytes, str] | None = None
            if evidence_id:
                found = await EvidenceStore(self.cipher).copy(conn, str(evidence_id))
        if material.file_sha256 and self.data_dir is not None:
            content = await asyncio.to_thread(read_upload, self.data_dir, material.file_sha256, cipher=self.cipher)
            found = (content, material.file_type or "application/octet-stream") if content is not None else None
        elif not material.file_sha256 and not evidence_id:
            raise NotFound(f"Material {key!r} has no scan (it is {material.state}).")
        if found is None:
            raise NotFound(f"The scan of material {key!r} is no longer kept.")
        content, content_type = found
        sha256 = hashlib.sha256(content).hexdigest()
        async with self.db.transaction() as conn:
            await self._audit_read(
                conn,
                principal,
                "application",
                row.id,
                stated,
                subject="scan",
                material=key,
                sha256=sha256,
                source="evidence" if evidence_id else "upload",
            )
        return Scan(
            content=content, content_type=content_type, filename=f"{key}.{_EXTENSIONS.get(content_type, 'bin')}"
        )


__all__ = [
    "CERTIFICATE_FIELDS",
    "NO_STORE",
    "PURPOSE_MAX",
    "PURPOSE_MIN",
    "PURPOSE_PATTERN",
    "READER_ROLES",
    "READ_ACTION",
    "ApplicantRecord",
    "CertificateVerification",
    "IssuedCertificateRecord",
    "PersonalDataService",
    "Scan",
    "check_purpose",
]
