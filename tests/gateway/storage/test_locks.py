"""Advisory locks belong to one schema: two deployments in two schemas of one PostgreSQL database never wait for
(or skip a round because of) each other's locks; two connections in one schema still exclude each other."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from gateway.storage.locks import lock_key, lock_space
from tests.dbutil import two_schemas
from tests.services import POSTGRES_URL, need

TRY_KEY = text(f"SELECT pg_try_advisory_xact_lock({lock_key('key')})")
TRY_SPACE = text(f"SELECT pg_try_advisory_xact_lock({lock_space('space')}, :key)")
KEY = 0x6F77_6576
SPACE = 0x6F77_7471


async def test_a_lock_taken_in_one_schema_leaves_another_schema_free_and_its_own_held(tmp_path: Path) -> None:
    async with two_schemas(need(POSTGRES_URL, "PostgreSQL"), tmp_path) as ((_, one), (_, other)):
        for statement, params in ((TRY_KEY, {"key": KEY}), (TRY_SPACE, {"space": SPACE, "key": 20261206})):
            async with one.transaction() as holder:
                assert (await holder.execute(statement, params)).scalar_one() is True
                async with other.transaction() as conn:  # the other schema: its own lock
                    assert (await conn.execute(statement, params)).scalar_one() is True
                async with one.transaction() as conn:  # the same schema: held
                    assert (await conn.execute(statement, params)).scalar_one() is False
            async with one.transaction() as conn:  # released at the holder's commit
                assert (await conn.execute(statement, params)).scalar_one() is True
