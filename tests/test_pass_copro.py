"""copro: the candidate flow of coordinate ascent, the best pick, budget and estimate.

The scripted world (``world.py``): an instruction containing ``level N`` makes the
classifier right on texts whose number ``i`` has ``i % 4 < N`` (no level: 1). The prompt
model writes ``level k`` alternatives for rollout k, and from attempts it writes one level
above the best attempt it is shown.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import LM, World, classify_program, examples, pass_context, pipe_program  # noqa: E402

from lmpc.compiler.passes._estimate import workload_of  # noqa: E402
from lmpc.compiler.passes.base import BudgetExceeded  # noqa: E402
from lmpc.compiler.passes.copro import copro, estimate  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402

_LEVEL = re.compile(r"level (\d)")


def answer(request: LMRequest, text: str, name: str) -> str | None:
    content = request.messages[-1]["content"]
    if name == "proposed_instruction":
        if "[[ ## attempts ## ]]" in content:
            best = max(int(x) for x in _LEVEL.findall(content.split("## attempts ## ]]")[1]))
            return f"Refined: classify it, level {min(best + 1, 4)} (draft {request.rollout})"
        return f"Alternative: classify it, level {request.rollout % 4} (draft {request.rollout})"
    if name == "label" and text:
        level = _LEVEL.search(request.messages[0]["content"])
        n = int(text.split()[-1])
        right = "positive" if "good" in text else "negative"
        wrong = "negative" if right == "positive" else "positive"
        return right if n % 4 < (int(level.group(1)) if level else 1) else wrong
    if name == "summary" and text:
        return text.split()[0]
    return None


def setup(n_train: int = 16, program: Any = None, cache: Path | None = None,
          **kw: Any) -> tuple[World, Any, Any]:
    world = World(answer=answer)
    prog = program or classify_program()
    module = next(iter(prog.modules))
    rows = [f"good day {i}" if i % 3 else f"bad day {i}" for i in range(n_train)]
    ctx = pass_context(world, prog, module, examples(rows, module == "Pipe"), **kw)
    if cache is not None:
        from lmpc.runtime.cache import SQLiteCache
        from lmpc.runtime.context import RunContext
        from lmpc.runtime.lm import LMClient

        client = LMClient(world.transport, cache=SQLiteCache(cache), sleep=lambda s: None)
        ctx.run_ctx = ctx.prompt_ctx = RunContext(client=client, program_lms={"m": LM},
                                                  task_lm=LM)
    return world, prog, ctx


def writer_requests(world: World, name: str) -> list[LMRequest]:
    return [r for r in world.requests
            if f"`{name}`" in r.messages[0]["content"]
            and "`proposed_instruction`" in r.messages[0]["content"]]


def test_candidate_flow_breadth_and_depth() -> None:
    world, prog, ctx = setup()
    result = copro(prog, ctx, breadth=3, depth=2, init_temperature=1.4)
    alternatives = writer_requests(world, "current_instruction")
    refinements = writer_requests(world, "attempts")
    # round 0: the original + breadth-1 alternatives; one refinement round of breadth
    assert [r.rollout for r in alternatives] == [1, 2]
    assert [r.rollout for r in refinements] == [0, 1, 2]
    assert all(r.settings.get("temperature") == 1.4 for r in alternatives + refinements)
    records = result.report["candidates"]
    assert [(c["round"], c["instruction"]) for c in records] == [
        (0, "Classify the sentiment."),
        (0, "Alternative: classify it, level 1 (draft 1)"),
        (0, "Alternative: classify it, level 2 (draft 2)"),
        (1, "Refined: classify it, level 3 (draft 0)"),
        (1, "Refined: classify it, level 3 (draft 1)"),
        (1, "Refined: classify it, level 3 (draft 2)"),
    ]
    assert [c["score"] for c in records[:3]] == pytest.approx([0.25, 0.25, 0.5])


def test_attempts_are_shown_ascending_with_scores() -> None:
    world, prog, ctx = setup()
    copro(prog, ctx, breadth=3, depth=2)
    shown = writer_requests(world, "attempts")[0].messages[-1]["content"]
    scores = [float(s) for s in re.findall(r"Score: ([0-9.]+)", shown)]
    assert scores == sorted(scores) and len(scores) == 3
    assert shown.index("level 2") > shown.index("Classify the sentiment.")


def test_best_program_is_returned_with_stats() -> None:
    world, prog, ctx = setup()
    result = copro(prog, ctx, breadth=3, depth=3)
    best = result.program.predictors["Classify.c"].signature.instructions
    assert "level 4" in best
    assert result.report["best_score"] == 1.0 == result.candidates[0].score
    assert result.report["best_instructions"] == {"Classify.c": best}
    stats = result.report["stats"]
    assert [s["round"] for s in stats] == [0, 1, 2]
    assert stats[0]["max"] == pytest.approx(0.5) and stats[0]["n"] == 3
    assert prog.predictors["Classify.c"].signature.instructions == "Classify the sentiment."


def test_track_stats_off_still_records_every_candidate() -> None:
    world, prog, ctx = setup()
    result = copro(prog, ctx, breadth=2, depth=2, track_stats=False)
    assert "stats" not in result.report
    assert len(result.report["candidates"]) == 4


def test_predictors_are_tuned_one_after_the_other() -> None:
    world, prog, ctx = setup(program=pipe_program())
    result = copro(prog, ctx, breadth=2, depth=1)
    order = [c["predictor"] for c in result.report["candidates"]]
    assert order == ["Pipe.c", "Pipe.c", "Pipe.s", "Pipe.s"]


class FakeBudget:
    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.checks = 0

    def check(self, calls: int = 1) -> None:
        self.checks += 1
        if self.checks > self.allowed:
            raise BudgetExceeded("fake cap")


def test_budget_stops_cleanly_with_the_best_so_far() -> None:
    # 2 proposal checks, then one per scored candidate: allow 2 + 2 scorings
    world, prog, ctx = setup(budget=FakeBudget(4))
    result = copro(prog, ctx, breadth=3, depth=2)
    assert result.report["stopped"] == "budget"
    assert len(result.report["candidates"]) == 2
    assert ctx.budget.checks == 5
    assert result.report["best_score"] == max(c["score"] for c in result.report["candidates"])


def test_estimate_matches_cold_cache_calls(tmp_path: Path) -> None:
    world, prog, ctx = setup(cache=tmp_path / "c.sqlite")
    result = copro(prog, ctx, breadth=3, depth=2)
    actual = ctx.run_ctx.client.usage.snapshot()["calls"]
    assert result.report["projected_calls"] == estimate(workload_of(prog, ctx), breadth=3,
                                                        depth=2).calls
    assert result.report["projected_calls"] == actual == 2 + 3 + 6 * 16


def test_prompt_model_role_writes_the_candidates() -> None:
    from world import run_context

    world, prog, ctx = setup()
    writer = World(answer=answer)
    ctx.prompt_ctx = run_context(writer)
    copro(prog, ctx, breadth=2, depth=2)
    assert len(writer_requests(writer, "proposed_instruction")) == 3
    assert not writer_requests(world, "proposed_instruction")
