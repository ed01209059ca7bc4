"""Imports every domain's ``tables`` module, so `metadata` (and Alembic) sees the whole schema.

To add a domain: append its module name to `DOMAIN_TABLE_MODULES` (one line). A listed module that does not
exist yet is skipped, so work in progress never breaks the others.
"""

from __future__ import annotations

import importlib

from gateway.storage.metadata import metadata

DOMAIN_TABLE_MODULES: tuple[str, ...] = (
    "gateway.audit.tables",
    "gateway.certificates.tables",
    "gateway.identity.tables",
    "gateway.cases.tables",
    "gateway.tracking.tables",
    "gateway.stores.tables",
    "gateway.evidence.tables",
    "gateway.web.tables",
    "gateway.departments.tables",
    "gateway.province.tables",
    "gateway.scheduling.tables",
    "gateway.events.tables",
    "gateway.grid.tables",
    "gateway.reports.tables",
)


def _import_domains() -> None:
    for name in DOMAIN_TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


_import_domains()

__all__ = ["DOMAIN_TABLE_MODULES", "metadata"]
