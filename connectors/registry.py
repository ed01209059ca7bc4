"""Loading every department file (``<config>/departments/*.toml``) and the trust store (``<config>/trust/``).

Problems are collected across all files and raised together as one `SpecError`, one ``file: field: message``
line each, so ``onewindow connectors check`` can print them all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from connectors.spec import DepartmentSpec, SpecError, load_department_file
from connectors.trust import TrustStore

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def load_department_dir(directory: Path) -> list[DepartmentSpec]:
    """Every ``*.toml`` in ``directory``, sorted by file name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SpecError([f"{directory}: (directory): does not exist"])
    specs: list[DepartmentSpec] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            specs.append(load_department_file(path))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return specs


def load_departments(config_dir: Path = DEFAULT_CONFIG_DIR) -> list[DepartmentSpec]:
    """The department files under ``config_dir/departments`` (the gateway's config dir, settings.config_dir)."""
    return load_department_dir(Path(config_dir) / "departments")


def load_trust(config_dir: Path = DEFAULT_CONFIG_DIR) -> TrustStore:
    """The issuer keys under ``config_dir/trust``."""
    return TrustStore.load(Path(config_dir) / "trust")


def rebase(specs: Iterable[DepartmentSpec], base_urls: Mapping[str, str]) -> list[DepartmentSpec]:
    """Specs pointed at other URLs by department code (simulators on ephemeral ports); others unchanged."""
    return [spec.rebased(base_urls[spec.code]) if spec.code in base_urls else spec for spec in specs]


def type_problems(specs: Iterable[DepartmentSpec], certificate_types: Mapping[str, tuple[str, str]]) -> list[str]:
    """Disagreements with the catalog's certificate types (``key -> (type_code, issuing_department)``)."""
    problems: list[str] = []
    for spec in specs:
        for key, code in spec.types.items():
            known = certificate_types.get(key)
            if known is None:
                problems.append(f"{spec.code}: types.{key}: not a certificate type in the catalog")
            elif known[0] != code:
                problems.append(f"{spec.code}: types.{key}: type code {code} differs from the catalog's {known[0]}")
            elif known[1] != spec.code:
                problems.append(f"{spec.code}: types.{key}: the catalog says {known[1]} issues it")
    return problems
