"""The package's layout: its sub-packages are the layers, in the order data flows; no import goes up a layer.

config -> records on disk -> requests to endpoints -> answering -> judging -> battles and ratings -> what a
person reads -> the commands. A module may import its own package and the packages before it. The README's
map and docs/architecture.md draw the same order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "arenajudge"

# The sub-packages, lowest first; "" is the package root (its __init__ and the library API).
LAYERS: list[str] = ["core", "config", "records", "endpoints", "answer", "judge", "rating", "present", "", "cli"]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> set[str]:
    """The package's modules `path` imports (relative or absolute), as names relative to the package."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:  # `from . import locks`: the names are modules
                found |= {".".join([*base, alias.name]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "arenajudge":
            base = node.module.removeprefix("arenajudge").lstrip(".")
            found.add(base)  # `from arenajudge.records import locks`: a name may be a module too
            found |= {".".join(filter(None, [base, alias.name])) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("arenajudge").lstrip(".") for a in node.names if a.name.split(".")[0] == "arenajudge"}
    return {m for m in found if m and m != name}


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
CORE = {m: p for m, p in MODULES.items() if m.split(".")[0] != "cli"}


def layer_of(module: str) -> int:
    top = module.split(".")[0] if "." in module or (PACKAGE / module).is_dir() else ""
    assert top in LAYERS, f"arenajudge.{module} sits in no layer: add its package to LAYERS here and to the README's map"
    return LAYERS.index(top)


def test_the_layers_are_the_sub_packages():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS) - {""}, "every sub-package is a layer, and every layer a sub-package"
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 1, f"modules belong in a sub-package, not beside them: {loose}"


@pytest.mark.parametrize("module", sorted(CORE))
def test_no_module_imports_one_later_in_the_flow(module):
    mine = layer_of(module)
    later = {dep: LAYERS[layer_of(dep)] for dep in imported_modules(CORE[module])
             if dep in CORE and layer_of(dep) > mine}
    assert not later, f"arenajudge.{module} ({LAYERS[mine] or 'root'}) imports later layers: {later}"


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_never_imports_the_commands_or_the_testkit(module):
    source = CORE[module].read_text(encoding="utf-8")
    assert not any(dep == "cli" or dep.startswith("cli.") for dep in imported_modules(CORE[module]))
    assert "arenajudge_testkit" not in source  # the product talks to real servers only


def test_no_import_cycles():
    graph = {m: {d for d in imported_modules(p) if d in MODULES} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*path, m, d])}"
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_every_module_states_its_job_in_its_first_line(module):
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8")))
    assert doc and len(doc.splitlines()[0].strip()) > 20, f"arenajudge.{module} has no one-line statement of its job"


def test_the_checker_sees_a_backward_import(tmp_path):
    # the checker itself: a relative import one level up is resolved to the module it names
    source = tmp_path / "arenajudge" / "endpoints"
    source.mkdir(parents=True)
    (source / "x.py").write_text('"""x."""\nfrom ..present.report import BoardRow\nfrom . import engine\n'
                                 'import arenajudge.cli.main\nfrom arenajudge.rating import compare\n')
    found = imported_modules(source / "x.py", tmp_path / "arenajudge")
    assert {"present.report", "endpoints.engine", "cli.main", "rating.compare"} <= found
    assert layer_of("present.report") > layer_of("endpoints.engine")
