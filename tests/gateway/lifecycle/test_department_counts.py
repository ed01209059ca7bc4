"""`application_counts` (the officer queue's total) stays equal to counting the cases, on SQLite and PostgreSQL:
after intake, acceptance, transitions, withdrawal, a department change and a deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from gateway.cases.tables import application_counts, applications
from tests.gateway.intake.fixtures import Gateway

#: The test officer's department (tests.gateway.intake.fixtures).
OFFICER = "civil_affairs"


async def _counted(gateway: Gateway) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    async with gateway.db.read() as conn:
        kept = {
            (r.department, r.status): int(r.n)
            for r in await conn.execute(select(application_counts))
            if r.n  # a (department, status) whose cases all moved on keeps its row at 0
        }
        real = {
            (r.department, r.status): int(r.n)
            for r in await conn.execute(
                select(applications.c.department, applications.c.status, func.count().label("n")).group_by(
                    applications.c.department, applications.c.status
                )
            )
        }
    return kept, real


async def _queue_total(gateway: Gateway) -> Any:
    response = await gateway.client.get("/api/v1/applications", headers=gateway.auth("officer"))
    assert response.status_code == 200, response.text
    return response.json()["total"]


async def _officers_cases(gateway: Gateway) -> int:
    """What the officer's queue total must be: the officer's department's cases, counted."""
    async with gateway.db.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(applications).where(applications.c.department == OFFICER)
                )
            ).scalar_one()
        )


async def test_counts_follow_every_change(gateway: Gateway) -> None:
    accepted = [(await gateway.accepted_case())[0] for _ in range(3)]
    draft = await gateway.create(gateway.body(gateway.citizen("resident_id_card")))
    assert draft.status_code == 201, draft.text
    kept, real = await _counted(gateway)
    assert kept == real and sum(real.values()) == 4
    assert await _queue_total(gateway) == await _officers_cases(gateway) > 0

    assert (await gateway.move(accepted[0], "in_review", note="开始审查")).status_code == 200
    assert (await gateway.move(draft.json()["id"], "withdrawn", who="clerk", note="申请人撤回")).status_code == 200
    kept, real = await _counted(gateway)
    assert kept == real
    assert await _queue_total(gateway) == await _officers_cases(gateway)

    async with gateway.db.transaction() as conn:
        await conn.execute(update(applications).where(applications.c.id == accepted[1]).values(department="x_other"))
        await conn.execute(delete(applications).where(applications.c.id == accepted[2]))
    kept, real = await _counted(gateway)
    assert kept == real and real[("x_other", "accepted")] == 1
    assert await _queue_total(gateway) == await _officers_cases(gateway)
