"""The package's layout: data flows one way, every module says its one job, the core never reaches into cli/.

The layers are the README's map ("Layout"); a module may import its own layer and those before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "arenajudge"

# In the order data flows: config -> records on disk -> requests -> judging -> battles and ratings -> report -> browser -> cli.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"errors", "urls", "names", "templates", "tokens", "verdicts"}),
    ("config", {"config_fields", "config", "vllm.spec"}),
    ("records on disk", {"storage", "locks", "provenance", "stale"}),
    ("requests", {"http_transport", "endpoint_health", "chat_request", "client_processes", "client", "probe", "engine",
                  "vllm.http",
                  "vllm.prefix_cache", "vllm.context_budget", "vllm.servers"}),
    ("answering and judging", {"asking", "answering", "judging", "mtbench", "judge_run", "mtbench_protocol", "protocol",
                               "overlap"}),
    ("battles and ratings", {"battles", "rating", "sequential", "style", "diagnostics", "compare"}),
    ("report", {"report", "plots", "html_report", "leaderboard"}),
    ("browser", {"browser", "browser_ui"}),
]


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
            found.add(node.module.removeprefix("arenajudge").lstrip("."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("arenajudge").lstrip(".") for a in node.names if a.name.split(".")[0] == "arenajudge"}
    return {m for m in found if m and m != name}


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
CORE = {m: p for m, p in MODULES.items() if not m.startswith("cli") and m not in ("", "vllm")}


def layer_of(module: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if module in members:
            return i
    raise AssertionError(f"arenajudge.{module} has no layer: add it to the README's Layout and to LAYERS here")


@pytest.mark.parametrize("module", sorted(CORE))
def test_no_module_imports_one_later_in_the_flow(module):
    mine = layer_of(module)
    later = {dep: LAYERS[layer_of(dep)][0] for dep in imported_modules(CORE[module])
             if dep in CORE and layer_of(dep) > mine}
    assert not later, f"arenajudge.{module} ({LAYERS[mine][0]}) imports later layers: {later}"


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
    source = tmp_path / "arenajudge" / "vllm"
    source.mkdir(parents=True)
    (source / "x.py").write_text('"""x."""\nfrom ..report import BoardRow\nfrom . import http\nimport arenajudge.cli.main\n')
    assert imported_modules(source / "x.py", tmp_path / "arenajudge") == {"report", "vllm.http", "cli.main"}
