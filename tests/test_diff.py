"""``lmpc diff`` compares the whole artifact: every real change shows, named by its path.

The 14 cases are the changes an earlier review found hidden ("no differences"); the
property test changes one field anywhere in real artifacts — the examples, built with a
scripted LM — and the diff must name that field.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmpc.cli import main
from lmpc.compiler.artifact import Artifact, ArtifactError, read_artifact, write_artifact
from lmpc.compiler.check.program import load_program
from lmpc.runtime.scripted import ScriptedTransport

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _diff(a: Path, b: Path) -> Any:
    return CliRunner().invoke(main, ["diff", str(a), str(b)])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("diff") / "proj"
    shutil.copytree(EXAMPLES, root / "examples")
    return root


@pytest.fixture(scope="module")
def pipeline_artifact(project: Path) -> Path:
    """examples/pipeline.lmp as an artifact (imports, enums, constraints, calls, LMs)."""
    program, diagnostics, _ = load_program(project / "examples" / "pipeline.lmp")
    assert program is not None, diagnostics
    return write_artifact(Artifact(program="ReviewDesk", metric="score", ir=program),
                          project / "build" / "ReviewDesk.json")


@pytest.fixture(scope="module")
def rag_artifact(project: Path) -> Path:
    """examples/rag.lmp really built (demos, candidates, an ensemble, scores)."""
    out = project / "build" / "HandbookQA.json"
    result = CliRunner().invoke(
        main, ["build", str(project / "examples" / "rag.lmp"), "--no-cache", "--quiet",
               "-o", str(out)],
        obj={"transport": ScriptedTransport(fn=_rag_oracle)})
    assert result.exit_code == 0, result.output
    return out


def _rag_oracle(request: Any) -> str:
    """Right on about half the questions, so the passes have something to find."""
    answers = {}
    for line in (EXAMPLES / "data" / "rag.jsonl").read_text().splitlines():
        row = json.loads(line)
        answers[row["question"]] = row["answer"]
    question = (request.prompt or "").rsplit("Question: ", 1)[-1].split("\n", 1)[0]
    answer = answers.get(question, "no idea")
    if len(question) % 2:
        answer = "not sure"
    return f" The passages say so.\nAnswer: {answer}"


def _mutated(artifact: Path, change: Callable[[dict[str, Any]], None], name: str) -> Path:
    data = json.loads(artifact.read_text())
    change(data)
    out = artifact.parent / name
    out.write_text(json.dumps(data))
    return out


def _module(d: dict[str, Any]) -> dict[str, Any]:
    return d["ir"]["modules"]["Analyze"]


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("a tool step calling os:system", lambda d: (
        d["ir"]["tools"].update(sh={"name": "sh", "import_path": "os:system"}),
        _module(d)["steps"].append({"name": "x", "kind": "tool", "tool": "sh"})),
     "ir.modules.Analyze.steps"),
    ("a metric switched to a Python callable", lambda d: d["ir"]["metrics"]["mood"].update(
        kind="python", import_path="evil:score", field=None), "ir.metrics.mood.kind"),
    ("a changed returns", lambda d: _module(d)["returns"]["summary"].update(
        path=["r", "reasoning"]), "ir.modules.Analyze.returns.summary.path"),
    ("a step pointing at a missing predictor", lambda d: _module(d)["steps"][0].update(
        predictor="Analyze.zzz"), "Analyze.zzz"),
    ("removed enum values", lambda d: d["ir"]["enums"]["Sentiment"]["values"].pop(),
     "ir.enums.Sentiment.values"),
    # the types that name it no longer resolve: the artifact is refused, saying why
    ("a removed enum", lambda d: d["ir"]["enums"].pop("Sentiment"), "no enum 'Sentiment'"),
    ("a changed signature name", lambda d: d["ir"]["predictors"]["Analyze.s"]["signature"]
     .update(name="Other"), "ir.predictors[Analyze.s].signature.name"),
    ("an output type", lambda d: d["ir"]["predictors"]["Analyze.r"]["signature"]["outputs"]
     [1]["type"].update(kind="str"), "ir.predictors[Analyze.r].signature.outputs[1].type.kind"),
    ("an api_base", lambda d: d["ir"]["lms"]["fast"]["settings"].update(
        api_base="http://evil.example/v1"), "ir.lms.fast.settings.api_base"),
    ("an env name", lambda d: d["ir"]["lms"]["fast"]["settings"]["api_key"].update(
        env="GITHUB_TOKEN"), "ir.lms.fast.settings.api_key.env"),
    ("a fallback model", lambda d: d["ir"]["lms"]["fast"]["fallbacks"].append("openai/x"),
     "ir.lms.fast.fallbacks"),
    ("a constraint", lambda d: _module(d)["steps"][0]["constraints"][0]["expr"]["args"]
     .__setitem__(1, 100000), "ir.modules.Analyze.steps[0].constraints[0].expr.args"),
    ("a predictor's adapter", lambda d: d["ir"]["predictors"]["ReviewDesk.w"].update(
        adapter="json"), "ir.predictors[ReviewDesk.w].adapter"),
    ("a test expectation", lambda d: d["ir"]["tests"][0]["expect"][0].update(value="negative"),
     "ir.tests[0].expect[0].value"),
]


@pytest.mark.parametrize(("what", "change", "named"), CASES, ids=[c[0] for c in CASES])
def test_each_real_change_shows(pipeline_artifact: Path, what: str,
                                change: Callable[[dict[str, Any]], None], named: str) -> None:
    changed = _mutated(pipeline_artifact, change, f"case-{abs(hash(what))}.json")
    result = _diff(pipeline_artifact, changed)
    assert "no differences" not in result.output
    assert named in result.output, result.output


def test_no_differences_between_an_artifact_and_itself(rag_artifact: Path) -> None:
    copy_of = rag_artifact.parent / "same.json"
    copy_of.write_bytes(rag_artifact.read_bytes())
    assert _diff(rag_artifact, copy_of).stdout.strip() == "no differences"


def test_instructions_are_a_unified_diff_and_demos_are_items(rag_artifact: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["ir"]["predictors"]["HandbookQA.a"]["signature"]["instructions"] = "Say anything."
        member = d["ir"]["ensemble"]["members"][1]["HandbookQA.a"]  # a tuned member
        assert len(member["demos"]) >= 2
        member["demos"] = member["demos"][:1]

    out = _diff(rag_artifact, _mutated(rag_artifact, change, "b.json")).stdout
    assert "ir.predictors[HandbookQA.a].signature.instructions:" in out
    assert "    +Say anything." in out and "    -Answer the question" in out
    assert "ir.ensemble.members[1][HandbookQA.a].demos:" in out and "  - [" in out


# ---------------------------------------------------------------- the property


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place a single change can be made: leaves, and dict entries and list items
    (which can be removed)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*path, i)
            yield from _leaves(item, (*path, i))


def _changed(value: Any, seed: int) -> Any:
    """A different value of the same kind (so the artifact stays valid more often)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 + seed
    if isinstance(value, float):
        return value + 0.25 + seed
    if isinstance(value, str):
        return value + f"~{seed}"
    if value is None:
        return 1 + seed
    if isinstance(value, list):
        return [*value, value[-1]] if value else [seed]
    if isinstance(value, dict):
        return {**value, f"extra{seed}": seed}
    raise AssertionError(value)


def _spelled(path: tuple[Any, ...]) -> str:
    text = ""
    for key in path:
        if isinstance(key, int) or not key.isidentifier():
            text += f"[{key}]"
        else:
            text = f"{text}.{key}" if text else key
    return text


def _names(path: tuple[Any, ...], remove: bool) -> list[str]:
    """How the diff may name a change at ``path``: the path itself; the list, when an
    item of a list is added or removed; the demos list, for a change inside a demo."""
    names = [_spelled(path)]
    if isinstance(path[-1], int) and remove:
        names.append(_spelled(path[:-1]) + ":")
    if "demos" in path:
        names.append(_spelled(path[:path.index("demos") + 1]) + ":")
    return names


# LMPC_FUZZ_EXAMPLES raises the count for a run by hand (CI keeps it short)
@settings(max_examples=int(os.environ.get("LMPC_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_change_anywhere_is_named(rag_artifact: Path, pipeline_artifact: Path,
                                             data: st.DataObject) -> None:
    artifact = data.draw(st.sampled_from([rag_artifact, pipeline_artifact]))
    original = json.loads(artifact.read_text())
    places = list(_leaves(original))
    path = data.draw(st.sampled_from(places))
    remove = data.draw(st.booleans())
    seed = data.draw(st.integers(0, 3))
    tree = copy.deepcopy(original)
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = _changed(parent[path[-1]], seed)
    out = artifact.parent / "mutant.json"
    out.write_text(json.dumps(tree))
    try:
        loaded = read_artifact(out)
    except ArtifactError:
        # not a valid artifact any more: diff refuses it, naming the file
        result = _diff(artifact, out)
        assert result.exit_code == 1 and str(out) in result.stderr
        return
    result = _diff(artifact, out)
    assert result.exit_code == 0, result.output
    if loaded == read_artifact(artifact):  # e.g. a field removed that held its default
        assert result.stdout.strip() == "no differences"
        return
    assert "no differences" not in result.stdout, (path, remove)
    assert any(name in result.stdout for name in _names(path, remove)), (path, result.stdout)
