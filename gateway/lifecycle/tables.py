"""Lifecycle tables: the status history of each application (who moved it where, when, and why)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint

from gateway.intake.tables import applications
from gateway.storage.metadata import IdType, UTCDateTime, metadata

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

__all__ = ["application_history"]
