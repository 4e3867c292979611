"""The package uses the openai client and its HTTP library (httpx2) through their public names only.

Their private parts (underscore names) change without notice in any release: code that imports,
reads or overrides them breaks on an upgrade, and pinning the client below its next major release
to protect it is the cost this test keeps away. The sources of arenajudge/ are read with ast:

- an import from a private module of theirs (`openai._models`) or of a private name (`from openai import _x`);
- an underscore attribute reached from their modules (`openai._base_client.X`, `httpx2._config`);
- in a class built on one of their classes, a method or attribute whose underscore name the base
  class has (an override such as `_prepare_url`, or `self._client` / `super()._x` read from it);
- an underscore attribute that none of our code defines but theirs does (`client._client` on an object of theirs).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "arenajudge"
THEIRS = ("openai", "httpx2")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@cache
def their_private_names() -> frozenset[str]:
    """Every underscore name their sources define (functions, classes, assignments, attributes set on self)."""
    names: set[str] = set()
    for top in THEIRS:
        root = Path(importlib.util.find_spec(top).origin).parent
        for path in root.rglob("*.py"):
            if {"types", "resources"} & set(path.relative_to(root).parts):  # generated API models: no client internals
                continue
            names |= _defined_names(ast.parse(path.read_bytes()))
    return frozenset(n for n in names if _private(n))


def _defined_names(tree: ast.Module, with_arguments: bool = False) -> set[str]:
    """Names a module defines: functions, classes, assignments, attributes set (and, if asked, arguments and
    keyword names, which dataclass fields built by keyword are, e.g. `_Slot(send=...)`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif with_arguments and isinstance(node, ast.arg):
            names.add(node.arg)
        elif with_arguments and isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    return names


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _their_aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to their modules or objects -> the dotted name they stand for."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in THEIRS:
                    local = alias.asname or alias.name.split(".")[0]
                    aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in THEIRS:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _resolve(dotted: str) -> object | None:
    """The object a dotted name of theirs stands for (module attributes followed), or None."""
    parts = dotted.split(".")
    obj: object = importlib.import_module(parts[0])
    for part in parts[1:]:
        if not hasattr(obj, part):
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")  # type: ignore[attr-defined]
                continue
            except (ImportError, AttributeError):
                return None
        obj = getattr(obj, part)
    return obj


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def our_private_names(files: list[Path]) -> set[str]:
    """Underscore names our own code defines anywhere in the package."""
    names: set[str] = set()
    for path in files:
        names |= _defined_names(ast.parse(path.read_text(encoding="utf-8")), with_arguments=True)
    return {n for n in names if _private(n)}


def private_uses(path: Path, ours: set[str], root: Path = PACKAGE.parent) -> list[str]:
    """Each use of a private name of openai or httpx2 in `path`, as 'file:line: what' (file relative to `root`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _their_aliases(tree)
    found: list[str] = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{path.relative_to(root)}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in THEIRS and any(map(_private, alias.name.split("."))):
                    flag(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in THEIRS:
            for alias in node.names:
                if any(map(_private, node.module.split("."))) or _private(alias.name):
                    flag(node, f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            if _root_name(node) in aliases:
                flag(node, f"{_dotted(node, aliases)}")
            elif node.attr not in ours and node.attr in their_private_names():
                flag(node, f"._{node.attr.lstrip('_')} (defined by {'/'.join(THEIRS)}, not by us)")
        elif isinstance(node, ast.ClassDef):
            bases = [b for b in (_resolve(d) for d in (_dotted(base, aliases) for base in node.bases) if d) if b is not None]
            if not bases:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and _private(inner.name) and \
                        any(hasattr(b, inner.name) for b in bases):
                    flag(inner, f"override of {inner.name} of {node.name}'s base")
                elif isinstance(inner, ast.Attribute) and _private(inner.attr) and \
                        isinstance(inner.value, ast.Name | ast.Call) and any(hasattr(b, inner.attr) for b in bases):
                    if isinstance(inner.value, ast.Name) and inner.value.id != "self":
                        continue
                    flag(inner, f"{inner.attr} of {node.name}'s base")
    return found


def test_no_private_name_of_openai_or_httpx2_is_imported_read_or_overridden():
    files = sorted(PACKAGE.rglob("*.py"))
    ours = our_private_names(files)
    found = [use for path in files for use in private_uses(path, ours)]
    assert not found, "private names of openai/httpx2 used:\n" + "\n".join(found)


def test_the_scan_sees_each_kind_of_private_use(tmp_path):
    """The rules above on a module written for the purpose (so a rule that stops matching is seen)."""
    module = tmp_path / "private_uses.py"
    module.write_text('''
import httpx2
import openai
import openai._models as models
from openai._base_client import AsyncAPIClient
from openai import _legacy_response


class Client(openai.AsyncOpenAI):
    def _prepare_url(self, url):
        return super()._prepare_url(url)


def config(client):
    return httpx2._config, client._client, openai._models
''', encoding="utf-8")
    found = "\n".join(private_uses(module, set(), root=tmp_path))
    for expected in (":4: import openai._models", ":5: from openai._base_client import AsyncAPIClient",
                     ":6: from openai import _legacy_response", ":10: override of _prepare_url",
                     ":11: _prepare_url of Client's base", ":15: httpx2._config", ":15: ._client",
                     ":15: openai._models"):
        assert expected in found, (expected, found)


def test_openai_is_pinned_below_no_major_release():
    text = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    requirement = re.search(r'"openai([^"]*)"', text)
    assert requirement is not None and ">=" in requirement.group(1) and "<" not in requirement.group(1).replace("<=", "")


def test_a_client_process_and_a_chat_request_do_not_import_the_openai_client():
    """The chat requests need httpx2 only: a client process starts without the openai client's ~0.7 s import."""
    code = ("import sys, asyncio; from arenajudge.endpoints.client_processes import main; "
            "from arenajudge.endpoints.chat_request import ChatEndpoint;"
            "asyncio.run(ChatEndpoint('http://127.0.0.1:9/v1', 'k', 1.0).close());"
            "print(sorted(m for m in ('openai', 'httpx2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "['httpx2']"
