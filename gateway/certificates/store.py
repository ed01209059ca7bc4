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

Each batch is one transaction, with one audit record for it (never one per certificate). The CPU work —
blind index, three AES-GCM encryptions and the JSON payload per certificate — happens before the transaction
opens, so the database's single writer (SQLite) is held only for the inserts.
"""

from __future__ import annotations

import base64
import datetime as dt
import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import Dialect, Table, and_, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert, Update

from connectors.model import Certificate, FetchedCertificate
from connectors.sync import StoredCounts
from gateway import audit
from gateway.certificates.tables import certificate_rejections, certificate_row_id, certificates, sync_cursors
from gateway.privacy import FieldCipher, mask_id_number
from gateway.privacy.fields import TOKEN_VERSION, field_aad
from gateway.storage import Database, new_id, utcnow

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
    #: SQLite: the driver parameters of each statement (by ``id``), converted before the write transaction opens so
    #: the database's single writer is not held for it (`CertificateStore.accept`).
    bound: dict[int, list[tuple[Any, ...]]] = {}


def display_number(certificate: Certificate) -> str:
    """The certificate number as it may be stored and shown: masked when it contains the holder's ID number."""
    number = certificate.number
    code = certificate.holder_code.strip().upper()
    if code and code in number.upper():
        return mask_id_number(number) if number.upper() == code else number.upper().replace(code, mask_id_number(code))
    return number


class ColumnSealer:
    """`FieldCipher.encrypt` for one table column and many rows, with the key and associated data prepared once.

    Bulk sync encrypts three columns of thousands of rows; per value this saves the key lookup and the framing
    of table and column into the associated data. The tokens are the cipher's own (``v1.<key>.<data>``): the
    sealer proves it at construction by having the cipher decrypt one, and is not used if it cannot.
    """

    __slots__ = ("_encrypt", "_head", "_nonces", "_prefix", "_used", "key_id")

    #: Nonces are drawn from the OS in blocks (one system call per 1,024 values instead of one per value).
    NONCE_BLOCK = 12 * 1024

    def __init__(self, cipher: FieldCipher, table: str, column: str) -> None:
        key_id, aead = cipher.keyring.active_aead()
        self.key_id = key_id
        self._encrypt = aead.encrypt
        self._nonces = b""
        self._used = 0
        # field_aad frames each part with its length; the row id is the last part.
        self._prefix = field_aad(key_id, table, column, "")[:-4]
        self._head = f"{TOKEN_VERSION}.{key_id}."
        probe_row = "0123456789abcdef0123456789abcdef"
        if self._aad(probe_row) != field_aad(key_id, table, column, probe_row):
            raise ValueError("field_aad framing changed; use FieldCipher.encrypt")
        if cipher.decrypt(self.seal("probe", probe_row), table=table, column=column, row_id=probe_row) != "probe":
            raise ValueError("sealed tokens do not read back; use FieldCipher.encrypt")

    def _aad(self, row_id: str) -> bytes:
        raw = row_id.encode("utf-8")
        return self._prefix + len(raw).to_bytes(4, "big") + raw

    def _nonce(self) -> bytes:
        if self._used >= len(self._nonces):
            self._nonces = os.urandom(self.NONCE_BLOCK)
            self._used = 0
        start = self._used
        self._used = start + 12
        return self._nonces[start : start + 12]

    def seal(self, plaintext: str, row_id: str) -> str:
        nonce = self._nonce()
        sealed = self._encrypt(nonce, plaintext.encode("utf-8"), self._aad(row_id))
        return self._head + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def _sealer(
    cipher: FieldCipher, cache: dict[tuple[str, str], Callable[[str, str], str]], column: str
) -> Callable[[str, str], str]:
    """The fastest correct way to encrypt ``certificates.<column>`` under the cipher's active key."""
    key_id = cipher.keyring.active_key_id
    found = cache.get((key_id, column))
    if found is None:
        try:
            found = ColumnSealer(cipher, _TABLE, column).seal
        except ValueError:

            def found(plaintext: str, row_id: str) -> str:
                return cipher.encrypt(plaintext, table=_TABLE, column=column, row_id=row_id)

        cache[(key_id, column)] = found
    return found


class DriverStatement:
    """A Core statement compiled once for a dialect and run with the driver's ``executemany``.

    The values are converted by the column types' own bind processors (the same ones SQLAlchemy would apply, so
    what is stored does not change), once per value, without SQLAlchemy's per-row bookkeeping.
    """

    __slots__ = ("_get", "_processed", "sql")

    def __init__(self, statement: Insert | Update, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        names = compiled.positiontup
        if not names:
            raise ValueError(f"{dialect.name}: the driver's parameter style is not positional")
        self.sql = str(compiled)
        binds = compiled.binds
        processors = [binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
        getter = operator.itemgetter(*names)
        self._get: Callable[[dict[str, Any]], Any] = (lambda row: (getter(row),)) if len(names) == 1 else getter
        #: (position, processor) of the values that need converting (dates, times); the rest go as they are.
        self._processed = [(i, p) for i, p in enumerate(processors) if p is not None]

    def parameters(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        get = self._get
        if not self._processed:
            return [tuple(get(row)) for row in rows]
        # A page shares its fetch and update times and many dates: convert each distinct value once.
        memo: list[dict[Any, Any]] = [{} for _ in self._processed]
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(get(row))
            for (position, process), seen in zip(self._processed, memo, strict=True):
                value = values[position]
                converted = seen.get(value, _MISSING)
                if converted is _MISSING:
                    converted = seen[value] = process(value)
                values[position] = converted
            out.append(tuple(values))
        return out

    async def executemany(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], parameters: list[tuple[Any, ...]] | None = None
    ) -> int:
        """Run for ``rows``, or for their ``parameters`` when already converted (`parameters` of the same rows)."""
        result = await conn.exec_driver_sql(self.sql, self.parameters(rows) if parameters is None else parameters)
        return result.rowcount if result.rowcount is not None else -1


_MISSING = object()


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
        self._upsert = _upsert_statement(db.dialect, certificates)
        self._withdraw = _withdraw_statement()
        self._insert_rejection = certificate_rejections.insert()
        self._sealers: dict[tuple[str, str], Callable[[str, str], str]] = {}
        self._driver: dict[int, DriverStatement] = {}

    # -- the sink protocol ---------------------------------------------------------------------------------

    async def accept(self, batch: Sequence[FetchedCertificate]) -> AcceptCounts:
        """Store one page of certificates in one transaction (with one audit record); returns the counts."""
        prepared = self.prepare(batch)
        if not batch:
            return AcceptCounts()
        self._bind(prepared)
        async with self.db.transaction() as conn:
            counts = await self.write(conn, prepared)
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
                },
            )
        return counts

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
        """The holder with their blind index (one HMAC)."""
        return Holder(id_number=id_number, index=self.cipher.blind_index(id_number, kind=HOLDER_INDEX_KIND))

    def prepare(
        self, batch: Sequence[FetchedCertificate], *, now: dt.datetime | None = None, holder: Holder | None = None
    ) -> PreparedBatch:
        """Rows for a batch: blind index, encryption and payload per certificate. No I/O. ``holder``: the one
        holder a lookup's batch is about, whose index is known already."""
        now = now or utcnow()
        cipher = self.cipher
        # A holder has several certificates: one HMAC each.
        indexes: dict[str, str] = {holder.id_number: holder.index} if holder is not None else {}
        seal_code = _sealer(cipher, self._sealers, "holder_code_enc")
        seal_name = _sealer(cipher, self._sealers, "holder_name_enc")
        seal_payload = _sealer(cipher, self._sealers, "payload_enc")
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
        """Write a prepared batch inside the caller's write transaction."""
        stored = unchanged = withdrawn = 0
        if prepared.upserts:
            count = await self._executemany(conn, self._upsert, prepared.upserts, prepared)
            # The conflict clause skips rows whose stored copy is newer; the row count tells how many were written.
            stored = min(count, len(prepared.upserts)) if count >= 0 else len(prepared.upserts)
            unchanged = len(prepared.upserts) - stored
        if prepared.withdrawals:
            withdrawn = max(await self._executemany(conn, self._withdraw, prepared.withdrawals, prepared), 0)
        if prepared.rejections:
            await self._executemany(conn, self._insert_rejection, prepared.rejections, prepared)
        return AcceptCounts(stored=stored, rejected=len(prepared.rejections), unchanged=unchanged, withdrawn=withdrawn)

    async def _executemany(
        self,
        conn: AsyncConnection,
        statement: Insert | Update,
        rows: list[dict[str, Any]],
        prepared: PreparedBatch | None = None,
    ) -> int:
        """``executemany`` of a Core statement; the row count (-1 when the driver does not tell).

        On SQLite the statement goes to the driver directly (`DriverStatement`): SQLAlchemy's per-row parameter
        handling costs more than SQLite's own insert. PostgreSQL keeps the Core path.
        """
        if conn.dialect.name != "sqlite":
            result = await conn.execute(statement, rows)
            return result.rowcount if result.rowcount is not None else -1
        driver = self._driver_for(statement, conn.dialect)
        bound = prepared.bound.get(id(statement)) if prepared is not None else None
        return await driver.executemany(conn, rows, bound)

    def _driver_for(self, statement: Insert | Update, dialect: Dialect) -> DriverStatement:
        driver = self._driver.get(id(statement))
        if driver is None:
            driver = self._driver[id(statement)] = DriverStatement(statement, dialect)
        return driver

    def _bind(self, prepared: PreparedBatch) -> None:
        """SQLite: convert the batch's parameters now, before `write` takes the single writer's turn."""
        if self.db.dialect != "sqlite":
            return
        dialect = self.db.engine.dialect
        for statement, rows in (
            (self._upsert, prepared.upserts),
            (self._withdraw, prepared.withdrawals),
            (self._insert_rejection, prepared.rejections),
        ):
            if rows:
                prepared.bound[id(statement)] = self._driver_for(statement, dialect).parameters(rows)

    # -- reading -------------------------------------------------------------------------------------------

    async def holder_certificates(
        self, conn: AsyncConnection, holder: Holder, type_keys: Sequence[str]
    ) -> list[StoredCertificate]:
        """Every stored certificate of one holder among ``type_keys`` (personal data still encrypted)."""
        if not type_keys:
            return []
        c = certificates.c
        rows = await conn.execute(
            select(
                c.id,
                c.identifier,
                c.type_key,
                c.department,
                c.name,
                c.number,
                c.issuer_name,
                c.issue_date,
                c.valid_from,
                c.valid_until,
                c.status,
                c.verification_status,
                c.verification_reason,
                c.holder_name_enc,
                c.fetched_at,
            ).where(c.holder_index == holder.index, c.type_key.in_(list(type_keys)))
        )
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


def _last_per_identifier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per identifier (the last one wins): PostgreSQL refuses to update one row twice in a statement."""
    if len({row["identifier"] for row in rows}) == len(rows):
        return rows
    return list({row["identifier"]: row for row in rows}.values())


def _insert_for(dialect: str) -> Any:
    return sqlite.insert if dialect == "sqlite" else postgresql.insert


def _upsert_statement(dialect: str, table: Table) -> Insert:
    """``INSERT … ON CONFLICT (identifier) DO UPDATE`` — except when the stored copy is newer at the source."""
    insert = _insert_for(dialect)(table)
    excluded = insert.excluded
    keep = {"id", "identifier"}
    current = table.c.source_updated_at
    incoming = excluded.source_updated_at
    newer_or_same = or_(current.is_(None), incoming.is_(None), incoming >= current)
    statement: Insert = insert.on_conflict_do_update(
        index_elements=[table.c.identifier],
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
]
