"""Fuzz (hypothesis, bounded): hostile sources and tampered artifacts never cause an
internal error — only coded diagnostics, ``ArtifactError`` on load, and for an artifact
that loads, runtime failures (``RuntimeFailure``/``LMError``) when it runs.

``LMPC_FUZZ_EXAMPLES`` raises the number of inputs for a run by hand; CI keeps it short.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmpc.cli import main
from lmpc.compiler.artifact import Artifact, ArtifactError, read_artifact, write_artifact
from lmpc.compiler.check.program import check_text, load_program
from lmpc.compiler.pipeline import make_run_ctx
from lmpc.runtime.errors import RuntimeFailure
from lmpc.runtime.execute import Prediction, default_task_lm, run_batch
from lmpc.runtime.lm import LMClient
from lmpc.runtime.lm_types import LMError
from lmpc.runtime.scripted import ScriptedTransport
from lmpc.runtime.trust import Trust

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
N = int(os.environ.get("LMPC_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=N, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# ---------------------------------------------------------------- hostile sources

OPENERS = ["(", "[", "{", "not ", "list[", "dict[str, ", "Optional[", "("]
CLOSERS = {"(": ")", "[": "]", "{": "}", "not ": "", "list[": "]", "dict[str, ": "]",
           "Optional[": "]"}
WRAPPERS = [
    'signature S = "q: {x} -> a: str"\n',
    "type T = {x}\n",
    'module M(q: str) -> (a: str) {{\n  s = predict S(q = q)\n  assert {x}, "m"\n'
    "  return (a = s.a)\n}}\n",
    'lm x = "m" {{ max_tokens: {x} }}\n',
    'test "t" {{\n  M(q = {x})\n  expect a == "x"\n}}\n',
    "enum E {{ {x} }}\n",
]


@st.composite
def nested(draw: Any) -> str:
    depth = draw(st.integers(0, 400))
    openers = draw(st.lists(st.sampled_from(OPENERS), min_size=depth, max_size=depth))
    core = draw(st.sampled_from(["str", "1", '"x"', "a", "9" * draw(st.integers(1, 5000)),
                                 "1e999", "s.a", "len(s.a) > 1"]))
    chain = draw(st.sampled_from(["", " or ", " and ", " | ", "?", ", "]))
    times = draw(st.integers(0, 1500)) if chain else 0
    body = core + (chain + core) * times if chain != "?" else core + "?" * times
    return "".join(openers) + body + "".join(CLOSERS[o] for o in reversed(openers))


@st.composite
def hostile_source(draw: Any) -> str:
    parts = [draw(st.sampled_from(WRAPPERS)).format(x=draw(nested()))
             for _ in range(draw(st.integers(1, 3)))]
    noise = draw(st.text(max_size=40))
    return "".join(parts) + (noise if draw(st.booleans()) else "")


@FUZZ
@given(text=hostile_source())
def test_hostile_sources_give_coded_diagnostics(text: str) -> None:
    started = time.monotonic()
    program, diags, _ = check_text(text, "fuzz.lmp")
    assert time.monotonic() - started < 60
    for d in diags:
        assert d.code[0] in "EW" and d.code[1:].isdigit(), d
        assert d.code not in ("E0000", "E1999"), (d, text[:200])
        assert d.span.line >= 1 and d.span.col >= 1
    assert (program is None) == any(d.severity == "error" for d in diags)


# ---------------------------------------------------------------- tampered artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Real artifacts of every example (agent: tools; rag: retrieval, constraints;
    pipeline: calls, enums; classify: a built one with knn demos)."""
    root = tmp_path_factory.mktemp("fuzz") / "proj"
    shutil.copytree(EXAMPLES, root / "examples")
    trees = []
    for name, module in (("agent", "UnitAgent"), ("rag", "HandbookQA"),
                         ("pipeline", "ReviewDesk"), ("classify", "Router")):
        program, diags, _ = load_program(root / "examples" / f"{name}.lmp")
        assert program is not None, diags
        out = write_artifact(Artifact(program=module, ir=program), root / "build" / f"{name}.json")
        trees.append(json.loads(out.read_text()))
    built = root / "build" / "knn.json"
    result = CliRunner().invoke(main, ["build", str(root / "examples" / "classify.lmp"),
                                       "--no-cache", "--quiet", "-o", str(built)],
                                obj={"transport": ScriptedTransport(default=" billing")})
    assert result.exit_code == 0, result.output
    trees.append(json.loads(built.read_text()))
    return trees


def _places(tree: Any) -> list[tuple[Any, ...]]:
    """Every path into ``tree`` (not into values nested past 40 levels)."""
    found: list[tuple[Any, ...]] = []
    todo: list[tuple[Any, tuple[Any, ...]]] = [(tree, ())]
    while todo:
        value, path = todo.pop()
        found.append(path)
        if len(path) > 40:
            continue
        if isinstance(value, dict):
            todo.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, (*path, i)) for i, v in enumerate(value))
    return found


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@FUZZ
@given(data=st.data())
def test_tampered_artifacts_never_cause_an_internal_error(
        artifacts: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory,
        data: st.DataObject) -> None:
    tree = json.loads(json.dumps(data.draw(st.sampled_from(artifacts))))
    for _ in range(data.draw(st.integers(1, 3))):
        places = [p for p in _places(tree) if p]
        path = data.draw(st.sampled_from(places))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "deep", "swap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "deep":
            parent[path[-1]] = _deep(data.draw(st.integers(1, 3000)))
        elif action == "swap":
            other = data.draw(st.sampled_from(places))
            value: Any = tree
            for key in other:
                value = value[key] if isinstance(value, dict | list) and (
                    key in value if isinstance(value, dict) else key < len(value)) else None
            try:
                parent[path[-1]] = json.loads(json.dumps(value))
            except RecursionError:  # too deep for Python's own json: not a case to test
                parent[path[-1]] = None
        else:
            parent[path[-1]] = data.draw(JSON)
        if not isinstance(tree, dict):
            break
    folder = tmp_path_factory.mktemp("mutant")
    out = folder / "a.json"
    try:
        out.write_text(json.dumps(tree))
    except (RecursionError, ValueError):
        return  # not writable as JSON by Python itself
    try:
        artifact = read_artifact(out)
    except ArtifactError:
        return
    program, module = artifact.ir, artifact.program
    ctx = make_run_ctx(program, LMClient(ScriptedTransport(default="x")),
                       default_task_lm(program), trust=Trust(allow_tools=False))
    inputs = {f.name: "x" for f in program.modules[module].inputs}
    [result] = run_batch(program, module, [inputs], ctx, threads=1)
    assert isinstance(result, Prediction | RuntimeFailure | LMError), repr(result)
    for command in (["show", str(out)], ["diff", str(out), str(out)]):
        shown = CliRunner().invoke(main, command)
        assert "internal error" not in shown.output and "Traceback" not in shown.output, (
            command, shown.output[-500:])
