"""A clerk's two acts on one material's trust level (each one transaction with the application's version bump and
its audit record, idempotent with an ``Idempotency-Key``, scoped like every case route, ``If-Match`` honoured):

- **verification against the original** (核验原件, C → B): the uploaded scan is what the applicant's original shows.
  The material becomes B, and the copy is kept in the applicant's evidence store (`gateway.evidence.store`) for
  reuse by later applications, valid until the day the clerk gives (the original's expiry) or a year.
  Verifying a B copy again answers it as it stands.
- **a commitment** (告知承诺, → D): the applicant signs the catalog's commitment text instead of bringing the
  material; 422 naming the material when the catalog does not allow one. The check (事后核查) opens at acceptance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.calendar import local_date
from catalog.catalog import Catalog
from catalog.models import Item, Unit
from gateway.cases.access import audit_case, check_if_match, load_application, load_material
from gateway.cases.tables import application_materials, applications
from gateway.cases.views import material_view
from gateway.evidence.levels import COMMITTED, UPLOADED, VERIFIED
from gateway.evidence.schemas import CommitMaterial, VerifyMaterial
from gateway.evidence.store import DEFAULT_VALIDITY_DAYS, EvidenceStore
from gateway.identity.principal import Principal, Role
from gateway.intake import uploads
from gateway.intake.reuse import level_values
from gateway.intake.schemas import MaterialLevel
from gateway.privacy import FieldCipher
from gateway.problems import Conflict, FieldError, Forbidden, Unprocessable
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.stores import IdempotentRequest

#: Statuses in which the window changes materials (the same as uploads).
LEVEL_STATUSES = ("draft", "correction_required")
#: The longest a verified copy may be kept for reuse.
MAX_VALIDITY_DAYS = 5 * 366


class MaterialEvidenceService:
    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        cipher: FieldCipher,
        data_dir: Path,
        idempotency: IdempotentRequest | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.catalog = catalog
        self.data_dir = Path(data_dir)
        self.cipher = cipher
        self.store = EvidenceStore(cipher)
        self.idempotency = idempotency
        self.now = now

    def _window(self, principal: Principal) -> Unit:
        unit = self.catalog.unit(principal.unit) if principal.unit else None
        if principal.role is not Role.CLERK or unit is None or unit.level not in ("street", "community"):
            raise Forbidden("Materials are verified and commitments taken by a clerk at a street or community window.")
        return unit

    @staticmethod
    def _check_status(row: Row[Any], if_match: str | None) -> None:
        check_if_match(row, if_match)
        if row.status not in LEVEL_STATUSES:
            raise Conflict(
                f"A material's level changes while the application is a draft or needs correction; it is {row.status}.",
                extra={"current_status": row.status, "allowed": list(LEVEL_STATUSES)},
            )

    def _item(self, row: Row[Any]) -> Item:
        item = self.catalog.item(row.item_code)
        if item is None:
            raise Conflict(f"Item {row.item_code} is no longer in the catalog.")
        return item

    async def _finish(
        self, conn: AsyncConnection, row: Row[Any], material_id: str, values: dict[str, Any], now: dt.datetime
    ) -> MaterialLevel:
        await conn.execute(
            update(application_materials).where(application_materials.c.id == material_id).values(**values)
        )
        bumped = await conn.execute(
            update(applications)
            .where(applications.c.id == row.id, applications.c.version == row.version)
            .values(version=row.version + 1, updated_at=now)
        )
        if bumped.rowcount != 1:
            raise Conflict("The application changed meanwhile; reload it and try again.")
        fresh = (
            await conn.execute(select(application_materials).where(application_materials.c.id == material_id))
        ).one()
        return _answer(row.id, fresh)

    async def _record(self, conn: AsyncConnection, result: MaterialLevel) -> None:
        if self.idempotency is not None:
            await self.idempotency.record(conn, result)

    # -- C → B -------------------------------------------------------------------------------------------------
    def _verify_problems(self, body: VerifyMaterial, today: dt.date) -> None:
        errors: list[FieldError] = []
        if body.original_seen is not True:
            errors.append(
                FieldError("original_seen", "must be true: compare the scan with the applicant's original first")
            )
        if body.valid_until is not None:
            if body.valid_until < today:
                errors.append(FieldError("valid_until", "is in the past: a verified copy must be valid today"))
            elif (body.valid_until - today).days > MAX_VALIDITY_DAYS:
                errors.append(FieldError("valid_until", f"is too far ahead (at most {MAX_VALIDITY_DAYS} days)"))
        if errors:
            raise Unprocessable("The verification cannot be recorded as it is.", errors=errors)

    @staticmethod
    def _verifiable(material: Row[Any]) -> bool:
        """False when already verified (answered as it stands); 409 unless it is an upload (C)."""
        if material.level == VERIFIED and material.file_sha256:
            return False
        if material.level != UPLOADED or not material.file_sha256:
            raise Conflict(
                "Only an uploaded scan (level C) can be verified against the original"
                + (f"; this material is {material.level}." if material.level else "; upload the scan first."),
                extra={"level": material.level},
            )
        return True

    async def verify(
        self, principal: Principal, application_id: str, key: str, body: VerifyMaterial, if_match: str | None = None
    ) -> MaterialLevel:
        now = self.now()
        today = local_date(now)
        window = self._window(principal)
        self._verify_problems(body, today)
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            material = await load_material(conn, row, key)
            self._check_status(row, if_match)
            if not self._verifiable(material):
                return _answer(row.id, material)
            item = self._item(row)
        content = await asyncio.to_thread(uploads.read, self.data_dir, material.file_sha256, cipher=self.cipher)
        if content is None:
            raise Conflict("The scan is no longer stored; upload it again.", extra={"level": material.level})
        valid_until = body.valid_until or today + dt.timedelta(days=DEFAULT_VALIDITY_DAYS)
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal, for_update=True)
            fresh = await load_material(conn, row, key)
            self._check_status(row, if_match)
            if fresh.file_sha256 != material.file_sha256:
                raise Conflict("Another scan was uploaded meanwhile; verify that one.", extra={"level": fresh.level})
            if not self._verifiable(fresh):
                return _answer(row.id, fresh)
            spec = item.material(key)
            values: dict[str, Any] = {"level": VERIFIED, "level_set_by": principal.actor, "level_set_at": now}
            kept = None
            if spec is None or spec.reusable:
                kept = await self.store.keep(
                    conn,
                    holder_index=row.applicant_id_index,
                    material_key=key,
                    name=fresh.name,
                    content=content,
                    content_type=fresh.file_type or "",
                    valid_until=valid_until,
                    application_id=row.id,
                    item_code=row.item_code,
                    unit=window.code,
                    actor=principal.actor,
                    at=now,
                )
            answer = await self._finish(conn, row, fresh.id, values, now)
            await audit_case(
                conn,
                principal,
                row.id,
                "material.verified",
                {
                    "material": key,
                    "sha256": fresh.file_sha256,
                    "from": UPLOADED,
                    "to": VERIFIED,
                    "kept": kept.evidence_id if kept else None,
                    "valid_until": valid_until.isoformat() if kept else None,
                },
            )
            await self._record(conn, answer)
        return answer

    # -- → D -------------------------------------------------------------------------------------------------
    async def commit(
        self, principal: Principal, application_id: str, key: str, body: CommitMaterial, if_match: str | None = None
    ) -> MaterialLevel:
        now = self.now()
        self._window(principal)
        if body.agreed is not True:
            raise Unprocessable(
                "The applicant has not signed the commitment.",
                errors=[FieldError("agreed", "must be true: the applicant read and signed the commitment text")],
            )
        async with self.db.read() as conn:
            row = await load_application(conn, application_id, principal)
            await load_material(conn, row, key)
            self._check_status(row, if_match)
            item = self._item(row)
        spec = item.material(key)
        if spec is None or not spec.commitment:
            name = spec.name if spec else key
            raise Unprocessable(
                f"{name} cannot be replaced by a commitment.",
                errors=[FieldError(f"materials.{key}", f"{name} cannot be replaced by a commitment (告知承诺)")],
            )
        async with self.db.transaction() as conn:
            row = await load_application(conn, application_id, principal, for_update=True)
            material = await load_material(conn, row, key)
            self._check_status(row, if_match)
            if material.level == COMMITTED:
                return _answer(row.id, material)
            values = level_values(material_view(material))
            values.update(
                state="provided",
                reason=None,
                certificate=None,
                file_sha256=None,
                file_type=None,
                file_size=None,
                level=COMMITTED,
                level_set_by=principal.actor,
                level_set_at=now,
                commitment=spec.commitment,
                evidence=None,
                updated_at=now,
            )
            answer = await self._finish(conn, row, material.id, values, now)
            await audit_case(
                conn, principal, row.id, "material.committed", {"material": key, "from": material.level, "to": "D"}
            )
            await self._record(conn, answer)
        return answer


def _answer(application_id: str, material: Row[Any]) -> MaterialLevel:
    view = material_view(material)
    fields = {f: getattr(view, f) for f in view.__struct_fields__}
    return MaterialLevel(application_id=application_id, **fields)


__all__ = ["LEVEL_STATUSES", "MaterialEvidenceService"]
