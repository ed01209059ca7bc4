"""The applicant's evidence store (一次提交、多次复用): copies a window clerk verified against the original (level B),
kept encrypted with their SHA-256 and validity, offered as prefill to any later application — at any window —
whose item needs a material of the same key, until the copy expires or the applicant withdraws consent.

What is offered is checked first: withdrawn or expired copies are left out, and a copy whose decrypted content
no longer hashes to the stored SHA-256 (or no longer decrypts) is never offered. Each reuse is recorded like a
certificate pull: one ``evidence.reused`` audit record with the purpose (the application it serves), the actor
and the copies used, in the filing transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.cases.views import EvidenceSource
from gateway.evidence.tables import evidence_materials
from gateway.privacy import DecryptionError, FieldCipher
from gateway.storage.metadata import new_id

log = logging.getLogger("onewindow.evidence")

_TABLE = "evidence_materials"
_COLUMN = "content_enc"
#: A verified copy is offered this many days after verification unless the clerk says otherwise.
DEFAULT_VALIDITY_DAYS = 365


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    """A verified copy that may prefill a material now."""

    material_key: str
    name: str
    sha256: str
    content_type: str
    size: int
    source: EvidenceSource


#: The usable verified copies of one holder among some material keys, newest first (built once: a statement built
#: per intake, with its expanding parameter, left reference cycles for the garbage collector).
_OFFERS = (
    select(evidence_materials)
    .where(
        evidence_materials.c.holder_index == bindparam("holder_index"),
        evidence_materials.c.material_key.in_(bindparam("keys", expanding=True)),
        evidence_materials.c.withdrawn_at.is_(None),
        evidence_materials.c.valid_until >= bindparam("today", type_=evidence_materials.c.valid_until.type),
    )
    .order_by(evidence_materials.c.verified_at.desc())
)


class EvidenceStore:
    """Verified copies of one gateway, encrypted with its `FieldCipher`."""

    def __init__(self, cipher: FieldCipher) -> None:
        self.cipher = cipher

    def _seal(self, content: bytes, row_id: str) -> str:
        return self.cipher.encrypt(
            base64.b64encode(content).decode("ascii"), table=_TABLE, column=_COLUMN, row_id=row_id
        )

    def _content(self, token: str, row_id: str) -> bytes | None:
        try:
            return base64.b64decode(self.cipher.decrypt(token, table=_TABLE, column=_COLUMN, row_id=row_id))
        except (DecryptionError, ValueError):
            return None

    async def keep(
        self,
        conn: AsyncConnection,
        *,
        holder_index: str,
        material_key: str,
        name: str,
        content: bytes,
        content_type: str,
        valid_until: dt.date,
        application_id: str,
        item_code: str,
        unit: str,
        actor: str,
        at: dt.datetime,
    ) -> EvidenceSource:
        """Keep a verified copy (in the caller's transaction, under the application's row lock): one per material
        of a case, replaced when the clerk verifies a new scan of it."""
        digest = hashlib.sha256(content).hexdigest()
        existing = (
            await conn.execute(
                select(evidence_materials.c.id).where(
                    evidence_materials.c.application_id == application_id,
                    evidence_materials.c.material_key == material_key,
                )
            )
        ).scalar_one_or_none()
        row_id = existing or new_id()
        values: dict[str, Any] = {
            "holder_index": holder_index,
            "material_key": material_key,
            "name": name,
            "file_sha256": digest,
            "content_type": content_type,
            "size": len(content),
            "content_enc": self._seal(content, row_id),
            "valid_until": valid_until,
            "application_id": application_id,
            "item_code": item_code,
            "verified_unit": unit,
            "verified_by": actor,
            "verified_at": at,
            "withdrawn_at": None,
        }
        if existing is None:
            await conn.execute(evidence_materials.insert().values(id=row_id, **values))
        else:
            await conn.execute(update(evidence_materials).where(evidence_materials.c.id == row_id).values(**values))
        return EvidenceSource(
            evidence_id=row_id,
            application_id=application_id,
            item_code=item_code,
            unit=unit,
            verified_by=actor,
            verified_at=at,
            valid_until=valid_until,
            sha256=digest,
        )

    async def offers(
        self, conn: AsyncConnection, holder_index: str, keys: Sequence[str], today: dt.date
    ) -> dict[str, Offer]:
        """The newest usable verified copy per material key among ``keys`` (see the module docstring)."""
        if not keys:
            return {}
        rows = await conn.execute(
            _OFFERS, {"holder_index": holder_index, "keys": list(dict.fromkeys(keys)), "today": today}
        )
        found: dict[str, Offer] = {}
        for row in rows:
            if row.material_key in found:
                continue
            content = self._content(row.content_enc, row.id)
            if content is None or hashlib.sha256(content).hexdigest() != row.file_sha256:
                # Altered at rest: never offered (and said once in the log, without the holder).
                log.warning("verified copy %s does not match its stored hash; not offered", row.id)
                continue
            found[row.material_key] = Offer(
                material_key=row.material_key,
                name=row.name,
                sha256=row.file_sha256,
                content_type=row.content_type,
                size=row.size,
                source=EvidenceSource(
                    evidence_id=row.id,
                    application_id=row.application_id,
                    item_code=row.item_code,
                    unit=row.verified_unit,
                    verified_by=row.verified_by,
                    verified_at=row.verified_at,
                    valid_until=row.valid_until,
                    sha256=row.file_sha256,
                ),
            )
        return found

    async def copy(self, conn: AsyncConnection, evidence_id: str) -> tuple[bytes, str] | None:
        """A kept copy's content and type — for the case that reused it, even after a consent withdrawal (that
        stops new reuse, not the record of a case already filed) — or None when it is gone or altered at rest."""
        row = (
            await conn.execute(
                select(
                    evidence_materials.c.content_enc,
                    evidence_materials.c.file_sha256,
                    evidence_materials.c.content_type,
                ).where(evidence_materials.c.id == evidence_id)
            )
        ).first()
        if row is None:
            return None
        content = self._content(row.content_enc, evidence_id)
        if content is None or hashlib.sha256(content).hexdigest() != row.file_sha256:
            log.warning("verified copy %s does not match its stored hash; not served", evidence_id)
            return None
        return content, row.content_type

    @staticmethod
    async def record_reuse(
        conn: AsyncConnection, *, holder_index: str, application_id: str, actor: str, used: Sequence[Offer]
    ) -> None:
        """The audit record of a reuse, like a certificate pull's: purpose = the application it serves."""
        if not used:
            return
        await audit.append(
            conn,
            actor=actor,
            action="evidence.reused",
            object_type="evidence_holder",
            object_id=holder_index,
            purpose=f"application:{application_id}",
            detail={
                "materials": {
                    o.material_key: {"evidence": o.source.evidence_id, "from_application": o.source.application_id}
                    for o in used
                }
            },
        )

    @staticmethod
    async def withdraw(
        conn: AsyncConnection, *, holder_index: str, material_key: str | None, actor: str, role: str, at: dt.datetime
    ) -> int:
        """The applicant withdraws consent to reuse (one material key, or every copy): never offered again."""
        c = evidence_materials.c
        conditions = [c.holder_index == holder_index, c.withdrawn_at.is_(None)]
        if material_key:
            conditions.append(c.material_key == material_key)
        result = await conn.execute(update(evidence_materials).where(*conditions).values(withdrawn_at=at))
        count = max(int(result.rowcount or 0), 0)
        await audit.append(
            conn,
            actor=actor,
            role=role,
            action="evidence.consent_withdrawn",
            object_type="evidence_holder",
            object_id=holder_index,
            purpose="consent withdrawal",
            detail={"material_key": material_key, "withdrawn": count},
        )
        return count


__all__ = ["DEFAULT_VALIDITY_DAYS", "EvidenceStore", "Offer"]
