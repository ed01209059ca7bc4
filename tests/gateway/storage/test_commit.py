"""The before-commit stage of `Database.transaction` (`gateway.storage.commit`), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage import Database, before_commit


async def _table(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS commit_steps (label VARCHAR(20))"))


async def _labels(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(text("SELECT label FROM commit_steps"))).scalars())


def _writer(label: str, seen: list[str]) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def step(conn: AsyncConnection) -> None:
        seen.append(label)
        await conn.execute(text("INSERT INTO commit_steps (label) VALUES (:label)"), {"label": label})

    return step


async def test_steps_run_after_the_block_in_order_once_per_key_and_commit_with_it(database: Database) -> None:
    await _table(database)
    seen: list[str] = []
    async with database.transaction() as conn:
        stage = before_commit(conn)
        assert stage is not None
        stage.add("b", _writer("b", seen))
        stage.add("a", _writer("a", seen))
        stage.add("b", _writer("b-again", seen))  # the key's first step stands
        await conn.execute(text("INSERT INTO commit_steps (label) VALUES ('block')"))
        assert seen == []  # nothing ran yet
    assert seen == ["b", "a"]
    assert sorted(await _labels(database)) == ["a", "b", "block"]
    async with database.read() as conn:
        assert before_commit(conn) is None  # a read has no stage: writers there write at once


async def test_no_step_runs_when_the_block_fails_and_a_failing_step_rolls_everything_back(database: Database) -> None:
    await _table(database)
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="block"):
        async with database.transaction() as conn:
            stage = before_commit(conn)
            assert stage is not None
            stage.add("a", _writer("a", seen))
            await conn.execute(text("INSERT INTO commit_steps (label) VALUES ('block')"))
            raise RuntimeError("block failed")
    assert seen == [] and await _labels(database) == []

    async def fail(conn: AsyncConnection) -> None:
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step"):
        async with database.transaction() as conn:
            stage = before_commit(conn)
            assert stage is not None
            stage.add("a", _writer("a", seen))
            stage.add("fail", fail)
            await conn.execute(text("INSERT INTO commit_steps (label) VALUES ('block')"))
    assert seen == ["a"] and await _labels(database) == []
    # The next transaction on the same pool starts with an empty stage.
    async with database.transaction() as conn:
        stage = before_commit(conn)
        assert stage is not None and stage.state == {}
