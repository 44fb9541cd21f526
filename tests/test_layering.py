"""The package's import graph follows the pipeline (docs/architecture.md, "Layers").

Every ``import`` of an ``lmpc`` module — at module level, inside a function, or under
``TYPE_CHECKING`` — is read with ``ast``. A module may import only from its own layer
and the layers that layer is allowed to see, and there are no import circles at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "lmpc"

IR = {"lmpc.ir", "lmpc.version", "lmpc.credentials", "lmpc.files", "lmpc.datafile"}
# every stage of the pipeline, below the user-facing modules
STAGES = IR | {"lmpc.diagnostics", "lmpc.grammar", "lmpc.compiler.check", "lmpc.runtime",
               "lmpc.eval", "lmpc.compiler"}
# layer -> the layers it may import (besides itself). Longest matching prefix wins.
LAYERS: dict[str, set[str]] = {
    "lmpc.version": set(),
    "lmpc.ir": set(),
    "lmpc.credentials": set(),
    "lmpc.files": set(),
    "lmpc.datafile": {"lmpc.files"},
    "lmpc.diagnostics": IR,
    "lmpc.grammar": IR | {"lmpc.diagnostics"},
    "lmpc.compiler.check": IR | {"lmpc.diagnostics", "lmpc.grammar"},
    "lmpc.runtime": IR,
    "lmpc.eval": IR | {"lmpc.runtime"},
    "lmpc.compiler": IR | {"lmpc.diagnostics", "lmpc.compiler.check", "lmpc.runtime",
                           "lmpc.eval"},
    # the Python API, the report and the server see every stage but the command line,
    # which is built on them (and is the only terminal writer)
    "lmpc.api": STAGES,
    "lmpc.report": STAGES,
    "lmpc.serve": STAGES | {"lmpc.api"},
    # the top: the CLI and the package itself see everything
    "lmpc.cli": {"*"},
    "lmpc": {"*"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The ``lmpc`` modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def layer_of(module: str) -> str:
    best = max((layer for layer in LAYERS
                if module == layer or module.startswith(layer + ".")), key=len)
    return best


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in sorted(graph.items()):
        own = layer_of(module)
        allowed = LAYERS[own]
        if "*" in allowed:
            continue
        for dep in sorted(deps):
            if dep in ("lmpc",):  # the package itself: only its leaves may be named
                bad.append(f"{module} imports the top-level package 'lmpc'")
                continue
            theirs = layer_of(dep)
            if theirs != own and theirs not in allowed:
                bad.append(f"{module} ({own}) imports {dep} ({theirs})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    for module in import_graph(ROOT):
        assert layer_of(module), module


def test_no_module_imports_a_layer_above_it():
    assert layer_violations(import_graph(ROOT)) == []


def test_no_import_circles():
    assert cycles(import_graph(ROOT)) == []


def test_the_ir_imports_nothing_of_lmpc():
    graph = import_graph(ROOT)
    assert graph["lmpc.ir"] == set()
    assert graph["lmpc.diagnostics"] <= {"lmpc.ir"}


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "lmpc"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("importer,line", [
    ("grammar/parser.py", "from lmpc.compiler.check import program\n"),
    ("grammar/parser.py", "import lmpc.compiler.pipeline\n"),
    ("runtime/execute.py", "from lmpc.eval.metrics import x\n"),
    ("runtime/execute.py", "def f():\n    from lmpc.compiler import pipeline\n"),
    ("ir.py", "from lmpc.grammar import ast\n"),
    ("eval/data.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from lmpc.compiler.passes import base\n"),
    ("compiler/check/scope.py", "from lmpc.runtime import lm\n"),
    ("api.py", "def f():\n    from lmpc.cli.build import build_one\n"),
    ("report.py", "from lmpc.cli import show\n"),
    ("serve.py", "import lmpc.cli\n"),
])
def test_the_checker_catches_an_upward_import(tmp_path, importer, line):
    files = {"__init__.py": "", "ir.py": "", "grammar/__init__.py": "",
             "grammar/parser.py": "", "grammar/ast.py": "", "compiler/__init__.py": "",
             "compiler/pipeline.py": "", "compiler/passes/__init__.py": "",
             "compiler/passes/base.py": "", "compiler/check/__init__.py": "",
             "compiler/check/program.py": "", "compiler/check/scope.py": "",
             "runtime/__init__.py": "", "runtime/execute.py": "", "runtime/lm.py": "",
             "eval/__init__.py": "", "eval/data.py": "", "eval/metrics.py": "",
             "api.py": "", "report.py": "", "serve.py": "", "cli/__init__.py": "",
             "cli/build.py": "", "cli/show.py": ""}
    files[importer] = line
    graph = import_graph(_fake_package(tmp_path, files))
    assert layer_violations(graph), f"{importer}: {line!r} was not caught"


def test_the_checker_catches_a_circle(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "", "grammar/__init__.py": "",
        "grammar/parser.py": "from lmpc.grammar import sigstring\n",
        "grammar/sigstring.py": "def f():\n    from lmpc.grammar.parser import parse_type\n",
    })
    assert cycles(import_graph(root)) == [["lmpc.grammar.parser", "lmpc.grammar.sigstring"]]
