"""The printable notices (通知书) of a case: what each says, and which statuses it belongs to.

- 受理通知书 (receipt): after acceptance; the query code is printed on it only once, for the clerk who accepted
  (the session parks it until then, `gateway.web.sessions`).
- 补正告知书 (correction): while the case waits for corrected materials, with the one-time list (一次性告知) of
  everything still to bring, so the citizen never has to come back for something that was not said.
- 不予受理通知书 (refusal): the reason and the right to appeal.
- 办结通知书 (completion): the decision.

Each notice carries the district, the window, the item, the masked applicant, the materials and how each was
satisfied, the tracking number, the deadline and a QR code to ``/track#n=…`` (``&c=…`` on the receipt only).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from catalog.catalog import Catalog
from gateway.cases.machine import COMPLETED
from gateway.cases.views import MaterialView
from gateway.lifecycle.schemas import ApplicationView
from gateway.web.rendering import qr_svg

DISTRICT = "湘潭市雨湖区"

#: kind -> (title, the statuses in which the notice can be printed).
NOTICE_KINDS: dict[str, tuple[str, frozenset[str]]] = {
    "receipt": (
        "受理通知书",
        frozenset({"accepted", "in_review", "correction_required", "special_procedure"} | COMPLETED),
    ),
    "correction": ("补正告知书", frozenset({"correction_required"})),
    "refusal": ("不予受理通知书", frozenset({"not_accepted"})),
    "completion": ("办结通知书", COMPLETED),
}

APPEAL_RIGHTS = (
    "申请人如对本决定不服，可以自收到本通知书之日起六十日内依法向湘潭市雨湖区人民政府申请行政复议，"
    "也可以自收到本通知书之日起六个月内依法向人民法院提起行政诉讼。"
)


def satisfied_by(material: MaterialView) -> str:
    """How a material was satisfied, in the notice's words."""
    if material.state == "prefilled" and material.certificate is not None:
        cert = material.certificate
        return f"电子证照免提交（{cert.name}，{cert.issuer_name}颁发）"
    if material.state == "prefilled":
        return "电子证照免提交"
    if material.state == "provided":
        return "已收取（扫描件已归档）"
    if material.state == "unavailable":
        return "未能调取电子证照，需申请人提供" + (f"（{material.reason}）" if material.reason else "")
    return "尚未提供" if material.required else "可选，未提供"


def to_correct(view: ApplicationView) -> list[str]:
    """The one-time list: every required material not yet satisfied, and what the officer asked for."""
    wanted = [
        f"{m.name}（{satisfied_by(m)}）"
        for m in view.materials
        if m.required and m.state not in ("prefilled", "provided")
    ]
    asked = [h.note for h in view.history if h.status == "correction_required" and h.note]
    if asked:
        wanted.append(f"审查意见：{asked[-1]}")
    return wanted


def reason(view: ApplicationView, status: str) -> str:
    notes = [h.note for h in view.history if h.status == status and h.note]
    return notes[-1] if notes else ""


def notice_context(
    kind: str,
    view: ApplicationView,
    catalog: Catalog,
    *,
    base_url: str,
    query_code: str | None = None,
) -> dict[str, Any]:
    title, _ = NOTICE_KINDS[kind]
    window = catalog.unit(view.filing_unit)
    handling = catalog.unit(view.handling_unit)
    link = f"{base_url.rstrip('/')}/track#n={view.tracking_number or ''}"
    if query_code:
        link += f"&c={query_code}"
    qr: Markup | None = qr_svg(link) if view.tracking_number else None
    return {
        "kind": kind,
        "title": title,
        "district": DISTRICT,
        "window": window.name if window else view.filing_unit,
        "handling": handling.name if handling else view.handling_unit,
        "view": view,
        "materials": [(m, satisfied_by(m)) for m in view.materials],
        "query_code": query_code,
        "qr": qr,
        "track_url": f"{base_url.rstrip('/')}/track",
        "to_correct": to_correct(view) if kind == "correction" else [],
        "reason": reason(view, "not_accepted") if kind == "refusal" else "",
        "appeal": APPEAL_RIGHTS,
    }


__all__ = ["APPEAL_RIGHTS", "DISTRICT", "NOTICE_KINDS", "notice_context", "satisfied_by", "to_correct"]
