"""The national case record (办件信息) of one history row: 受理 (acceptance), 过程 (a process step), 特别程序
(a special procedure's start or end) or 结果 (the result, and later its delivery).

Records are built from what the history row and its case hold — never decrypting anything: the applicant's name
and ID number go out in the masked forms stored at intake, as the platform takes them. Field names here are ours
(`gateway.province.target.RECORD_FIELDS`); `to_platform` renames them as the platform file says.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_time
from catalog.catalog import Catalog
from gateway.cases.history import actor_label
from gateway.cases.machine import STATUS_NAMES, is_status
from gateway.cases.tables import application_history, applications
from gateway.province.target import ProvinceTarget
from gateway.tracking.tables import evaluations

#: Our kinds and the national record type codes.
KIND_CODES: Final[dict[str, str]] = {
    "acceptance": "SL",
    "process": "GC",
    "special_procedure": "TBCX",
    "result": "JG",
}
_KIND_BY_STATUS: Final[dict[str, str]] = {
    "accepted": "acceptance",
    "not_accepted": "acceptance",
    "in_review": "process",
    "correction_required": "process",
    "special_procedure": "special_procedure",
    "approved": "result",
    "denied": "result",
    "delivered": "result",
    "withdrawn": "result",
}
_DECISIONS: Final[dict[str, str]] = {"approved": "准予", "denied": "不予", "withdrawn": "撤回"}
#: A special procedure's kind as the department events write it at the head of the note: 【现场勘验】reason.
_PROCEDURE_NOTE = re.compile(r"^【([^】]{1,20})】(.*)$", re.S)
#: 自然人 (a citizen) and the ID type code of the citizen ID number (公民身份号码).
APPLICANT_TYPE_CITIZEN: Final = "1"
ID_TYPE_CITIZEN: Final = "111"
DELIVERY_AT_WINDOW: Final = "窗口领取"


def record_kind(status: str, from_status: str | None) -> str | None:
    """Which record a history row is reported as; None for the window's drafts (not yet a case)."""
    if status == "draft" or (status == "withdrawn" and from_status in (None, "draft")):
        return None
    if status == "in_review" and from_status == "special_procedure":
        return "special_procedure"
    return _KIND_BY_STATUS.get(status)


def _status_name(status: str | None) -> str:
    if status is not None and is_status(status):
        return STATUS_NAMES[status]
    return status or ""


def _time(value: Any) -> str | None:
    return None if value is None else local_time(value).isoformat(timespec="seconds")


def _procedure(note: str | None) -> tuple[str, str]:
    text = (note or "").strip()
    match = _PROCEDURE_NOTE.match(text)
    if match:
        return match[1], match[2].strip().lstrip("。")
    return "其他", text


async def build_record(
    conn: AsyncConnection, history: Row[Any], target: ProvinceTarget, catalog: Catalog
) -> dict[str, Any]:
    """The record of ``history`` (an `application_history` row) in our field names; values absent are left out."""
    kind = record_kind(history.status, history.from_status)
    if kind is None:
        raise ValueError(f"history row {history.id} is not reported")
    case = (await conn.execute(select(applications).where(applications.c.id == history.application_id))).one()
    earlier = list(
        await conn.execute(
            select(application_history)
            .where(
                application_history.c.application_id == history.application_id,
                application_history.c.position < history.position,
            )
            .order_by(application_history.c.position.desc())
        )
    )
    record: dict[str, Any] = {
        "record_id": history.id,
        "kind": KIND_CODES[kind],
        "sequence": history.position,
        "case_number": case.tracking_number or case.id,
        "item_code": case.item_code,
        "item_name": case.item_name,
        "region": target.region,
        "system_code": target.system_code,
        "department": case.department,
        "department_name": catalog.department_name(case.department),
        "status": history.status,
        "occurred_at": _time(history.at),
        "actor": actor_label(history.actor_role, history.actor_scope, "system"),
    }
    if kind == "acceptance":
        accepted = history.status == "accepted"
        record |= {
            "accepted": "1" if accepted else "0",
            "accepted_at": _time(history.at),
            "applicant_type": APPLICANT_TYPE_CITIZEN,
            "applicant_name": case.applicant_name_masked,
            "applicant_id_type": ID_TYPE_CITIZEN,
            "applicant_id_number": case.applicant_id_number_masked,
            "handling_unit": case.handling_unit,
        }
        if accepted:
            record |= {"promised_days": case.promised_days, "promised_date": case.deadline.isoformat()}
        else:
            record["not_accepted_reason"] = history.note or ""
    elif kind == "process":
        before = earlier[0] if earlier else None
        record |= {
            "step": _status_name(history.from_status),
            "action": _status_name(history.status),
            "step_started_at": _time(before.at if before is not None else history.at),
            "step_ended_at": _time(history.at),
            "opinion": history.note or "",
        }
    elif kind == "special_procedure":
        if history.status == "special_procedure":
            name, reason = _procedure(history.note)
            record |= {"procedure_kind": name, "procedure_started_at": _time(history.at), "procedure_reason": reason}
        else:
            start = next((h for h in earlier if h.status == "special_procedure"), None)
            name, reason = _procedure(start.note if start is not None else None)
            record |= {
                "procedure_kind": name,
                "procedure_started_at": _time(start.at if start is not None else history.at),
                "procedure_ended_at": _time(history.at),
                "procedure_reason": reason,
            }
    else:
        decided = history.from_status if history.status == "delivered" else history.status
        record |= {
            "completed_at": _time(history.at),
            "result": _DECISIONS.get(decided or "", decided or ""),
            "result_text": case.result or "",
        }
        if history.status == "delivered":
            record |= {"delivered_at": _time(history.at), "delivery_method": DELIVERY_AT_WINDOW}
        level = (
            await conn.execute(
                select(evaluations.c.level)
                .where(evaluations.c.application_id == case.id)
                .order_by(evaluations.c.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if level is not None:
            record["satisfaction"] = int(level)
    return {key: value for key, value in record.items() if value is not None}


def to_platform(record: dict[str, Any], target: ProvinceTarget) -> dict[str, Any]:
    """The record with the platform's field names."""
    return {target.fields[key]: value for key, value in record.items()}


__all__ = [
    "APPLICANT_TYPE_CITIZEN",
    "DELIVERY_AT_WINDOW",
    "ID_TYPE_CITIZEN",
    "KIND_CODES",
    "build_record",
    "record_kind",
    "to_platform",
]
