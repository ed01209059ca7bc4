"""Dependency providers of the evidence routes."""

from __future__ import annotations

from litestar.di import NamedDependency

from gateway.context import AppContext
from gateway.evidence.checks import CheckService
from gateway.evidence.services import EvidenceService
from gateway.stores import IdempotentRequest


def provide_evidence(
    context: NamedDependency[AppContext], idempotency: NamedDependency[IdempotentRequest | None] = None
) -> EvidenceService:
    return EvidenceService(database=context.database, cipher=context.cipher, idempotency=idempotency)


def provide_checks(context: NamedDependency[AppContext]) -> CheckService:
    return CheckService(database=context.database)


__all__ = ["provide_checks", "provide_evidence"]
