"""Evidence tables: the applicants' verified copies (evidence store) and the checks of commitments.

A verified copy's file is kept in the row itself, encrypted (`gateway.privacy.FieldCipher`, bound to table, column
and row), with its SHA-256 so that a copy whose content no longer matches is never offered. The holder is named
by the keyed blind index of the ID number, the same digest as ``applications.applicant_id_index`` and
``certificates.holder_index``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from gateway.privacy import register_encrypted_column
from gateway.storage.metadata import IdType, UTCDateTime, metadata

evidence_materials = Table(
    "evidence_materials",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("holder_index", String(64), nullable=False),
    #: The catalog's material key (shared by every item that needs the same material).
    Column("material_key", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    #: The file, base64, encrypted.
    Column("content_enc", Text, nullable=False),
    #: Offered up to and including this day.
    Column("valid_until", Date, nullable=False),
    #: Provenance: the case, item and window where a clerk verified it against the original, who and when.
    Column("application_id", IdType(), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("verified_unit", String(64), nullable=False),
    Column("verified_by", String(100), nullable=False),
    Column("verified_at", UTCDateTime, nullable=False),
    #: Set when the applicant withdrew consent to its reuse: never offered again.
    Column("withdrawn_at", UTCDateTime, nullable=True),
    UniqueConstraint("application_id", "material_key"),
)
Index("ix_evidence_materials_holder_key", evidence_materials.c.holder_index, evidence_materials.c.material_key)

register_encrypted_column("evidence_materials", "content_enc")

#: 事后核查: one per material accepted under a commitment (level D), due a declared number of working days after
#: acceptance. ``status``: open, passed, failed (a failed check flags the case for the supervisors).
evidence_checks = Table(
    "evidence_checks",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("application_id", IdType(), ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    Column("material_key", String(64), nullable=False),
    Column("material_name", String(200), nullable=False),
    Column("commitment", Text, nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("handling_unit", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("due_estimated", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("closed_by", String(100), nullable=True),
    Column("note", Text, nullable=True),
    UniqueConstraint("application_id", "material_key"),
)
Index("ix_evidence_checks_status_due_on", evidence_checks.c.status, evidence_checks.c.due_on)
Index("ix_evidence_checks_department", evidence_checks.c.department, evidence_checks.c.status)
Index("ix_evidence_checks_handling_unit", evidence_checks.c.handling_unit, evidence_checks.c.status)

__all__ = ["evidence_checks", "evidence_materials"]
