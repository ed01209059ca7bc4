"""Console sessions on SQLite and PostgreSQL: opened only for a valid staff token, idle timeout, revocation ends
them, the parked query code is given out once, and nothing stored signs anyone in."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from gateway.identity import TokenAuthenticator, create_token, revoke_token
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.storage import Database
from gateway.web.sessions import SessionStore, session_id
from gateway.web.tables import staff_sessions


def store(database: Database, settings: Settings, clock: list[dt.datetime]) -> SessionStore:
    return SessionStore(
        database=database,
        cipher=FieldCipher(KeyRing.load(settings.data_dir)),
        authenticator=TokenAuthenticator(database, cache_seconds=0),
        idle=dt.timedelta(minutes=30),
        now=lambda: clock[0],
    )


async def test_open_resolve_idle_and_close(database: Database, db_settings: Settings) -> None:
    clock = [dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)]
    sessions = store(database, db_settings, clock)
    token, _ = await create_token(database, role="clerk", unit="430302001000")
    system, _ = await create_token(database, role="system", scopes=["status:read"])
    assert await sessions.open("ow_not_a_token") is None
    assert await sessions.open(system) is None
    opened = await sessions.open(token)
    assert opened is not None
    secret, _ = opened
    async with database.read() as conn:
        row = (await conn.execute(select(staff_sessions))).one()
    # Neither the cookie's secret nor the token is stored as such.
    assert row.id == session_id(secret) != secret and token not in row.token and secret not in row.token
    assert (await sessions.resolve(secret)) is not None
    assert await sessions.resolve("forged") is None
    clock[0] += dt.timedelta(minutes=29)
    assert (await sessions.resolve(secret)) is not None  # and it was used: the idle time starts again
    clock[0] += dt.timedelta(minutes=29)
    assert (await sessions.resolve(secret)) is not None
    clock[0] += dt.timedelta(minutes=31)
    assert await sessions.resolve(secret) is None
    async with database.read() as conn:
        assert (await conn.execute(select(staff_sessions))).first() is None
    second = await sessions.open(token)
    assert second is not None
    await sessions.close(second[0])
    assert await sessions.resolve(second[0]) is None


async def test_revoking_the_token_ends_its_sessions(database: Database, db_settings: Settings) -> None:
    clock = [dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)]
    sessions = store(database, db_settings, clock)
    token, record = await create_token(database, role="officer", department="civil_affairs")
    opened = await sessions.open(token)
    assert opened is not None
    await revoke_token(database, record.id)
    assert await sessions.resolve(opened[0]) is None


async def test_parked_query_code_is_taken_once_even_concurrently(database: Database, db_settings: Settings) -> None:
    clock = [dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)]
    sessions = store(database, db_settings, clock)
    token, _ = await create_token(database, role="clerk", unit="430302001000")
    opened = await sessions.open(token)
    assert opened is not None
    session = opened[1]
    await sessions.park_receipt(session, "a" * 32, "ABCD2345")
    assert await sessions.take_receipt(session, "b" * 32) is None  # another case's receipt does not get it
    results = await asyncio.gather(*(sessions.take_receipt(session, "a" * 32) for _ in range(4)))
    assert sorted(r for r in results if r) == ["ABCD2345"]
    assert await sessions.take_receipt(session, "a" * 32) is None


async def test_idle_sessions_are_purged(database: Database, db_settings: Settings) -> None:
    clock = [dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)]
    sessions = store(database, db_settings, clock)
    token, _ = await create_token(database, role="clerk", unit="430302001000")
    old = await sessions.open(token)
    clock[0] += dt.timedelta(minutes=20)
    fresh = await sessions.open(token)
    assert old is not None and fresh is not None
    clock[0] += dt.timedelta(minutes=15)
    assert await sessions.purge_idle() == 1
    assert await sessions.resolve(old[0]) is None and await sessions.resolve(fresh[0]) is not None
