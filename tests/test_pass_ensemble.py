"""ensemble: members from the previous pass's candidates (top k, seeded size, all); voting."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import World, classify_program, examples, pass_context, run_context  # noqa: E402

from lmpc.compiler.passes._demos import PassError  # noqa: E402
from lmpc.compiler.passes.base import Candidate  # noqa: E402
from lmpc.compiler.passes.ensemble import ensemble  # noqa: E402


def say(word: str, score: float) -> Candidate:
    """A candidate whose instructions make the scripted model answer ``word``."""
    return Candidate(classify_program(f"Always answer {word}."), score, f"says {word}")


def obey(request: Any, text: str, name: str) -> str | None:
    system = request.messages[0]["content"]
    return system.split("Always answer ")[1].split(".")[0] if name == "label" else None


CANDIDATES = [say("negative", 0.5), say("positive", 0.9), say("positive", 0.8),
              say("neutral", 0.7), say("negative", 0.6)]


def _ctx(world: World, candidates: list[Candidate]) -> Any:
    prog = classify_program()
    return pass_context(world, prog, "Classify", examples(["good 0"]), candidates=candidates)


def test_top_k_takes_the_best_and_votes_by_majority() -> None:
    from lmpc.runtime.execute import run_module

    world = World(obey)
    result = ensemble(classify_program(), _ctx(world, CANDIDATES), top=3)
    members = result.program.ensemble.members
    assert [m["Classify.c"].signature.instructions for m in members] == [
        "Always answer positive.", "Always answer positive.", "Always answer neutral."]
    assert [m["score"] for m in result.report["members"]] == [0.9, 0.8, 0.7]
    assert result.program.ensemble.reduce == "majority"
    prediction = run_module(result.program, "Classify", {"text": "anything"}, run_context(world))
    assert prediction.outputs["label"] == "positive"
    assert len(world.requests) == 3  # every member ran


def test_majority_of_all_members() -> None:
    from lmpc.runtime.execute import run_module

    world = World(obey)
    bottom = [say("negative", 0.5), say("negative", 0.4), say("positive", 0.9)]
    result = ensemble(classify_program(), _ctx(world, bottom))
    assert len(result.program.ensemble.members) == 3
    assert run_module(result.program, "Classify", {"text": "x"},
                      run_context(world)).outputs["label"] == "negative"


def test_size_is_a_seeded_random_subset() -> None:
    def members(seed: int) -> list[str]:
        ctx = _ctx(World(), CANDIDATES)
        ctx.seed = seed
        out = ensemble(classify_program(), ctx, size=2)
        return [m["label"] + str(m["score"]) for m in out.report["members"]]

    assert len(members(0)) == 2
    assert members(0) == members(0)
    assert {tuple(members(s)) for s in range(6)} != {tuple(members(0))}


def test_no_candidates_is_a_clear_error() -> None:
    with pytest.raises(PassError, match="needs the scored candidates of a previous pass"):
        ensemble(classify_program(), _ctx(World(), []))


def test_bad_reduce_is_a_clear_error() -> None:
    with pytest.raises(PassError, match="pkg.mod:fn"):
        ensemble(classify_program(), _ctx(World(), CANDIDATES), reduce="mode")


def test_custom_reduce_is_recorded() -> None:
    out = ensemble(classify_program(), _ctx(World(), CANDIDATES), top=2, reduce="mymod:pick")
    assert out.program.ensemble.reduce == "mymod:pick"
    assert classify_program().ensemble is None


def test_custom_reduce_runs_only_when_allowed(tmp_path: Path) -> None:
    from lmpc.runtime.errors import ToolNotAllowed
    from lmpc.runtime.execute import run_module
    from lmpc.runtime.trust import Trust

    (tmp_path / "reducers.py").write_text(
        "def last(outputs):\n    return {'label': outputs[-1]['label']}\n"
    )
    world = World(obey)
    result = ensemble(classify_program(), _ctx(world, CANDIDATES), top=3, reduce="reducers:last")
    ctx = run_context(world).derive(base_dir=tmp_path)
    with pytest.raises(ToolNotAllowed, match="reducers:last"):
        run_module(result.program, "Classify", {"text": "x"}, ctx)
    allowed = ctx.derive(trust=Trust(allow_tools=True))
    # majority would say "positive"; the user's reducer takes the last member's answer
    assert run_module(result.program, "Classify", {"text": "x"}, allowed).outputs == {
        "label": "neutral"}
