"""Dependency providers of the intake routes: services built per request from the application context."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.certificates.store import CertificateStore
from gateway.context import AppContext
from gateway.intake.applicant import PersonalDataService
from gateway.intake.services import IntakeService
from gateway.intake.verification import MaterialEvidenceService
from gateway.stores import IdempotentRequest


def provide_intake(
    context: NamedDependency[AppContext], idempotency: NamedDependency[IdempotentRequest | None] = None
) -> IntakeService:
    """The intake service of one request; its writes commit the request's ``Idempotency-Key`` record too."""
    return IntakeService(
        database=context.database,
        catalog=context.catalog,
        calendar=context.calendar,
        cipher=context.cipher,
        settings=context.settings,
        certificates=context.certificates,
        idempotency=idempotency,
    )


def provide_material_evidence(
    context: NamedDependency[AppContext], idempotency: NamedDependency[IdempotentRequest | None] = None
) -> MaterialEvidenceService:
    """Verification against the original (C → B) and commitments (D) of one request."""
    return MaterialEvidenceService(
        database=context.database,
        catalog=context.catalog,
        cipher=context.cipher,
        data_dir=context.settings.data_dir,
        idempotency=idempotency,
    )


def provide_personal_data(context: NamedDependency[AppContext]) -> PersonalDataService:
    # An app without the certificates lifespan (some tests) still reads stored certificates.
    store = context.certificate_store or CertificateStore(context.database, context.cipher)
    return PersonalDataService(
        database=context.database, cipher=context.cipher, store=store, data_dir=context.settings.data_dir
    )


__all__ = ["provide_intake", "provide_material_evidence", "provide_personal_data"]
