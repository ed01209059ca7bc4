"""The outbox on SQLite and PostgreSQL: an event commits with its change or not at all; payloads stay thin."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.events import outbox, types
from gateway.events.tables import outbox_events
from gateway.storage import Database
from tests.gateway.events.support import case


async def count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(outbox_events))).scalar_one())


async def test_an_event_commits_with_its_transaction_or_not_at_all(database: Database) -> None:
    async with database.transaction() as conn:
        event_id = await outbox.emit(conn, types.APPLICATION_ACCEPTED, case(1), {"deadline": None})
    with pytest.raises(RuntimeError, match="the change failed"):
        async with database.transaction() as conn:
            await outbox.emit(conn, types.APPLICATION_ACCEPTED, case(2))
            raise RuntimeError("the change failed")
    async with database.read() as conn:
        rows = list(await conn.execute(select(outbox_events)))
    assert [r.id for r in rows] == [event_id]
    (row,) = rows
    assert row.dispatched_at is None and row.application_id == case(1).id
    assert row.data == {
        "application_id": case(1).id,
        "tracking_number": "T1",
        "status": "accepted",
        "item_code": "0205006100",
        "department": "civil_affairs",
        "handling_unit": "430302001000",
        "deadline": None,
    }


async def test_sequence_follows_commit_order_within_a_case(database: Database) -> None:
    for step in range(5):
        async with database.transaction() as conn:
            await outbox.emit_status_change(conn, case(7), from_status="in_review", to_status=f"s{step}")
    async with database.read() as conn:
        steps = [r.data["status"] for r in await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))]
    assert steps == [f"s{i}" for i in range(5)]


async def test_completion_emits_status_changed_then_completed(database: Database) -> None:
    async with database.transaction() as conn:
        await outbox.emit_status_change(conn, case(3), from_status="in_review", to_status="denied")
    async with database.read() as conn:
        rows = list(await conn.execute(select(outbox_events).order_by(outbox_events.c.seq)))
    assert [r.type for r in rows] == ["application.status_changed", "application.completed"]
    assert rows[1].data["status"] == "denied"


@pytest.mark.parametrize("key", ["applicant_name", "id_number", "phone", "note", "result", "comment"])
async def test_personal_data_and_free_text_are_refused(database: Database, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        async with database.transaction() as conn:
            await outbox.emit(conn, types.APPLICATION_ACCEPTED, case(1), {key: "张三"})
    assert await count(database) == 0


async def test_unknown_types_and_emits_outside_a_transaction_are_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="not an event type"):
        async with database.transaction() as conn:
            await outbox.emit(conn, "application.exploded", case(1))
    async with database.engine.connect() as conn:
        with pytest.raises(RuntimeError, match=r"inside Database\.transaction"):
            await outbox.emit(conn, types.CERTIFICATE_ISSUED, case(1))
    assert await count(database) == 0
