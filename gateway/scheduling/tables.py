"""``scheduled_runs``: one row per periodic job and time slot, inserted by the process that runs that slot."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table

from gateway.storage.metadata import UTCDateTime, metadata

scheduled_runs = Table(
    "scheduled_runs",
    metadata,
    Column("job", String(64), primary_key=True),
    #: ``floor(unix time / interval)`` at the slot's start.
    Column("slot", BigInteger, primary_key=True, autoincrement=False),
    #: Which process claimed it: ``host:pid``.
    Column("claimed_by", String(128), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
)

__all__ = ["scheduled_runs"]
