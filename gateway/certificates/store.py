"""`CertificateStore`: verified certificates into the database, encrypted, upserted by identifier.

It is the connectors' sync *sink* (``accept(batch)``, ``cursor(department)``, ``save_cursor(department, cursor)``)
and the store the intake's lookup reads first.

What happens to each arriving `FetchedCertificate`, by its verification status:

- ``valid``: upserted (``INSERT … ON CONFLICT (identifier) DO UPDATE``), unless the stored copy is newer by the
  department's change time (a late page never rolls a certificate back).
- ``revoked`` / ``expired``: the issuer's signature verified, so this is an authentic statement that the
  certificate no longer holds. A rejection is recorded, and a stored copy, if any, is updated to say so (it is
  never served as valid again). Nothing new is inserted.
- anything else (bad signature, untrusted issuer, invalid identifier, unsigned, wrong holder): a rejection is
  recorded; the stored copy, if any, is left alone — a forged "revoked" must not be able to withdraw a valid one.

Records the connectors could not decode or map arrive with their page (`QuarantinedRecord`: field, value kind,
rule, never the value) and are written to ``record_rejections`` in the page's transaction; each run's rejected
share goes to ``department_quality`` (`record_quality`), which ``connectors check`` and readiness report.

Each batch is one transaction, with one audit record for it (never one per certificate). The CPU work —
blind index, three AES-GCM encryptions and the JSON payload per certificate — happens before the transaction
opens, so the database's single writer (SQLite) is held only for the inserts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Table, and_, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert, Update

from connectors.mapping import QuarantinedRecord
from connectors.model import Certificate, FetchedCertificate
from connectors.sync import DepartmentQuality, StoredCounts
from gateway import audit
from gateway.certificates.tables import (
    certificate_rejections,
    certificate_row_id,
    certificates,
    department_quality,
    record_rejections,
    sync_cursors,
)
from gateway.privacy import FieldCipher, mask_id_number
from gateway.storage import BulkRows, BulkWrite, Database, new_id, utcnow

#: Verification statuses that come from a verified issuer signature and say the certificate no longer holds.
WITHDRAWN_STATUSES = frozenset({"revoked", "expired"})
#: Blind-index kind of holder codes (the same digest as the intake's applicant index, so the two can be joined).
HOLDER_INDEX_KIND = "citizen_id"

_PAYLOAD = msgspec.json.Encoder()
_PAYLOAD_DECODER = msgspec.json.Decoder(Certificate)
_TABLE = "certificates"


class AcceptCounts(StoredCounts, frozen=True, kw_only=True):
    """What one `CertificateStore.accept` did with a batch (the connectors' `StoredCounts`, and more).

    ``stored``: valid certificates inserted or updated; ``rejected``: certificates that failed verification (each
    has a rejection row); ``unchanged``: valid certificates not written because the stored copy is newer.
    """

    #: Stored certificates marked revoked or expired by an authentic withdrawal in this batch.
    withdrawn: int = 0


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    """A certificate holder as the gateway looks them up: the ID number and its keyed blind index, computed once
    per filing (`CertificateStore.holder`) and used for the store read, the stored rows and the audit records."""

    id_number: str
    index: str


def holder_of(cipher: FieldCipher, id_number: str) -> Holder:
    """The holder with their blind index (one HMAC)."""
    return Holder(id_number=id_number, index=cipher.blind_index(id_number, kind=HOLDER_INDEX_KIND))


class StoredCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the store as the lookup reads it (personal data still encrypted)."""

    id: str
    identifier: str
    type_key: str
    department: str
    name: str
    number: str
    issuer_name: str
    issue_date: dt.date
    valid_from: dt.date
    valid_until: dt.date | None
    status: str
    verification_status: str
    verification_reason: str
    holder_name_enc: str
    fetched_at: dt.datetime

    def usable(self, today: dt.date) -> bool:
        """Valid by its signature and status, and not past its validity today."""
        return (
            self.verification_status == "valid"
            and self.status == "01"
            and self.valid_from <= today
            and (self.valid_until is None or self.valid_until >= today)
        )


class IssuedCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """A stored certificate as issued (decrypted, signature included) and what the store knows of it."""

    certificate: Certificate
    department: str
    #: ``valid``, or ``revoked`` / ``expired`` once the issuer withdrew it (`WITHDRAWN_STATUSES`).
    verification_status: str
    verification_reason: str
    #: The issuer key the signature verified with.
    key_id: str | None
    fetched_at: dt.datetime


class PreparedBatch(msgspec.Struct, kw_only=True):
    """A batch turned into rows, ready to write (all the CPU work done)."""

    upserts: list[dict[str, Any]]
    withdrawals: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    departments: list[str]
    #: identifier -> row, for the upserts (the live lookup answers from these).
    by_identifier: dict[str, dict[str, Any]]
    #: The rows converted to driver parameters (``upserts``, ``withdrawals``, ``rejections``), before the write
    #: transaction opens so that the database's single writer (SQLite) is not held for it (`CertificateStore.accept`).
    bound: dict[str, BulkRows] = {}


def display_number(certificate: Certificate) -> str:
    """The certificate number as it may be stored and shown: masked when it contains the holder's ID number."""
    number = certificate.number
    code = certificate.holder_code.strip().upper()
    if code and code in number.upper():
        return mask_id_number(number) if number.upper() == code else number.upper().replace(code, mask_id_number(code))
    return number


def _as_text(value: object) -> str:
    """Cursor values (datetimes, strings) as stored text."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("sync cursors must be timezone-aware datetimes")
        return value.isoformat()
    return str(value)


class CertificateStore:
    """The certificate store over one `Database`, encrypting with one `FieldCipher`.

    ``actor`` and ``purpose`` label the audit records of bulk sync batches (``certificates.synced``).
    """

    def __init__(self, db: Database, cipher: FieldCipher, *, actor: str = "system", purpose: str = "sync") -> None:
        self.db = db
        self.cipher = cipher
        self.actor = actor
        self.purpose = purpose
        self._upsert = BulkWrite(_upsert_statement(db.dialect, certificates), name="certificates.upsert")
        self._withdraw = BulkWrite(_withdraw_statement(), name="certificates.withdraw")
        self._insert_rejection = BulkWrite(certificate_rejections.insert(), name="certificate_rejections.insert")

    # -- the sink protocol ---------------------------------------------------------------------------------

    async def accept(
        self, batch: Sequence[FetchedCertificate], quarantined: Sequence[QuarantinedRecord] = ()
    ) -> AcceptCounts:
        """Store one page — its certificates and its quarantined records — in one transaction (with one audit
        record); returns the counts."""
        prepared = self.prepare(batch)
        if not batch and not quarantined:
            return AcceptCounts()
        self._bind(prepared)
        now = utcnow()
        quarantine_rows = [_quarantine_row(q, now) for q in quarantined]
        for q in quarantined:
            if q.department not in prepared.departments:
                prepared.departments.append(q.department)
        async with self.db.transaction() as conn:
            counts = await self.write(conn, prepared)
            if quarantine_rows:
                await conn.execute(record_rejections.insert(), quarantine_rows)
            await audit.append(
                conn,
                actor=self.actor,
                action="certificates.synced",
                object_type="department",
                object_id=",".join(prepared.departments)[:128] or "unknown",
                purpose=self.purpose,
                detail={
                    "received": len(batch),
                    "stored": counts.stored,
                    "rejected": counts.rejected,
                    "withdrawn": counts.withdrawn,
                    "unchanged": counts.unchanged,
                    "quarantined": len(quarantine_rows),
                },
            )
        return counts

    async def record_quality(self, quality: DepartmentQuality) -> None:
        """The department's last sync that received records: its rejected share and whether it is degraded."""
        values = {
            "department": quality.department,
            "received": quality.received,
            "quarantined": quality.quarantined,
            "degraded": quality.degraded,
            "at": quality.at,
        }
        insert = _insert_for(self.db.dialect)(department_quality).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=[department_quality.c.department],
            set_={name: insert.excluded[name] for name in values if name != "department"},
        )
        async with self.db.transaction() as conn:
            await conn.execute(statement)

    async def cursor(self, department: str) -> str | None:
        """Where the last sync of ``department`` stopped (the department's change marker), or None."""
        async with self.db.read() as conn:
            value = (
                await conn.execute(select(sync_cursors.c.cursor).where(sync_cursors.c.department == department))
            ).scalar_one_or_none()
        return None if value is None else str(value)

    async def save_cursor(self, department: str, cursor: object) -> None:
        """Remember where ``department``'s sync stopped (a datetime is stored as ISO 8601)."""
        values = {"department": department, "cursor": _as_text(cursor), "updated_at": utcnow()}
        insert = _insert_for(self.db.dialect)(sync_cursors).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=[sync_cursors.c.department],
            set_={"cursor": insert.excluded.cursor, "updated_at": insert.excluded.updated_at},
        )
        async with self.db.transaction() as conn:
            await conn.execute(statement)

    async def reset_cursor(self, department: str) -> None:
        """Forget ``department``'s cursor (the next sync is a full one)."""
        async with self.db.transaction() as conn:
            await conn.execute(sync_cursors.delete().where(sync_cursors.c.department == department))

    # -- the two halves of accept (the lookup uses them inside its own transaction) ------------------------

    def holder(self, id_number: str) -> Holder:
        """`holder_of` with this store's cipher."""
        return holder_of(self.cipher, id_number)

    def prepare(
        self, batch: Sequence[FetchedCertificate], *, now: dt.datetime | None = None, holder: Holder | None = None
    ) -> PreparedBatch:
        """Rows for a batch: blind index, encryption and payload per certificate. No I/O. ``holder``: the one
        holder a lookup's batch is about, whose index is known already."""
        now = now or utcnow()
        cipher = self.cipher
        # A holder has several certificates: one HMAC each.
        indexes: dict[str, str] = {holder.id_number: holder.index} if holder is not None else {}
        seal_code = cipher.column_sealer(table=_TABLE, column="holder_code_enc").seal
        seal_name = cipher.column_sealer(table=_TABLE, column="holder_name_enc").seal
        seal_payload = cipher.column_sealer(table=_TABLE, column="payload_enc").seal
        upserts: list[dict[str, Any]] = []
        withdrawals: list[dict[str, Any]] = []
        rejections: list[dict[str, Any]] = []
        departments: dict[str, None] = {}
        by_identifier: dict[str, dict[str, Any]] = {}
        for fetched in batch:
            certificate = fetched.certificate
            verification = fetched.verification
            departments[fetched.source_department] = None
            status = verification.status
            if status != "valid":
                rejections.append(
                    {
                        "id": new_id(),
                        "department": fetched.source_department,
                        "identifier": certificate.identifier[:128],
                        "type_key": certificate.type_key[:64],
                        "status": status,
                        "reason": verification.reason or status,
                        "at": now,
                    }
                )
                if status not in WITHDRAWN_STATUSES:
                    continue
            row_id = certificate_row_id(certificate.identifier)
            row = {
                "id": row_id,
                "identifier": certificate.identifier,
                "type_key": certificate.type_key,
                "type_code": certificate.type_code,
                "department": fetched.source_department,
                "name": certificate.name,
                "number": display_number(certificate),
                "issuer_name": certificate.issuer_name,
                "issuer_code": certificate.issuer_code,
                "issue_date": certificate.issue_date,
                "valid_from": certificate.valid_from,
                "valid_until": certificate.valid_until,
                "status": certificate.status,
                "holder_code_type": certificate.holder_code_type,
                "holder_index": indexes.get(certificate.holder_code)
                or indexes.setdefault(
                    certificate.holder_code, cipher.blind_index(certificate.holder_code, kind=HOLDER_INDEX_KIND)
                ),
                "holder_code_enc": seal_code(certificate.holder_code, row_id),
                "holder_name_enc": seal_name(certificate.holder_name, row_id),
                "payload_enc": seal_payload(_PAYLOAD.encode(certificate).decode("utf-8"), row_id),
                "verification_status": status,
                "verification_reason": verification.reason,
                "key_id": verification.key_id,
                "source_updated_at": fetched.source_updated_at,
                "fetched_at": fetched.fetched_at,
                "updated_at": now,
            }
            if status == "valid":
                upserts.append(row)
                by_identifier[certificate.identifier] = row
            else:
                withdrawals.append({f"b_{key}": value for key, value in row.items()})
        return PreparedBatch(
            upserts=_last_per_identifier(upserts),
            withdrawals=withdrawals,
            rejections=rejections,
            departments=list(departments),
            by_identifier=by_identifier,
        )

    async def write(self, conn: AsyncConnection, prepared: PreparedBatch) -> AcceptCounts:
        """Write a prepared batch inside the caller's write transaction (`Database.execute_many`: each statement
        compiled once, the rows through the driver's executemany)."""
        stored = unchanged = withdrawn = 0
        execute_many = self.db.execute_many
        bound = prepared.bound
        if prepared.upserts:
            count = await execute_many(conn, self._upsert, bound.get("upserts") or prepared.upserts)
            # The conflict clause skips rows whose stored copy is newer; the row count tells how many were written
            # (PostgreSQL does not count an executemany: all of them are reported stored).
            stored = min(count, len(prepared.upserts)) if count >= 0 else len(prepared.upserts)
            unchanged = len(prepared.upserts) - stored
        if prepared.withdrawals:
            rows = bound.get("withdrawals") or prepared.withdrawals
            withdrawn = max(await execute_many(conn, self._withdraw, rows), 0)
        if prepared.rejections:
            await execute_many(conn, self._insert_rejection, bound.get("rejections") or prepared.rejections)
        return AcceptCounts(stored=stored, rejected=len(prepared.rejections), unchanged=unchanged, withdrawn=withdrawn)

    def _bind(self, prepared: PreparedBatch) -> None:
        """Convert the batch's rows to driver parameters now, before `write` takes the single writer's turn."""
        for key, write, rows in (
            ("upserts", self._upsert, prepared.upserts),
            ("withdrawals", self._withdraw, prepared.withdrawals),
            ("rejections", self._insert_rejection, prepared.rejections),
        ):
            if rows:
                prepared.bound[key] = self.db.bulk_rows(write, rows)

    # -- reading -------------------------------------------------------------------------------------------

    async def holder_certificates(
        self, conn: AsyncConnection, holder: Holder, type_keys: Sequence[str]
    ) -> list[StoredCertificate]:
        """Every stored certificate of one holder among ``type_keys`` (personal data still encrypted)."""
        if not type_keys:
            return []
        rows = await conn.execute(_HELD, {"holder_index": holder.index, "type_keys": list(type_keys)})
        return [StoredCertificate(**dict(row._mapping)) for row in rows]

    def holder_name(self, row_id: str, token: str) -> str:
        """Decrypt a stored holder name (the caller records the read in the audit log)."""
        return self.cipher.decrypt(token, table=_TABLE, column="holder_name_enc", row_id=row_id)

    async def certificate(self, conn: AsyncConnection, identifier: str) -> Certificate | None:
        """The full signed certificate as stored (decrypted; the caller records the read)."""
        found = await self.issued(conn, identifier)
        return None if found is None else found.certificate

    async def issued(self, conn: AsyncConnection, identifier: str) -> IssuedCertificate | None:
        """The full signed certificate (decrypted) with its verification as stored; the caller records the read."""
        c = certificates.c
        row = (
            await conn.execute(
                select(
                    c.id,
                    c.payload_enc,
                    c.department,
                    c.verification_status,
                    c.verification_reason,
                    c.key_id,
                    c.fetched_at,
                ).where(c.identifier == identifier)
            )
        ).first()
        if row is None:
            return None
        text = self.cipher.decrypt(row.payload_enc, table=_TABLE, column="payload_enc", row_id=row.id)
        return IssuedCertificate(
            certificate=_PAYLOAD_DECODER.decode(text),
            department=row.department,
            verification_status=row.verification_status,
            verification_reason=row.verification_reason,
            key_id=row.key_id,
            fetched_at=row.fetched_at,
        )


_HELD_COLUMNS = (
    certificates.c.id,
    certificates.c.identifier,
    certificates.c.type_key,
    certificates.c.department,
    certificates.c.name,
    certificates.c.number,
    certificates.c.issuer_name,
    certificates.c.issue_date,
    certificates.c.valid_from,
    certificates.c.valid_until,
    certificates.c.status,
    certificates.c.verification_status,
    certificates.c.verification_reason,
    certificates.c.holder_name_enc,
    certificates.c.fetched_at,
)
#: One holder's certificates among some types (built once: a statement built per call, with its expanding
#: parameter, left reference cycles for the garbage collector at every intake).
_HELD = select(*_HELD_COLUMNS).where(
    certificates.c.holder_index == bindparam("holder_index"),
    certificates.c.type_key.in_(bindparam("type_keys", expanding=True)),
)


def _quarantine_row(record: QuarantinedRecord, at: dt.datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "department": record.department[:64],
        "page": record.page,
        "position": record.position,
        "identifier": record.identifier[:128],
        "field": record.field[:64],
        "source": record.source[:200],
        "value_kind": record.value_kind[:64],
        "rule": record.rule[:200],
        "message": record.message,
        "request_id": record.request_id[:64],
        "at": at,
    }


def _last_per_identifier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per identifier (the last one wins): PostgreSQL refuses to update one row twice in a statement."""
    if len({row["identifier"] for row in rows}) == len(rows):
        return rows
    return list({row["identifier"]: row for row in rows}.values())


def _insert_for(dialect: str) -> Any:
    return sqlite.insert if dialect == "sqlite" else postgresql.insert


def _upsert_statement(dialect: str, table: Table) -> Insert:
    """``INSERT … ON CONFLICT (id) DO UPDATE`` — except when the stored copy is newer at the source.

    The conflict target is the primary key, derived from the identifier (`certificate_row_id`), not the identifier's
    own unique constraint: on PostgreSQL two transactions storing the same new certificate at once then meet in the
    conflict target — the later waits for the earlier and updates its row. With ``identifier`` as the target both
    passed its check before either row existed, and the later failed on the primary key (a unique violation)."""
    insert = _insert_for(dialect)(table)
    excluded = insert.excluded
    keep = {"id", "identifier"}
    current = table.c.source_updated_at
    incoming = excluded.source_updated_at
    newer_or_same = or_(current.is_(None), incoming.is_(None), incoming >= current)
    statement: Insert = insert.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={column.name: excluded[column.name] for column in table.columns if column.name not in keep},
        where=newer_or_same,
    )
    return statement


def _withdraw_statement() -> Update:
    """Mark a stored certificate revoked/expired with the issuer's signed withdrawal (existing rows only)."""
    c = certificates.c
    columns = [col for col in certificates.columns if col.name not in ("id", "identifier")]
    incoming = bindparam("b_source_updated_at", type_=c.source_updated_at.type)
    statement: Update = (
        certificates.update()
        .where(
            and_(
                c.identifier == bindparam("b_identifier", type_=c.identifier.type),
                # A withdrawal older (at the source) than the stored copy is stale; one without a change time
                # is taken as current.
                or_(c.source_updated_at.is_(None), incoming.is_(None), c.source_updated_at <= incoming),
            )
        )
        .values({col.name: bindparam(f"b_{col.name}", type_=col.type) for col in columns})
    )
    return statement


__all__ = [
    "HOLDER_INDEX_KIND",
    "WITHDRAWN_STATUSES",
    "AcceptCounts",
    "CertificateStore",
    "Holder",
    "IssuedCertificate",
    "PreparedBatch",
    "StoredCertificate",
    "display_number",
    "holder_of",
]
