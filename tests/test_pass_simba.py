"""simba: sampling, buckets, both strategies, the final pick, budget and estimate.

The scripted world: the classifier is right on ``day N`` when ``(N + rollout) % 4 <
level`` (``level`` from the last ``level k`` in its instructions, else 1), so the runs
of one example at different rollouts disagree and buckets have spread; a prompt that
shows a demo raises the level by one. The advice writer proposes one level above the
instruction it is shown.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import (  # noqa: E402
    LM,
    Cap,
    World,
    classify_program,
    days_setup,
    examples,
    level_of,
    pass_context,
)

from lmpc.compiler.passes._estimate import workload_of  # noqa: E402
from lmpc.compiler.passes.simba import (  # noqa: E402
    _Pool,
    estimate,
    percentile,
    simba,
    softmax_sample,
)
from lmpc.runtime.lm_types import LMRequest  # noqa: E402


def answer(request: LMRequest, text: str, name: str) -> str | None:
    content = request.messages[-1]["content"]
    if name == "advice":
        current = content.split("## current_instruction ## ]]")[1].split("[[ ##")[0]
        return f"Read the whole review first, level {min(4, level_of(current) + 1)}."
    if name == "label" and text:
        level = level_of(request.messages[0]["content"]) + (len(request.messages) > 2)
        n = int(text.split()[-1])
        right = "positive" if "good" in text else "negative"
        wrong = "negative" if right == "positive" else "positive"
        return right if (n + request.rollout) % 4 < level else wrong
    return None


def setup(n_train: int = 16, n_val: int = 8, **kw: Any) -> tuple[World, Any, Any]:
    return days_setup(answer, n_train, n_val, **kw)


def advice_requests(world: World) -> list[LMRequest]:
    return [r for r in world.requests if "`advice`" in r.messages[0]["content"]]


def test_softmax_sampling_favours_better_programs_and_keeps_the_baseline() -> None:
    pool = _Pool([None] * 4, {0: [], 1: [0.2], 2: [0.9], 3: [0.5]})
    assert pool.top_k_plus_baseline(2) == [2, 0]  # the baseline replaces the last slot
    assert pool.top_k_plus_baseline(4) == [2, 3, 1, 0]
    rng = random.Random(1)
    draws = [softmax_sample(rng, pool, [0, 1, 2, 3], 0.2) for _ in range(2000)]
    assert draws.count(2) > draws.count(3) > draws.count(1) > draws.count(0)
    cold = [softmax_sample(rng, pool, [0, 1, 2, 3], 100.0) for _ in range(2000)]
    assert min(cold.count(i) for i in range(4)) > 400  # a hot softmax is near uniform
    assert percentile([0, 0.5, 1, 1], 10) == pytest.approx(0.15)


def test_buckets_put_the_most_varied_examples_first() -> None:
    world, prog, ctx = setup()
    result = simba(prog, ctx, bsize=8, num_candidates=3, max_steps=2, max_demos=2)
    for step in result.report["steps"]:
        stats = [tuple(b["stats"]) for b in step["buckets"]]
        assert stats == sorted(stats, reverse=True)
        assert stats[0][0] > 0  # the runs disagree on some example
        assert len(step["candidates"]) == 4  # num_candidates + 1
        assert step["winner"] == max(step["candidates"], key=lambda c: c["score"])["index"]
    sampled = [r for r in world.requests if r.settings.get("temperature") == 1.0]
    assert {r.rollout for r in sampled} == {0, 1, 2}


def test_both_strategies_and_the_final_pick() -> None:
    world, prog, ctx = setup()
    result = simba(prog, ctx, bsize=8, num_candidates=3, max_steps=4, max_demos=2)
    cands = [c for s in result.report["steps"] for c in s["candidates"]]
    demos = [c for c in cands if c["strategy"] == "append_a_demo" and c["applied"]]
    rules = [c for c in cands if c["strategy"] == "append_a_rule" and c["applied"]]
    assert demos and rules
    assert all(c["demos_added"] == ["Classify.c"] for c in demos)
    assert all("Read the whole review first, level" in c["rules"]["Classify.c"] for c in rules)
    # the advice writer saw a better and a worse run with their feedback
    shown = advice_requests(world)[0].messages[-1]["content"]
    assert "[[ ## better_run ## ]]" in shown and "feedback: exact_match 0.00: expected" in shown
    final = result.report["final"]
    assert final[0]["index"] == 0  # the unchanged program is always a finalist
    assert result.report["picked"] == max(final, key=lambda r: r["train_score"])["index"]
    best = result.program.predictors["Classify.c"]
    assert level_of(best.signature.instructions) + bool(best.demos) > 1
    assert result.candidates[0].score == max(r["train_score"] for r in final)
    check = result.report["val_check"]
    assert check["picked"] >= check["input"]


def test_no_demos_with_max_demos_zero() -> None:
    world, prog, ctx = setup()
    result = simba(prog, ctx, bsize=8, num_candidates=2, max_steps=2, max_demos=0)
    cands = [c for s in result.report["steps"] for c in s["candidates"]]
    assert {c["strategy"] for c in cands} == {"append_a_rule"}
    assert not result.program.predictors["Classify.c"].demos


def test_same_seed_same_report() -> None:
    reports = []
    for _ in range(2):
        world, prog, ctx = setup()
        reports.append(json.dumps(simba(prog, ctx, bsize=6, num_candidates=2,
                                        max_steps=2).report, sort_keys=True, default=str))
    assert reports[0] == reports[1]


def test_budget_stop_keeps_the_best_winner_so_far() -> None:
    world, prog, ctx = setup()
    ctx.budget = Cap(world, 60)
    result = simba(prog, ctx, bsize=8, num_candidates=3, max_steps=8)
    assert result.report["stopped"] == "budget"
    assert result.report["picked"] in result.report["winners"]


@pytest.mark.parametrize("cache", [True, False])
def test_estimate_within_ten_percent(tmp_path: Path, cache: bool) -> None:
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.context import RunContext
    from lmpc.runtime.lm import LMClient

    world, prog, ctx = setup(n_train=16, n_val=8)
    client = LMClient(world.transport, cache=SQLiteCache(tmp_path / "c.sqlite") if cache
                      else None, sleep=lambda s: None)
    ctx.run_ctx = ctx.prompt_ctx = RunContext(client=client, program_lms={"m": LM},
                                              task_lm=LM)
    result = simba(prog, ctx, bsize=8, num_candidates=3, max_steps=4)
    made = client.usage.snapshot()["calls"]
    projected = estimate(workload_of(prog, ctx), bsize=8, num_candidates=3, max_steps=4).calls
    assert abs(projected - made) <= 0.1 * made, (projected, made, result.report["advice_asked"])


def trap_answer(request: LMRequest, text: str, name: str) -> str | None:
    """``answer``, except that on ``night`` texts (the valset) only the unchanged program
    is right: any demo or raised level makes it wrong there."""
    if name == "label" and text and "night" in text:
        changed = level_of(request.messages[0]["content"]) > 1 or len(request.messages) > 2
        right = "positive" if "good" in text else "negative"
        return ("negative" if right == "positive" else "positive") if changed else right
    return answer(request, text, name)


def test_a_pick_worse_on_val_than_the_input_is_not_returned() -> None:
    world, prog, ctx = days_setup(trap_answer, 16, 8, nights=True)
    result = simba(prog, ctx, bsize=8, num_candidates=3, max_steps=4, max_demos=2)
    final = {r["index"]: r["train_score"] for r in result.report["final"]}
    assert max(final, key=lambda i: (final[i], -i)) != 0  # a changed program won on train
    check = result.report["val_check"]
    assert check == {"input": 1.0, "picked": 0.0, "kept": "input"}
    assert result.report["picked"] == 0
    assert result.program == prog  # the input comes back unchanged


def junk_advice(request: LMRequest, text: str, name: str) -> str | None:
    """What the embedded base model writes for advice (the guard drops it: a number)."""
    return "1.00" if name == "advice" else answer(request, text, name)


@pytest.mark.parametrize(("n_train", "bsize", "num_candidates", "max_demos", "cache"), [
    (16, 8, 3, 4, True), (16, 8, 3, 4, False), (40, 16, 4, 4, True), (40, 8, 3, 0, True),
    (16, 8, 3, 0, False)])
def test_estimate_with_a_weak_writer_within_ten_percent(
        tmp_path: Path, n_train: int, bsize: int, num_candidates: int, max_demos: int,
        cache: bool) -> None:
    """Every rule dropped after three asks: rule candidates are copies of pool programs
    (cached where their originals ran), the demo candidates the only new programs."""
    from dataclasses import replace

    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.context import RunContext
    from lmpc.runtime.lm import LMClient

    world = World(answer=junk_advice)
    prog = classify_program()
    rows = [f"good day {i}" if i % 3 else f"bad day {i}" for i in range(n_train + n_train // 2)]
    data = examples(rows)
    ctx = pass_context(world, prog, "Classify", data[:n_train], data[n_train:])
    client = LMClient(world.transport, cache=SQLiteCache(tmp_path / "c.sqlite") if cache
                      else None, sleep=lambda s: None)
    ctx.run_ctx = ctx.prompt_ctx = RunContext(client=client, program_lms={"m": LM},
                                              task_lm=LM)
    params = {"bsize": bsize, "num_candidates": num_candidates, "max_steps": 4,
              "max_demos": max_demos}
    result = simba(prog, ctx, **params)
    assert result.report["guard"]["kept"] == 0 and result.report["guard"]["asked"] > 0
    made = client.usage.snapshot()["calls"]
    work = replace(workload_of(prog, ctx), weak_writer=True)
    projected = estimate(work, **params).calls
    assert abs(projected - made) <= 0.1 * made, (projected, made)
    assert estimate(replace(work, weak_writer=False), **params).calls != projected



def test_the_report_projects_for_a_weak_writer_when_the_rules_come_from_the_embedded_model(
        ) -> None:
    from dataclasses import replace

    from lmpc.ir import LMIR

    local = LMIR(name="local", model="local/gemma-3-270m", model_type="chat")
    world, prog, ctx = setup()
    ctx.prompt_ctx = ctx.prompt_ctx.derive(task_lm=local)  # the scripted world answers it
    params = {"bsize": 8, "num_candidates": 3, "max_steps": 2}
    report = simba(prog, ctx, **params).report
    assert all(r.model == local.model for r in advice_requests(world)) and report["advice_asked"]
    work = workload_of(prog, ctx)
    assert report["projected_calls"] == estimate(replace(work, weak_writer=True),
                                                 **params).calls
    assert report["projected_calls"] != estimate(work, **params).calls
