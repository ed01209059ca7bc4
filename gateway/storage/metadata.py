"""The one `MetaData` every domain's tables live on, and the column types they share.

Each domain declares its tables in ``gateway/<domain>/tables.py`` with SQLAlchemy Core on `metadata`, using
portable types only (String, Text, Integer, BigInteger, Boolean, Date, `UTCDateTime`, LargeBinary, JSON).
Primary keys are strings the application generates (`new_id`) before the insert, so encryption associated data
can bind the row id.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, String
from sqlalchemy.types import TypeDecorator

#: Constraint names are deterministic, so migrations written by hand and autogenerate agree on both dialects.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: The largest integer the API takes (query parameters, cursors): exact in every JSON implementation (an IEEE
#: double holds it, so a client or validator comparing as floating point agrees on the bound) and well inside what
#: both databases bind (a BIGINT, a LIMIT or an OFFSET). A larger one answers 400 instead of failing in the driver.
MAX_API_INTEGER = 2**53 - 1

#: Length of `new_id` values; use ``String(ID_LENGTH)`` for primary and foreign keys.
ID_LENGTH = 32


def IdType() -> String:
    """The column type of application-generated ids."""
    return String(ID_LENGTH)


def new_id() -> str:
    """A new row id: 32 hex characters laid out like a UUIDv7 (millisecond time first, then 74 random bits).

    Time-ordered ids keep B-tree inserts local and sort roughly by creation; the random part makes them
    unguessable enough that an id alone never grants access (scope checks still apply).
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always answers aware UTC datetimes, on SQLite as on PostgreSQL.

    SQLite has no time zone type: values are stored as naive UTC text (which also sorts correctly), and read
    back with UTC attached. Naive datetimes are refused on the way in, because their meaning is a guess.
    In migrations write ``sa.DateTime(timezone=True)``; autogenerate renders it that way too.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use gateway.storage.utcnow()")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


__all__ = ["ID_LENGTH", "MAX_API_INTEGER", "NAMING_CONVENTION", "IdType", "UTCDateTime", "metadata", "new_id", "utcnow"]
