"""The delivery state of each history row reported to the provincial platform.

The history rows (`gateway.cases.tables.application_history`, written in the transaction of each change) are the
source of truth; a row here says how far reporting that history row got. The reporter adds a row for each history
row that has none, so nothing written to the history can be missed, even after a crash.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table

from gateway.storage.metadata import IdType, UTCDateTime, metadata

province_reports = Table(
    "province_reports",
    metadata,
    Column("history_id", IdType(), ForeignKey("application_history.id", ondelete="CASCADE"), primary_key=True),
    Column("application_id", IdType(), ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    #: The history row's position: reports of one case go out in this order.
    Column("position", Integer, nullable=False),
    #: acceptance / process / special_procedure / result (the national record kinds).
    Column("kind", String(24), nullable=False),
    #: pending / sent.
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    #: A reporter process owns the row until then (several processes may run the reporter).
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_error", String(300), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
)
Index("ix_province_reports_state_next_attempt_at", province_reports.c.state, province_reports.c.next_attempt_at)
Index("ix_province_reports_application_id_position", province_reports.c.application_id, province_reports.c.position)

__all__ = ["province_reports"]
