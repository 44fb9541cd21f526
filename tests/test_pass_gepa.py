"""gepa: the package's engine driven through lmpc's adapter, on a scripted world.

The world (``world.py``'s classifier): an instruction containing ``level N`` makes the
classifier right on texts whose number ``i`` has ``i % 4 < N`` (no level: 1). The
scripted reflection LM reads the instruction it is shown and writes one ``level`` above
it (``better``), or one below (``worse``), so the tests know which children must be
kept and which dropped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import LM, Cap, World, classify_program, days_setup, examples, level_of, pass_context  # noqa: E402

from lmpc.compiler.passes._estimate import workload_of  # noqa: E402
from lmpc.compiler.passes.gepa import auto_budget, estimate, gepa, metric_budget  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402


def make_answer(step: int = 1, junk: int = 0) -> Any:
    """The scripted world: reflections write ``level + step``; the first ``junk`` replies
    of each reflection are degenerate (the guard must drop them)."""

    def answer(request: LMRequest, text: str, name: str) -> str | None:
        content = request.messages[-1]["content"]
        if name == "new_instruction":
            if junk and request.rollout // 1000 < junk:
                return "0.875"
            current = content.split("## current_instruction ## ]]")[1].split("[[ ##")[0]
            new = max(0, min(4, level_of(current) + step))
            if step < 0:  # worse drafts, each its own (so none is a duplicate)
                return f"Classify the sentiment of the review, level {new} (draft " \
                       f"{request.rollout})."
            return f"Classify the sentiment of the review, level {new}."
        if name == "label" and text:
            level = level_of(request.messages[0]["content"])
            n = int(text.split()[-1])
            right = "positive" if "good" in text else "negative"
            wrong = "negative" if right == "positive" else "positive"
            return right if n % 4 < level else wrong
        return None

    return answer


def setup(step: int = 1, junk: int = 0, n_train: int = 12, n_val: int = 8,
          **kw: Any) -> tuple[World, Any, Any]:
    return days_setup(make_answer(step, junk), n_train, n_val, **kw)


def reflections(world: World) -> list[LMRequest]:
    return [r for r in world.requests if "`new_instruction`" in r.messages[0]["content"]]


def test_a_better_reflection_is_found_and_kept() -> None:
    world, prog, ctx = setup(step=1)
    result = gepa(prog, ctx, max_metric_calls=120, use_merge=False)
    best = result.program.predictors["Classify.c"].signature.instructions
    assert "level 4" in best
    tree = result.report["tree"]
    assert tree[0]["origin"] == "seed" and tree[0]["parents"] == []
    assert tree[0]["val_score"] == pytest.approx(0.25)
    assert result.report["best"]["val_score"] == 1.0 == result.candidates[0].score
    for node in tree[1:]:
        assert node["origin"] == "reflection" and len(node["parents"]) == 1
        parent = tree[node["parents"][0]]
        # each kept child is one level above its parent, written from its feedback
        assert level_of(node["instructions"]["Classify.c"]) == \
            level_of(parent["instructions"]["Classify.c"]) + 1
        assert node["reflection"]["predictor"] == "Classify.c"
        assert len(node["val_scores"]) == 8
    assert prog.predictors["Classify.c"].signature.instructions == "Classify the sentiment."


def test_feedback_reaches_the_reflection_prompt() -> None:
    world, prog, ctx = setup(step=1)
    gepa(prog, ctx, max_metric_calls=40, use_merge=False)
    first = reflections(world)[0].messages[-1]["content"]
    assert "Feedback: exact_match 0.00: expected label = " in first
    assert "Generated outputs:" in first and "Classify the sentiment." in first


def test_a_child_that_does_not_improve_is_dropped() -> None:
    world, prog, ctx = setup(step=-1)
    result = gepa(prog, ctx, max_metric_calls=60, use_merge=False)
    assert reflections(world), "the search reflected"
    assert [n["index"] for n in result.report["tree"]] == [0]  # no child kept
    assert result.program == prog


def test_skip_perfect_score_reflects_on_nothing() -> None:
    world, prog, ctx = setup(step=1)
    prog.predictors["Classify.c"].signature.instructions = "Classify it, level 4."
    result = gepa(prog, ctx, max_metric_calls=40, use_merge=False)
    assert reflections(world) == []
    assert result.report["tree"][0]["val_score"] == 1.0
    world2, prog2, ctx2 = setup(step=1)
    prog2.predictors["Classify.c"].signature.instructions = "Classify it, level 4."
    gepa(prog2, ctx2, max_metric_calls=40, use_merge=False, skip_perfect_score=False)
    assert reflections(world2)


def test_the_guard_drops_junk_reflections_and_asks_again() -> None:
    world, prog, ctx = setup(step=1, junk=1)
    result = gepa(prog, ctx, max_metric_calls=60, use_merge=False)
    guard = result.report["guard"]
    assert guard["dropped"].get("number", 0) >= 1 and guard["kept"] >= 1
    assert "level 2" in json.dumps(result.report["tree"])


def test_same_seed_same_report() -> None:
    reports = []
    for _ in range(2):
        world, prog, ctx = setup(step=1)
        reports.append(json.dumps(gepa(prog, ctx, max_metric_calls=80, seed=3).report,
                                  sort_keys=True))
    assert reports[0] == reports[1]


def test_budget_stop_keeps_the_best_so_far() -> None:
    world, prog, ctx = setup(step=1)
    ctx.budget = Cap(world, 40)
    result = gepa(prog, ctx, max_metric_calls=1000, use_merge=False)
    assert result.report["stopped"] == "budget"
    assert len(world.requests) <= 40
    tree = result.report["tree"]
    assert result.report["best"]["val_score"] == max(n["val_score"] for n in tree)
    assert result.report["best"]["val_score"] >= tree[0]["val_score"]


def test_budgets_and_estimate() -> None:
    assert auto_budget(1, 6, 20) == 460
    assert metric_budget(1, 10, 20, None, 2, None) == 60
    world, prog, ctx = setup()
    work = workload_of(prog, ctx)
    est = estimate(work.with_cache(True), max_metric_calls=68)
    # 8 val rows, then (68 - 8) / 6 = 10 iterations: 30 child runs, 12 parent rows (the
    # cache answers the rest), 10 reflections
    assert est.calls == 8 + 30 + 12 + 10
    assert estimate(work.with_cache(False), max_metric_calls=68).calls == 8 + 30 + 30 + 10
    assert est.max_calls >= est.calls


@pytest.mark.parametrize("cache", [True, False])
def test_estimate_within_ten_percent_when_children_are_rejected(tmp_path: Path,
                                                                cache: bool) -> None:
    from lmpc.runtime.cache import SQLiteCache
    from lmpc.runtime.context import RunContext
    from lmpc.runtime.lm import LMClient

    world, prog, ctx = setup(step=-1, n_train=12, n_val=10)
    client = LMClient(world.transport, cache=SQLiteCache(tmp_path / "c.sqlite") if cache
                      else None, sleep=lambda s: None)
    ctx.run_ctx = ctx.prompt_ctx = ctx.reflection_ctx = RunContext(
        client=client, program_lms={"m": LM}, task_lm=LM)
    result = gepa(prog, ctx, max_metric_calls=160, use_merge=False)
    made = client.usage.snapshot()["calls"]
    assert abs(result.report["projected_calls"] - made) <= 0.1 * made, (
        result.report["projected_calls"], made)


# ---------------------------------------------------------------- Pareto front and merges


def halves_answer(request: LMRequest, text: str, name: str) -> str | None:
    """Instructions saying ``even`` / ``odd`` make the classifier right on texts with an
    even / odd number; a reflection adds the half its feedback shows missing (the
    first failing example's number decides which)."""
    content = request.messages[-1]["content"]
    if name == "new_instruction":
        current = content.split("## current_instruction ## ]]")[1].split("[[ ##")[0]
        shown = content.split("## examples_with_feedback ## ]]")[1]
        wrong = [int(n) for n, fb in re.findall(r"day (\d+)\n.*?Feedback: (\S+)", shown, re.S)
                 if fb != "correct:"]
        half = "even" if wrong and wrong[0] % 2 == 0 else "odd"
        words = sorted({w for w in ("even", "odd") if w in current} | {half})
        return "Classify the sentiment: handle " + " and ".join(words) + " days."
    if name == "label" and text:
        instruction = request.messages[0]["content"]
        n = int(text.split()[-1])
        right = "positive" if "good" in text else "negative"
        wrong = "negative" if right == "positive" else "positive"
        ok = ("even" in instruction and n % 2 == 0) or ("odd" in instruction and n % 2 == 1)
        return right if ok else wrong
    return None


def test_pareto_front_bookkeeping_and_parents_from_it() -> None:
    world = World(answer=halves_answer)
    prog = classify_program()
    rows = [f"good day {i}" if i % 3 else f"bad day {i}" for i in range(24)]
    data = examples(rows)
    ctx = pass_context(world, prog, "Classify", data[:12], data[12:])
    result = gepa(prog, ctx, max_metric_calls=200, use_merge=False, seed=2)
    tree, front = result.report["tree"], result.report["pareto_front"]
    assert len(front) == 12
    for j, best in enumerate(front):  # the engine's front is the per-example maximum
        top = max(n["val_scores"][j] for n in tree)
        assert best == [n["index"] for n in tree if n["val_scores"][j] == top]
    for node in tree:
        assert node["best_on"] == sum(node["index"] in b for b in front)
    assert "even and odd" in result.program.predictors["Classify.c"].signature.instructions
    assert result.report["best"]["val_score"] == 1.0


SWITCH = {"even": "odd", "odd": "even", "low": "high", "high": "low"}


def trade_off_answer(request: LMRequest, text: str, name: str) -> str | None:
    """``Pipe`` with trade-offs: ``label`` is right on even or odd numbers, ``summary`` on
    low (``n % 4 < 2``) or high ones, as each instruction says; a reflection switches its
    predictor to the other half. So every candidate is best somewhere (all on the
    Pareto front) and two siblings that changed different predictors can be merged."""
    content = request.messages[-1]["content"]
    if name == "new_instruction":
        current = content.split("## current_instruction ## ]]")[1].split("[[ ##")[0]
        half = next(w for w in re.findall(r"\w+", current) if w in SWITCH)
        return f"Answer from the text: handle {SWITCH[half]} days."
    if name in ("label", "summary") and text:
        instruction = request.messages[0]["content"].split("Your objective:")[-1]
        n = int(text.split()[-1])
        right = ("positive" if "good" in text else "negative") if name == "label" \
            else text.split()[0]
        ok = {"even": n % 2 == 0, "odd": n % 2 == 1, "low": n % 4 < 2, "high": n % 4 >= 2}
        half = next(w for w in re.findall(r"\w+", instruction) if w in ok)
        return right if ok[half] else "wrong"
    if name == "reasoning":
        return "thinking"
    return None


def test_merge_combines_two_lines_and_is_kept_only_when_good_enough() -> None:
    from world import pipe_program

    from lmpc.eval.metrics import build_metric
    from lmpc.ir import MetricIR

    world = World(answer=trade_off_answer)
    prog = pipe_program()
    prog.predictors["Pipe.c"].signature.instructions = "Answer from the text: odd days."
    prog.predictors["Pipe.s"].signature.instructions = "Answer from the text: low days."
    rows = [f"good day {i}" if i % 3 else f"bad day {i}" for i in range(24)]
    data = examples(rows, with_summary=True)
    ctx = pass_context(world, prog, "Pipe", data[:12], data[12:])
    ctx.metric = build_metric(MetricIR(name="w", kind="weighted", parts=[(1.0, "a"), (1.0, "s")]),
                              prog.model_copy(update={"metrics": {
                                  "a": MetricIR(name="a", kind="exact_match", field="label"),
                                  "s": MetricIR(name="s", kind="exact_match",
                                                field="summary")}}))
    result = gepa(prog, ctx, max_metric_calls=400, use_merge=True, seed=1)
    tree = result.report["tree"]
    merges = [n for n in tree if n["origin"] == "merge"]
    assert merges, [(n["index"], n["parents"], n["origin"]) for n in tree]
    for node in merges:
        a, b = (tree[p] for p in node["parents"])
        # each predictor's instruction comes from one of the two parents
        for pid, text in node["instructions"].items():
            assert text in (a["instructions"][pid], b["instructions"][pid])
        assert node["instructions"] not in (a["instructions"], b["instructions"])
        assert node["val_score"] >= min(a["val_score"], b["val_score"])
        assert "reflection" not in node  # no reflection wrote it
    assert result.report["best"]["val_score"] == max(n["val_score"] for n in tree)
    assert len({json.dumps(n["instructions"], sort_keys=True) for n in tree}) == len(tree)


def test_the_reflection_lm_writes_the_instructions() -> None:
    from world import run_context

    from lmpc.compiler.passes._demos import PassError

    world, prog, ctx = setup(step=1)
    writer = World(answer=make_answer(step=1))
    ctx.reflection_ctx = run_context(writer)
    gepa(prog, ctx, max_metric_calls=40, use_merge=False)
    assert reflections(writer) and not reflections(world)
    world, prog, ctx = setup(step=1)
    writer = World(answer=make_answer(step=1))
    ctx.prompt_ctx = run_context(writer)
    gepa(prog, ctx, max_metric_calls=40, use_merge=False, reflection_lm="prompt_model")
    assert reflections(writer) and not reflections(world)
    with pytest.raises(PassError, match="neither an LM nor an LM role"):
        gepa(prog, ctx, max_metric_calls=40, reflection_lm="nope")


def test_estimate_with_a_weak_writer_counts_dropped_reflections() -> None:
    """An embedded base model's reflections are dropped and re-asked: no child runs, so
    the budget buys twice the iterations, each a parent minibatch and up to three asks."""
    from dataclasses import replace

    from lmpc.compiler.passes._guard import MAX_REASKS

    world, prog, ctx = setup()
    work = replace(workload_of(prog, ctx).with_cache(False), weak_writer=True)
    est = estimate(work, max_metric_calls=68)
    # 8 val rows, then (68 - 8) / 3 = 20 iterations: 60 parent runs, 20 x 3 asks
    assert est.calls == 8 + 60 + 20 * (1 + MAX_REASKS)
    assert est.max_calls >= est.calls


def test_a_child_better_on_train_but_worse_on_val_is_not_returned() -> None:
    """The reflections raise the level (better on every training minibatch); on the
    valset's ``night`` texts only the seed's instruction is right."""
    better = make_answer(step=1)

    def answer(request: LMRequest, text: str, name: str) -> str | None:
        if name == "label" and text and "night" in text:
            right = "positive" if "good" in text else "negative"
            wrong = "negative" if right == "positive" else "positive"
            return right if level_of(request.messages[0]["content"]) == 1 else wrong
        return better(request, text, name)

    world, prog, ctx = days_setup(answer, 12, 8, nights=True)
    result = gepa(prog, ctx, max_metric_calls=60, use_merge=False)
    tree = result.report["tree"]
    assert len(tree) > 1, "a child beat its parent on a minibatch and was scored on val"
    assert all(n["val_score"] == 0.0 for n in tree[1:]) and tree[0]["val_score"] == 1.0
    assert result.report["best"]["index"] == 0
    assert result.program == prog
