"""Tracking numbers and query codes: what a citizen's receipt (受理回执) carries.

A tracking number is 21 characters: the district's division code (GB/T 2260, ``430302``), the acceptance date
``YYYYMMDD``, a 6-digit sequence within that day, and one ISO 7064 MOD 37,36 check character over the first 20
(the same scheme as e-certificate identifiers, so a mistyped digit is caught before any database lookup).
The sequence comes from a database counter (`next_sequence`: one row per day, incremented in the accepting
transaction), so numbers are unique across processes.

A query code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L). It is shown once on the
receipt; only a keyed hash is stored (`query_code_hash`), so a database copy does not open the public lookup.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from typing import Final

from sqlalchemy import Integer, String, bindparam, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.codes import mod37_36_check_char
from gateway.cases.tables import tracking_sequences
from gateway.privacy import FieldCipher
from gateway.storage.locks import lock_space

DIVISION_CODE: Final = "430302"
SEQUENCE_DIGITS: Final = 6
MAX_SEQUENCE: Final = 10**SEQUENCE_DIGITS - 1
TRACKING_NUMBER_LENGTH: Final = len(DIVISION_CODE) + 8 + SEQUENCE_DIGITS + 1
_TRACKING_RE: Final = re.compile(r"^(\d{6})(\d{8})(\d{6})([0-9A-Z])$")

#: Unambiguous when read aloud or copied by hand from paper.
QUERY_CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
QUERY_CODE_LENGTH: Final = 8
_QUERY_CODE_RE: Final = re.compile(f"^[{QUERY_CODE_ALPHABET}]{{{QUERY_CODE_LENGTH}}}$")

#: The shapes as the OpenAPI document states them (a lower-case check character or query code is read as upper
#: case; the date and check character are checked beyond the shape).
TRACKING_NUMBER_PATTERN: Final = r"^[0-9]{20}[0-9A-Za-z]$"
QUERY_CODE_PATTERN: Final = (
    f"^[{QUERY_CODE_ALPHABET}{''.join(c.lower() for c in QUERY_CODE_ALPHABET if c.isalpha())}]{{{QUERY_CODE_LENGTH}}}$"
)


class SequenceExhausted(RuntimeError):
    """More than 999,999 acceptances in one day: the number format has no room left."""


def tracking_number(accepted_on: dt.date, sequence: int, division: str = DIVISION_CODE) -> str:
    """The tracking number for the ``sequence``-th acceptance (1-based) on ``accepted_on``."""
    if not 1 <= sequence <= MAX_SEQUENCE:
        raise SequenceExhausted(f"sequence {sequence} does not fit {SEQUENCE_DIGITS} digits")
    if len(division) != 6 or not division.isdigit():
        raise ValueError(f"division code must be 6 digits, got {division!r}")
    body = f"{division}{accepted_on:%Y%m%d}{sequence:0{SEQUENCE_DIGITS}d}"
    return body + mod37_36_check_char(body)


def tracking_number_problem(value: str) -> str | None:
    """Why ``value`` cannot be a tracking number, or None when its shape and check character are right."""
    m = _TRACKING_RE.match(value)
    if m is None:
        return f"must be {TRACKING_NUMBER_LENGTH} characters: division code, date, 6-digit sequence, check character"
    try:
        dt.date(int(m[2][:4]), int(m[2][4:6]), int(m[2][6:]))
    except ValueError:
        return "the date part is not a real date"
    if mod37_36_check_char(value[:-1]) != m[4]:
        return "check character does not match"
    return None


def normalise_tracking_number(value: str) -> str:
    return value.strip().upper()


def new_query_code() -> str:
    return "".join(secrets.choice(QUERY_CODE_ALPHABET) for _ in range(QUERY_CODE_LENGTH))


def normalise_query_code(value: str) -> str:
    """Citizens type codes in lower case and with spaces; the code itself is upper case."""
    return "".join(value.split()).upper()


def is_query_code(value: str) -> bool:
    return _QUERY_CODE_RE.match(value) is not None


def query_code_hash(cipher: FieldCipher, tracking: str, code: str) -> str:
    """Keyed hash (the never-rotated index key) of a query code, bound to its tracking number, so equal codes on
    two cases hash differently and a copy of the database does not open the public lookup."""
    message = f"{tracking}\x1f{normalise_query_code(code)}".encode()
    return cipher.keyed_digest(message, purpose="tracking.query_code").hex()


def query_code_matches(cipher: FieldCipher, tracking: str, code: str, stored_hash: str | None) -> bool:
    if stored_hash is None:
        return False
    return hmac.compare_digest(query_code_hash(cipher, tracking, code), stored_hash)


async def next_sequence(conn: AsyncConnection, day: dt.date) -> int:
    """The next tracking-number sequence for ``day``, allocated in the caller's transaction.

    One upsert statement: the row lock it takes (PostgreSQL) or the write lock (SQLite) serialises concurrent
    acceptances, and a rolled-back acceptance gives its number back. On PostgreSQL the same statement first takes a
    transaction-scoped advisory lock for the day: acceptances then wait in a queue, first come first served —
    waiting on the row alone, every waiter wakes at each commit and a newcomer may win again and again, which gave
    a few intakes waits of seconds under load (bench/RESULTS.md).
    """
    key = f"{day:%Y%m%d}"
    if conn.dialect.name == "postgresql":
        params = {"day": key, "space": SEQUENCE_LOCK_SPACE, "turn": int(key)}
        value = (await conn.execute(_NEXT_IN_TURN, params)).scalar_one()
    else:
        value = (await conn.execute(_NEXT_SQLITE, {"day": key})).scalar_one()
    return int(value)


#: PostgreSQL advisory lock space of the daily counters (``pg_advisory_xact_lock(space, yyyymmdd)``).
SEQUENCE_LOCK_SPACE: Final = 0x6F77_7471  # "owtq"

_table = tracking_sequences
#: The counter's upsert, built once (not per acceptance).
_NEXT_SQLITE = (
    sqlite_insert(_table)
    .values(day=bindparam("day"), n=1)
    .on_conflict_do_update(index_elements=[_table.c.day], set_={"n": _table.c.n + 1})
    .returning(_table.c.n)
)
#: PostgreSQL: the day's advisory lock, then the upsert, in one statement (the row to insert comes from the lock's
#: row, so the lock is held before the conflict is checked; ON CONFLICT DO UPDATE always updates the newest version).
_NEXT_IN_TURN = text(
    # The f-string inserts a constant SQL fragment (the schema's lock space), no input.
    f"WITH turn AS (SELECT pg_advisory_xact_lock({lock_space('space')}, :turn)) "  # noqa: S608
    "INSERT INTO tracking_sequences (day, n) SELECT :day, 1 FROM turn "
    "ON CONFLICT (day) DO UPDATE SET n = tracking_sequences.n + 1 RETURNING n"
).bindparams(bindparam("day", type_=String()), bindparam("space", type_=Integer()), bindparam("turn", type_=Integer()))


__all__ = [
    "DIVISION_CODE",
    "MAX_SEQUENCE",
    "QUERY_CODE_ALPHABET",
    "QUERY_CODE_LENGTH",
    "QUERY_CODE_PATTERN",
    "SEQUENCE_LOCK_SPACE",
    "TRACKING_NUMBER_LENGTH",
    "TRACKING_NUMBER_PATTERN",
    "SequenceExhausted",
    "is_query_code",
    "new_query_code",
    "next_sequence",
    "normalise_query_code",
    "normalise_tracking_number",
    "query_code_hash",
    "query_code_matches",
    "tracking_number",
    "tracking_number_problem",
]
