"""Intake's side of evidence: the trust level of each material as it is filled, verified copies and the district's
own certificates offered for what the departments did not supply, and commitments signed at filing.

Filing asks the evidence store (`gateway.evidence.store`) for the applicant's usable verified copies of the
materials still missing — each reusable material the catalog lets be reused, at any window — and the certificate
store for certificates the district issued itself; what is found is prefilled (B, or A) with where it came from, and
the reuse is recorded in the filing transaction (``evidence.reused``: purpose, actor, the copies used).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.models import Item
from gateway.cases.views import MaterialView
from gateway.certificates.store import Holder
from gateway.evidence.levels import COMMITTED, VERIFIED
from gateway.evidence.results import issued_certificates
from gateway.evidence.store import EvidenceStore, Offer
from gateway.identity.principal import Principal
from gateway.problems import FieldError, Unprocessable
from gateway.storage.database import Database

#: Material states that mean "not there yet": the ones reuse may fill.
_OPEN_STATES = ("missing", "unavailable")


def set_level(view: MaterialView, level: str, by: str, at: dt.datetime) -> None:
    view.level = level
    view.level_set_by = by
    view.level_set_at = at


def level_values(view: MaterialView) -> dict[str, Any]:
    """The material row's level columns for ``view``."""
    return {
        "level": view.level,
        "level_set_by": view.level_set_by,
        "level_set_at": view.level_set_at,
        "commitment": view.commitment,
        "evidence": msgspec.to_builtins(view.evidence) if view.evidence else None,
    }


async def prefill(
    db: Database,
    evidence: EvidenceStore,
    item: Item,
    views: list[MaterialView],
    holder: Holder,
    today: dt.date,
    holder_name: str,
    principal: Principal,
    now: dt.datetime,
) -> list[Offer]:
    """Fill what is still missing from the district's own certificates (A) and verified copies (B); the copies
    used (for `record`)."""
    open_views = [v for v in views if v.state in _OPEN_STATES]
    if not open_views:
        return []
    reusable = {m.key for m in item.materials if m.reusable}
    types = [v.certificate_type for v in open_views if v.certificate_type]
    async with db.read() as conn:
        issued = await issued_certificates(conn, holder, [t for t in types if t], today, holder_name=holder_name)
        offers = await evidence.offers(conn, holder.index, [v.key for v in open_views if v.key in reusable], today)
    used: list[Offer] = []
    for view in open_views:
        certificate = issued.get(view.certificate_type or "")
        if certificate is not None:
            view.state = "prefilled"
            view.reason = None
            view.certificate = certificate
            set_level(view, "A", "system", now)
            continue
        offer = offers.get(view.key)
        if offer is not None:
            view.state = "prefilled"
            view.reason = None
            view.evidence = offer.source
            set_level(view, VERIFIED, principal.actor, now)
            used.append(offer)
    return used


async def record(
    conn: AsyncConnection, used: Sequence[Offer], *, holder: Holder, application_id: str, principal: Principal
) -> None:
    await EvidenceStore.record_reuse(
        conn, holder_index=holder.index, application_id=application_id, actor=principal.actor, used=used
    )


def commitment_errors(item: Item, keys: Sequence[str]) -> list[FieldError]:
    """A `FieldError` (``commitments.<key>``) for each key the catalog allows no commitment for."""
    errors: list[FieldError] = []
    for key in dict.fromkeys(keys):
        material = item.material(key)
        if material is None:
            errors.append(FieldError(f"commitments.{key}", f"item {item.code} has no material {key!r}"))
        elif not material.commitment:
            errors.append(
                FieldError(f"commitments.{key}", f"{material.name} cannot be replaced by a commitment (告知承诺)")
            )
    return errors


def apply_commitments(
    item: Item, views: list[MaterialView], keys: Sequence[str], principal: Principal, now: dt.datetime
) -> None:
    """Replace each of ``keys`` by the catalog's commitment (level D); 422 naming every key that does not allow
    one (checked before anything is looked up or stored: `commitment_errors`)."""
    errors = commitment_errors(item, keys)
    if errors:
        raise Unprocessable("A commitment was given for a material the catalog does not allow it for.", errors=errors)
    by_key = {v.key: v for v in views}
    for key in dict.fromkeys(keys):
        material = item.material(key)
        view = by_key.get(key)
        if material is not None and view is not None:
            commit_view(view, material.commitment, principal, now)


def commit_view(view: MaterialView, text: str, principal: Principal, now: dt.datetime) -> None:
    view.state = "provided"
    view.reason = None
    view.certificate = None
    view.file = None
    view.evidence = None
    view.commitment = text
    set_level(view, COMMITTED, principal.actor, now)


__all__ = ["apply_commitments", "commit_view", "commitment_errors", "level_values", "prefill", "record", "set_level"]
