"""Trust levels of materials and the acceptance rule (docs/domain.md#trust-levels).

A material that is there has a level: **A** an e-certificate signed by its issuer (prefilled from the certificate
store, or issued by the district itself), **B** a copy a window clerk verified against the original (or such a
copy reused from the applicant's evidence store), **C** an upload not yet verified, **D** the applicant's written
commitment (告知承诺). The catalog gives each material the lowest level acceptance takes (``min_level``, C unless
it says otherwise); A > B > C > D. A commitment satisfies a material only where the catalog allows one for it
(``commitment``), whatever its ``min_level``: the catalog declaring the commitment is what makes D acceptable.
"""

from __future__ import annotations

from collections.abc import Iterable

from catalog.models import TRUST_LEVEL_NAMES, Item, Material, level_rank
from gateway.cases.views import MaterialView
from gateway.problems import FieldError

#: The level each way of satisfying a material gives.
CERTIFICATE = "A"
VERIFIED = "B"
UPLOADED = "C"
COMMITTED = "D"
#: Levels that count as "without paper" in the prefill rate: nothing new was brought to the window.
PAPERLESS = frozenset({"A", "B", "D"})


def satisfies(material: Material, level: str | None) -> bool:
    """Whether a material at ``level`` may be accepted."""
    if level is None:
        return False
    if level == COMMITTED:
        return bool(material.commitment)
    return level_rank(level) >= level_rank(material.min_level)


def level_problems(item: Item, views: Iterable[MaterialView]) -> list[FieldError]:
    """A `FieldError` (``materials.<key>``) for every material that is there but below the level it needs.

    Missing materials are the completeness check's business (`gateway.cases.views.missing_required`); this one
    looks at the ones present, required or not: a conditional material handed in must hold up as well.
    """
    errors: list[FieldError] = []
    for view in views:
        if view.state not in ("prefilled", "provided"):
            continue
        material = item.material(view.key)
        if material is None or satisfies(material, view.level):
            continue
        needed = material.min_level
        have = view.level or "none"
        how = {
            "A": "only the issuer's e-certificate is accepted",
            "B": "a clerk must verify the copy against the original (POST …/materials/{key}/verification)",
            "C": "upload a scan",
            "D": "a commitment",
        }[needed].replace("{key}", view.key)
        errors.append(
            FieldError(
                f"materials.{view.key}",
                f"{view.name} needs trust level {needed} ({TRUST_LEVEL_NAMES[needed]}) or better; it is {have}: {how}",
            )
        )
    return errors


def needed_levels(item: Item, keys: Iterable[str]) -> dict[str, str]:
    """The level each of ``keys`` needs (for a 422's ``levels`` member)."""
    out: dict[str, str] = {}
    for key in keys:
        material = item.material(key)
        if material is not None:
            out[key] = material.min_level
    return out


__all__ = [
    "CERTIFICATE",
    "COMMITTED",
    "PAPERLESS",
    "UPLOADED",
    "VERIFIED",
    "level_problems",
    "needed_levels",
    "satisfies",
]
