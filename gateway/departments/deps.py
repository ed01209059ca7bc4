"""The department files the push route reads (``[push]`` of each), and its service built from the context."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from connectors.registry import load_departments
from connectors.spec import DepartmentSpec, SpecError
from gateway.context import AppContext
from gateway.departments.services import DepartmentEventService
from gateway.lifecycle.deps import provide_lifecycle

log = logging.getLogger("onewindow.departments")


@functools.cache
def department_files(config_dir: Path) -> dict[str, DepartmentSpec]:
    """Enabled departments by code (read once per config dir); invalid files: none, logged."""
    try:
        return {spec.code: spec for spec in load_departments(config_dir) if spec.enabled}
    except SpecError as exc:
        log.error("department files are invalid; no department can push events:\n%s", exc)
        return {}


def provide_department_events(context: AppContext) -> DepartmentEventService:
    return DepartmentEventService(database=context.database, lifecycle=provide_lifecycle(context))


__all__ = ["department_files", "provide_department_events"]
