"""Which package may import which, checked on the source of every module (nothing is imported or run).

- ``catalog`` depends on nothing else of ours; ``connectors`` on ``catalog`` only; ``gateway`` on both.
- ``demokit`` (simulators, demo runner) is development tooling: production code never imports it, except the two
  commands that start it, ``onewindow demo`` and ``onewindow simulate``, and those only inside a function (the
  command line imports every command module on every start).

Every form counts: ``import x``, ``from x import y``, relative imports, imports under ``TYPE_CHECKING`` or inside
functions, and ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name.

The case domains (``gateway.intake``, ``gateway.lifecycle``, ``gateway.tracking``) meet only in ``gateway.cases``:
none imports a sibling, and ``gateway.cases`` imports none of them.

Within the production packages no two modules need each other, not even through an import inside a function or
under ``TYPE_CHECKING`` (such a pair is one module split in two, or a type in the wrong place).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
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


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.Module, *, in_functions: bool = True, type_checking: bool = True) -> Iterator[ast.AST]:
    """Every node of ``tree``; without function bodies or ``if TYPE_CHECKING:`` blocks when asked."""
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if not in_functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(reversed(node.orelse))
            continue
        yield node
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def imported_names(
    tree: ast.Module, module: str, *, is_package: bool = False, type_checking: bool = True
) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """``(line, absolute module name, names taken from it)`` for every import in ``tree``."""
    for node in _nodes(tree, type_checking=type_checking):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            yield node.lineno, _resolve(module, is_package, node.level, node.module), names
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0]
            if name in _DYNAMIC_IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value, ()


def import_time_lines(tree: ast.Module) -> set[int]:
    """Lines of the code that runs when the module is imported: outside functions and ``TYPE_CHECKING``."""
    return {
        node.lineno
        for node in _nodes(tree, in_functions=False, type_checking=False)
        if isinstance(node, ast.stmt | ast.expr)
    }


def violations(source: str, path: str, module: str, *, is_package: bool = False) -> list[str]:
    """One ``path:line: message`` per forbidden import in ``source`` (the code of ``module``)."""
    package = module.split(".")[0]
    forbidden = FORBIDDEN.get(package, ())
    tree = ast.parse(source, filename=path)
    at_import_time = import_time_lines(tree)
    found: list[str] = []
    for line, name, _ in imported_names(tree, module, is_package=is_package):
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


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` (name -> (source, is_package)) it imports, in any of the forms above.

    ``from p import m`` counts as importing ``p.m`` when that is a module, else ``p``; ``import p.m`` as the
    longest known prefix."""
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        targets: set[str] = set()
        for _, name, names in imported_names(ast.parse(source), module, is_package=is_package):
            submodules = {f"{name}.{n}" for n in names if f"{name}.{n}" in sources}
            if submodules:
                targets |= submodules
                continue
            parts = name.split(".")
            while parts and ".".join(parts) not in sources:
                parts.pop()
            if parts:
                targets.add(".".join(parts))
        targets.discard(module)
        graph[module] = targets
    return graph


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected components of two or more), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


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


def test_production_modules_do_not_need_each_other() -> None:
    sources = {
        module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in production_modules()
    }
    cycles = import_cycles(import_graph(sources))
    assert not cycles, "modules that import each other (inside functions and under TYPE_CHECKING too):\n" + "\n".join(
        " <-> ".join(group) for group in cycles
    )


def test_a_cycle_through_a_function_and_type_checking_is_found() -> None:
    sources = {
        "catalog": ("", True),
        "catalog.models": (
            "class Catalog:\n    def __init__(self):\n        from catalog.search import Index\n",
            False,
        ),
        "catalog.search": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from catalog.models import I\n",
            False,
        ),
        "catalog.loader": ("from catalog import models\nfrom . import search\n", False),
        "gateway.app": ("import catalog.loader\nimport gateway.app\n", False),
    }
    graph = import_graph(sources)
    assert graph["catalog.loader"] == {"catalog.models", "catalog.search"}
    assert graph["gateway.app"] == {"catalog.loader"}
    assert import_cycles(graph) == [["catalog.models", "catalog.search"]]


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


#: The case domains: each sits on `gateway.cases` and never needs a sibling (they meet in the case, and in the
#: events they publish). `gateway.cases` needs none of them.
CASE_DOMAINS = ("gateway.intake", "gateway.lifecycle", "gateway.tracking")


def case_domain_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """``module imports target`` for each import between the case domains, or from `gateway.cases` up to one."""

    def domain(name: str) -> str | None:
        return next((d for d in (*CASE_DOMAINS, "gateway.cases") if name == d or name.startswith(d + ".")), None)

    found = []
    for module, targets in sorted(graph.items()):
        mine = domain(module)
        if mine is None:
            continue
        for target in sorted(targets):
            theirs = domain(target)
            if theirs is not None and theirs != mine and theirs != "gateway.cases":
                found.append(f"{module} imports {target}")
    return found


def test_case_domains_meet_only_in_the_case() -> None:
    sources = {
        module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in production_modules()
    }
    graph = import_graph(sources)
    assert {"gateway.cases.access", "gateway.intake.services", "gateway.tracking.services"} <= graph.keys()
    problems = case_domain_violations(graph)
    assert not problems, "case domains importing each other:\n" + "\n".join(problems)


def test_the_case_domain_check_finds_a_sibling_import() -> None:
    graph = {
        "gateway.intake.services": {"gateway.cases.views", "gateway.lifecycle.machine"},
        "gateway.cases.views": {"gateway.tracking.schemas"},
        "gateway.tracking.services": {"gateway.cases.numbers", "gateway.storage"},
    }
    assert case_domain_violations(graph) == [
        "gateway.cases.views imports gateway.tracking.schemas",
        "gateway.intake.services imports gateway.lifecycle.machine",
    ]


#: `gateway.evidence` sits between the case and the case domains: they call it, it needs none of them.
def evidence_violations(graph: Mapping[str, set[str]]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if module == "gateway.evidence" or module.startswith("gateway.evidence.")
        for target in sorted(targets)
        if any(target == d or target.startswith(d + ".") for d in CASE_DOMAINS)
    ]


def test_evidence_needs_no_case_domain() -> None:
    sources = {
        module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in production_modules()
    }
    graph = import_graph(sources)
    assert "gateway.evidence.store" in graph
    assert not evidence_violations(graph), "\n".join(evidence_violations(graph))
    assert evidence_violations({"gateway.evidence.rates": {"gateway.lifecycle.schemas"}}) == [
        "gateway.evidence.rates imports gateway.lifecycle.schemas"
    ]
