"""Certificate store tables: verified e-certificates, the rejections, and each department's sync cursor.

Personal data never lands in plaintext. The holder's ID number and name are `gateway.privacy.FieldCipher` tokens
bound to table, column and row; ``holder_index`` is the keyed blind index of the holder code (lookups by ID
number); ``payload_enc`` is the whole signed certificate as JSON (it carries name, ID number and type-specific
facts such as a disability grade), encrypted the same way. ``number`` is the certificate number as printed unless
it contains the holder's ID number (a resident ID card's number is the ID number): then it is kept masked.

A certificate row's id is derived from its identifier (`certificate_row_id`), so an upsert that finds the row
already there keeps the id the new ciphertexts are bound to.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Boolean, Column, Date, Index, Integer, String, Table, Text

from gateway.privacy import register_encrypted_column
from gateway.storage.metadata import IdType, UTCDateTime, metadata

certificates = Table(
    "certificates",
    metadata,
    Column("id", IdType(), primary_key=True),
    #: 电子证照标识 (GB/T 36904), unique across departments: the primary key is derived from it, so the key keeps it
    #: unique (one unique index only: the upsert's conflict target, see certificates_0003).
    Column("identifier", String(128), nullable=False, index=True),
    Column("type_key", String(64), nullable=False),
    Column("type_code", String(32), nullable=False),
    #: The department system it was pulled from.
    Column("department", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("number", String(128), nullable=False),
    Column("issuer_name", String(200), nullable=False),
    Column("issuer_code", String(32), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("valid_from", Date, nullable=False),
    #: NULL = long-term (长期).
    Column("valid_until", Date, nullable=True),
    #: The issuer's status code (01 有效, 03 撤销, …).
    Column("status", String(2), nullable=False),
    Column("holder_code_type", String(3), nullable=False),
    Column("holder_index", String(64), nullable=False),
    Column("holder_code_enc", Text, nullable=False),
    Column("holder_name_enc", Text, nullable=False),
    Column("payload_enc", Text, nullable=False),
    #: `connectors.model.Verification` status ("valid", "revoked", "expired") and its reason.
    Column("verification_status", String(32), nullable=False),
    Column("verification_reason", Text, nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("source_updated_at", UTCDateTime, nullable=True),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_certificates_holder_index_type_key", certificates.c.holder_index, certificates.c.type_key)
Index("ix_certificates_department", certificates.c.department, certificates.c.verification_status)

for _column in ("holder_code_enc", "holder_name_enc", "payload_enc"):
    register_encrypted_column("certificates", _column)

#: Certificates that arrived and failed verification (tampered, untrusted, expired, revoked, wrong holder).
#: A log: one row per arrival, with no personal data (the reasons name neither number nor name).
certificate_rejections = Table(
    "certificate_rejections",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("identifier", String(128), nullable=False),
    Column("type_key", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)
Index("ix_certificate_rejections_department_at", certificate_rejections.c.department, certificate_rejections.c.at)
Index("ix_certificate_rejections_identifier", certificate_rejections.c.identifier)

#: Department records that could not be decoded or mapped (quarantined): where they were and why — the unified
#: field, the department's field, the kind of value and the rule it failed — never the value itself.
record_rejections = Table(
    "record_rejections",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("department", String(64), nullable=False),
    #: The page's number in its sync run (1-based) and the record's place in the page (0-based; -1: the page).
    Column("page", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    #: The certificate identifier as sent, when readable (long digit runs masked), else "".
    Column("identifier", String(128), nullable=False),
    Column("field", String(64), nullable=False),
    Column("source", String(200), nullable=False),
    Column("value_kind", String(64), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)
Index("ix_record_rejections_department_at", record_rejections.c.department, record_rejections.c.at)

#: Each department's last sync that received records: how many, how many were quarantined, degraded or not.
department_quality = Table(
    "department_quality",
    metadata,
    Column("department", String(64), primary_key=True),
    Column("received", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("degraded", Boolean, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

#: Where the last incremental sync of each department stopped (the department's change marker).
sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("department", String(64), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def certificate_row_id(identifier: str) -> str:
    """The row id of a certificate: 32 hex characters derived from its identifier (stable across upserts)."""
    return hashlib.blake2b(identifier.encode("utf-8"), digest_size=16, person=b"onewindow.cert").hexdigest()


__all__ = [
    "certificate_rejections",
    "certificate_row_id",
    "certificates",
    "department_quality",
    "record_rejections",
    "sync_cursors",
]
