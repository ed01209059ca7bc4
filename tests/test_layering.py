"""Which package may import which, checked on the source of every module (nothing is imported or run).

- ``catalog`` depends on nothing else of ours; ``connectors`` on ``catalog`` only; ``gateway`` on both.
- ``demokit`` (simulators, demo runner) is development tooling: production code never imports it, except the two
  commands that start it, ``onewindow demo`` and ``onewindow simulate``, and those only inside a function (the
  command line imports every command module on every start).

Every form counts: ``import x``, ``from x import y``, relative imports, imports under ``TYPE_CHECKING`` or inside
functions, and ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = ("catalog", "connectors", "gateway")
#: Top-level packages each production package must not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "catalog": ("connectors", "gateway", "demokit"),
    "connectors": ("gateway", "demokit"),
    "gateway": ("demokit",),
}
#: The only production modules that may import demokit (inside the command, so other commands never load it).
DEMOKIT_ALLOWED = frozenset({"gateway.commands.demo", "gateway.commands.simulate"})
_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imported_names(tree: ast.AST, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _resolve(module, is_package, node.level, node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0]
            if name in _DYNAMIC_IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_lines(tree: ast.Module) -> set[int]:
    """Lines of the statements that run when the module is imported: outside functions and ``TYPE_CHECKING``."""
    lines: set[int] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or _is_type_checking(node):
            if isinstance(node, ast.If):
                stack.extend(node.orelse)
            continue
        if isinstance(node, ast.stmt | ast.expr):
            lines.add(node.lineno)
        stack.extend(ast.iter_child_nodes(node))
    return lines


def violations(source: str, path: str, module: str, *, is_package: bool = False) -> list[str]:
    """One ``path:line: message`` per forbidden import in ``source`` (the code of ``module``)."""
    package = module.split(".")[0]
    forbidden = FORBIDDEN.get(package, ())
    tree = ast.parse(source, filename=path)
    at_import_time = import_time_lines(tree)
    found: list[str] = []
    for line, name in imported_names(tree, module, is_package=is_package):
        top = name.split(".")[0]
        if top not in forbidden:
            continue
        if top == "demokit" and module in DEMOKIT_ALLOWED:
            if line in at_import_time:
                found.append(f"{path}:{line}: {module} imports {name}: only inside the command, not on import")
            continue
        why = (
            "production code never imports demokit (only the demo and simulate commands may)"
            if top == "demokit"
            else f"{package} must not depend on {top}"
        )
        found.append(f"{path}:{line}: {module} imports {name}: {why}")
    return found


def production_modules() -> list[Path]:
    return sorted(path for package in PRODUCTION for path in (REPO / package).rglob("*.py"))


def test_the_production_packages_are_found() -> None:
    modules = {module_name(path) for path in production_modules()}
    assert {"catalog.models", "connectors.client", "gateway.app", *DEMOKIT_ALLOWED} <= modules


def test_production_imports_respect_the_layers() -> None:
    problems: list[str] = []
    for path in production_modules():
        problems += violations(
            path.read_text(encoding="utf-8"),
            str(path.relative_to(REPO)),
            module_name(path),
            is_package=path.name == "__init__.py",
        )
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("gateway.app", "import demokit\n", ["x.py:1: gateway.app imports demokit"]),
        ("gateway.app", "x = 1\nfrom demokit.demo import steps\n", ["x.py:2: gateway.app imports demokit.demo"]),
        (
            "gateway.intake.services",
            "def f():\n    import demokit.simulators.seed\n",
            ["x.py:2: gateway.intake.services imports demokit.simulators.seed"],
        ),
        (
            "gateway.app",
            "import importlib\nimportlib.import_module('demokit.demo.runner')\n",
            ["x.py:2: gateway.app imports demokit.demo.runner"],
        ),
        (
            "connectors.sync",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.settings import Settings\n",
            ["x.py:3: connectors.sync imports gateway.settings"],
        ),
        ("catalog.loader", "from connectors import model\n", ["x.py:1: catalog.loader imports connectors"]),
        ("catalog.loader", "import gateway.settings\n", ["x.py:1: catalog.loader imports gateway.settings"]),
        ("connectors.spec", "from ..gateway import settings\n", ["x.py:1: connectors.spec imports gateway"]),
        (
            "gateway.commands.simulate",
            "from demokit.simulators.runner import run_simulators\n",
            ["x.py:1: gateway.commands.simulate imports demokit.simulators.runner"],
        ),
        (
            "gateway.commands.demo",
            "try:\n    import demokit.demo\nexcept ImportError:\n    pass\n",
            ["x.py:2: gateway.commands.demo imports demokit.demo"],
        ),
        # allowed
        ("gateway.commands.simulate", "async def _serve():\n    from demokit.simulators import runner\n", []),
        (
            "gateway.commands.simulate",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from demokit.simulators import Simulators\n",
            [],
        ),
        ("gateway.commands.demo", "def run():\n    from demokit.demo.runner import run_demo\n", []),
        ("gateway.app", "from catalog.models import Item\nfrom connectors.client import ConnectorPool\n", []),
        ("connectors.spec", "from catalog.codes import x\nfrom . import model\nfrom .auth import y\n", []),
        ("catalog.models", "import demokit_like_name\nfrom catalog.search import SearchIndex\n", []),
    ],
)
def test_the_check_finds_each_form(module: str, source: str, expected: list[str]) -> None:
    found = violations(source, "x.py", module)
    assert [problem.rsplit(": ", 1)[0] for problem in found] == expected
