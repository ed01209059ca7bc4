"""The case's tables: applications (one case each), their materials, their status history, and the per-day
tracking-number counter.

Personal data (the applicant's ID number, name, phone and address) is stored only as
`gateway.privacy.FieldCipher` tokens bound to table, column and row. The blind index of the ID number allows
lookups by ID number; the masked forms (张*, 430302********123X, 138****5678) are kept so that showing a case —
to a window, an officer or the public tracking page — never decrypts anything.
The clock columns hold `gateway.cases.clock.ClockState`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway.privacy import register_encrypted_column
from gateway.storage.metadata import IdType, UTCDateTime, metadata

applications = Table(
    "applications",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("item_code", String(64), nullable=False),
    Column("item_name", String(200), nullable=False),
    Column("item_version", Integer, nullable=False),
    #: The department whose officers handle the item.
    Column("department", String(64), nullable=False),
    #: The window that filed it, and the unit that handles it (the street for a community's 代办).
    Column("filing_unit", String(64), nullable=False),
    Column("handling_unit", String(64), nullable=False),
    Column("grid", String(64), nullable=True),
    Column("status", String(24), nullable=False),
    #: Row version: bumped by every change; the ETag is derived from it.
    Column("version", Integer, nullable=False),
    Column("applicant_id_number", Text, nullable=False),
    Column("applicant_id_index", String(64), nullable=False),
    Column("applicant_id_number_masked", String(32), nullable=False),
    Column("applicant_name", Text, nullable=False),
    Column("applicant_name_masked", String(64), nullable=False),
    Column("applicant_phone", Text, nullable=False),
    Column("applicant_phone_masked", String(32), nullable=False),
    Column("applicant_address", Text, nullable=True),
    Column("consent", Boolean, nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("accepted_at", UTCDateTime, nullable=True),
    Column("accepted_on", Date, nullable=True),
    Column("tracking_number", String(32), nullable=True, unique=True),
    Column("query_code_hash", String(64), nullable=True),
    Column("promised_days", Integer, nullable=True),
    Column("deadline", Date, nullable=True),
    Column("deadline_estimated", Boolean, nullable=False, default=False),
    Column("paused_on", Date, nullable=True),
    Column("days_left_at_pause", Integer, nullable=True),
    Column("stopped_on", Date, nullable=True),
    Column("result", Text, nullable=True),
)
Index("ix_applications_status_deadline", applications.c.status, applications.c.deadline)
Index("ix_applications_handling_unit", applications.c.handling_unit, applications.c.status)
Index("ix_applications_filing_unit", applications.c.filing_unit, applications.c.status)
Index("ix_applications_department", applications.c.department, applications.c.status)
Index("ix_applications_applicant_id_index", applications.c.applicant_id_index)
Index("ix_applications_status_created_at", applications.c.status, applications.c.created_at)
#: The officer queue: a department's cases in deadline order, read a page at a time (lifecycle_0002).
Index(
    "ix_applications_department_deadline",
    applications.c.department,
    applications.c.deadline,
    applications.c.created_at,
)

for _column in ("applicant_id_number", "applicant_name", "applicant_phone", "applicant_address"):
    register_encrypted_column("applications", _column)

application_materials = Table(
    "application_materials",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("application_id", IdType(), ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("required", Boolean, nullable=False),
    Column("source", String(16), nullable=False),
    Column("certificate_type", String(64), nullable=True),
    #: prefilled / missing / provided / unavailable.
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    #: What the window shows of a prefilled certificate (de-identified by the lookup; the certificate as issued
    #: stays in the certificate store, encrypted, under its identifier).
    Column("certificate", JSON, nullable=True),
    Column("file_sha256", String(64), nullable=True),
    Column("file_type", String(32), nullable=True),
    Column("file_size", Integer, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    #: Trust level (A e-certificate, B verified copy, C upload, D commitment; `gateway.evidence.levels`), who set
    #: it and when; NULL while nothing is there.
    Column("level", String(1), nullable=True),
    Column("level_set_by", String(100), nullable=True),
    Column("level_set_at", UTCDateTime, nullable=True),
    #: The commitment text the applicant signed (告知承诺, level D).
    Column("commitment", Text, nullable=True),
    #: Where a reused verified copy came from (`gateway.evidence.store.Provenance`).
    Column("evidence", JSON, nullable=True),
    UniqueConstraint("application_id", "key"),
)
Index("ix_application_materials_file_sha256", application_materials.c.file_sha256)

#: One row per acceptance day: ``n`` is the last sequence number handed out that day.
tracking_sequences = Table(
    "tracking_sequences",
    metadata,
    Column("day", String(8), primary_key=True),
    Column("n", Integer, nullable=False),
)

application_history = Table(
    "application_history",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("application_id", IdType(), ForeignKey(applications.c.id, ondelete="CASCADE"), nullable=False),
    #: 1, 2, 3 … per application, in the order the statuses were reached.
    Column("position", Integer, nullable=False),
    Column("status", String(24), nullable=False),
    Column("from_status", String(24), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    #: ``token:<id>`` of the caller, or ``system``.
    Column("actor", String(100), nullable=False),
    Column("actor_role", String(16), nullable=True),
    #: Where the actor works: a unit code for clerks, a department code for officers.
    Column("actor_scope", String(64), nullable=True),
    Column("note", Text, nullable=True),
    UniqueConstraint("application_id", "position"),
)

#: How many applications each department has in each status, kept by triggers on ``applications`` (insert, delete,
#: a change of status or department: migration lifecycle_0003) in the writing transaction itself, so it is exact
#: in every snapshot. The officer queue's total reads it instead of counting the department's cases.
application_counts = Table(
    "application_counts",
    metadata,
    Column("department", String(64), primary_key=True),
    Column("status", String(24), primary_key=True),
    Column("n", Integer, nullable=False),
)

__all__ = [
    "application_counts",
    "application_history",
    "application_materials",
    "applications",
    "tracking_sequences",
]
