"""Helpers of the evidence tests: the API calls a window makes about a material's trust level."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from demokit.simulators.seed import Citizen
from gateway.audit.tables import audit_records
from tests.gateway.intake.fixtures import Gateway, today_local

#: 最低生活保障 (civil affairs): household register needs B, the income statement may be a commitment, and the
#: result is a 最低生活保障证.
SUBSISTENCE_ITEM = "0205001100"
#: 困难残疾人生活补贴: needs a 最低生活保障证 (and a disability certificate).
DISABILITY_SUBSIDY_ITEM = "0205005100"


async def verify(gw: Gateway, application_id: str, key: str, who: str = "clerk", **body: Any) -> httpx.Response:
    payload = {"original_seen": True} | body
    headers = gw.auth(who)
    if "if_match" in payload:
        headers["If-Match"] = payload.pop("if_match")
    return await gw.client.post(
        f"/api/v1/applications/{application_id}/materials/{key}/verification", json=payload, headers=headers
    )


async def commit(gw: Gateway, application_id: str, key: str, who: str = "clerk", agreed: bool = True) -> httpx.Response:
    return await gw.client.post(
        f"/api/v1/applications/{application_id}/materials/{key}/commitment",
        json={"agreed": agreed},
        headers=gw.auth(who),
    )


def materials(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in body["materials"]}


def citizen_without(gw: Gateway, lacking: str, *holding: str) -> Citizen:
    """An adult holding valid ``holding`` certificates and no certificate of type ``lacking`` at all."""
    today = today_local()
    for c in sorted(gw.sims.citizens, key=lambda c: c.id_number):
        if (today - c.birth_date).days < 18 * 366:
            continue
        kinds = {cert.type_key for cert in c.certificates}
        valid = {
            cert.type_key
            for cert in c.certificates
            if cert.status == "01"
            and cert.valid_from <= today
            and (cert.valid_until is None or cert.valid_until >= today)
        }
        if lacking not in kinds and set(holding) <= valid:
            return c
    raise LookupError(f"no simulated citizen holds {holding} without {lacking}")


async def audit_details(gw: Gateway, action: str) -> list[dict[str, Any]]:
    async with gw.db.read() as conn:
        rows = await conn.execute(
            select(audit_records.c.detail, audit_records.c.purpose, audit_records.c.actor).where(
                audit_records.c.action == action
            )
        )
        return [{"detail": r.detail, "purpose": r.purpose, "actor": r.actor} for r in rows]


__all__ = [
    "DISABILITY_SUBSIDY_ITEM",
    "SUBSISTENCE_ITEM",
    "audit_details",
    "citizen_without",
    "commit",
    "materials",
    "verify",
]
