"""The dry run against the calls really made, over a grid of settings.

Each case builds a small sentiment program through the real driver, adapter and parser
with a scripted text model, and compares ``estimate_plan`` — what ``lmpc build
--dry-run`` prints — with the LM calls the build makes: for every step (the evaluations
and each pass) and for the whole build, within 10%. The grid crosses trainset sizes,
MIPROv2's auto levels, demo counts, candidate counts and the LM cache on and off.

The scripted model is right on every example, so every bootstrap attempt succeeds (the
projection's ``calls``); a second world whose teacher is always wrong checks the bound
the dry run prints beside it (``max_calls``: bootstrapping walks the whole trainset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_pipeline_fixtures import NEGATIVE, POSITIVE, sentiment_program

from lmpc.compiler.passes.base import PassStarted
from lmpc.compiler.pipeline import estimate_plan, run_optimize
from lmpc.ir import PassIR, SplitIR
from lmpc.runtime.cache import SQLiteCache
from lmpc.runtime.lm import LMClient
from lmpc.runtime.scripted import ScriptedTransport, render_request

TOLERANCE = 0.10


def write_rows(folder: Path, n: int) -> None:
    rows = []
    for i in range(n):
        good = i % 3 != 0
        word = (POSITIVE if good else NEGATIVE)[i % 10]
        rows.append({"text": f"The movie was {word} (review {i}).",
                     "label": "positive" if good else "negative"})
    (folder / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def label_of(prompt: str) -> str:
    tail = prompt.rsplit("The movie was", 1)[-1]
    return "positive" if any(word in tail for word in POSITIVE) else "negative"


def right(request: Any) -> str:
    """Right with demos or a proposed instruction in the prompt, wrong zero-shot (so the
    optimized program is never the unchanged one); proposals are distinct real
    instructions per rollout."""
    prompt = render_request(request)
    if prompt.rstrip().endswith("Proposed Instruction:"):
        return f" Decide whether the movie review is positive or negative ({request.rollout})."
    label = label_of(prompt)
    if prompt.count("The movie was") > 1 or "Decide whether" in prompt:
        return " " + label
    return " " + ("negative" if label == "positive" else "positive")


def teacher_wrong(request: Any) -> str:
    """Wrong whenever the prompt shows demos (the bootstrapping teacher always fails)."""
    prompt = render_request(request)
    reply = right(request)
    if prompt.count("The movie was") > 1 and not prompt.rstrip().endswith("Instruction:"):
        return " " + ("negative" if label_of(prompt) == "positive" else "positive")
    return reply


def build(tmp_path: Path, passes: list[PassIR], split: tuple[int, int, int], cache: bool,
          reply: Any = right) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(the plan, new LM calls per step) for one build."""
    train, val, test = split
    program = sentiment_program(tmp_path, passes=passes,
                                split=SplitIR(train=train, val=val, test=test, seed=5))
    write_rows(tmp_path, train + val + test)
    optimize = program.optimizes[0]
    from lmpc.eval.data import load_examples, split_examples

    rows = split_examples(load_examples(program.datasets["reviews"], program.base_dir,
                                        ["text"]), program.datasets["reviews"].split)
    plan = estimate_plan(program, optimize, {k: len(v) for k, v in rows.items()},
                         splits=rows, cache=cache)
    transport = ScriptedTransport(fn=reply)
    store = SQLiteCache(tmp_path / "cache.sqlite") if cache else None
    client = LMClient(transport, cache=store, sleep=lambda s: None)
    marks: list[tuple[str, int]] = []

    def on_event(event: Any) -> None:
        if isinstance(event, PassStarted):  # passes and the before/after evaluations
            name = event.pass_name
            if name.startswith("evaluate"):
                name = name.split(" (")[0] + " (val + test)"
            marks.append((name, len(transport.requests)))

    result = run_optimize(program, optimize, client=client, progress=on_event, threads=2)
    assert result.passes, "the build ran no pass"
    made: dict[str, int] = {}
    ends = [start for _, start in marks[1:]] + [len(transport.requests)]
    for (name, start), end in zip(marks, ends, strict=True):
        made[name] = made.get(name, 0) + end - start
    made["total"] = len(transport.requests)
    for run in result.passes:  # requests sent, the cache's answers included
        made[f"requests:{run.name}"] = int(run.usage["lm_requests"])
    return plan, made


def close(projected: int, actual: int) -> bool:
    return abs(projected - actual) <= max(TOLERANCE * actual, 1)


def check(plan: list[dict[str, Any]], made: dict[str, int], key: str = "calls") -> None:
    total = sum(step[key] for step in plan)
    assert close(total, made["total"]), (key, total, made, plan)
    for step in plan:
        if key == "max_calls" and step["step"].startswith("evaluate after"):
            continue  # which candidate wins (and so what is cached) is not the teacher's doing
        assert close(step[key], made.get(step["step"], 0)), (step["step"], step[key], made)
        if key == "calls" and "requests" in step:  # what the progress bar counts up to
            sent = made[f"requests:{step['step']}"]
            assert close(step["requests"], sent), (step["step"], step["requests"], sent)


GRID = [
    # (passes, (train, val, test))
    ([PassIR(name="labeled_fewshot", params={"k": 4})], (10, 12, 8)),
    ([PassIR(name="bootstrap_fewshot", params={"max_bootstrapped_demos": 2})], (10, 12, 8)),
    ([PassIR(name="bootstrap_fewshot", params={"max_bootstrapped_demos": 4,
                                               "max_labeled_demos": 4})], (30, 12, 8)),
    ([PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 1,
                                                     "max_bootstrapped_demos": 2})],
     (10, 12, 8)),
    ([PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 4,
                                                     "max_bootstrapped_demos": 4,
                                                     "max_labeled_demos": 4})], (30, 20, 8)),
    ([PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 8,
                                                     "max_bootstrapped_demos": 4,
                                                     "max_labeled_demos": 8})], (20, 10, 6)),
    ([PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 3}),
      PassIR(name="ensemble", params={"top": 3})], (12, 10, 8)),
    ([PassIR(name="labeled_fewshot", params={"k": 2}),
      PassIR(name="bootstrap_random_search", params={"num_candidate_programs": 2})],
     (12, 10, 8)),
    ([PassIR(name="knn_fewshot", params={"k": 3})], (16, 10, 8)),
    ([PassIR(name="copro", params={"breadth": 3, "depth": 2})], (10, 6, 6)),
    ([PassIR(name="mipro_v2", params={"auto": "light", "storage": "memory"})], (20, 40, 8)),
    ([PassIR(name="mipro_v2", params={"auto": "medium", "max_bootstrapped_demos": 2,
                                      "max_labeled_demos": 2, "storage": "memory"})],
     (30, 40, 8)),
    ([PassIR(name="mipro_v2", params={"auto": "heavy", "max_bootstrapped_demos": 0,
                                      "max_labeled_demos": 0, "storage": "memory"})],
     (20, 40, 8)),
    ([PassIR(name="mipro_v2", params={"auto": None, "num_candidates": 5, "num_trials": 16,
                                      "minibatch_size": 10, "storage": "memory"}),
      PassIR(name="ensemble", params={"top": 2})], (12, 20, 6)),
]


def _id(case: tuple[list[PassIR], tuple[int, int, int]]) -> str:
    passes, split = case
    parts = [p.name + ("(" + ",".join(f"{k}={v}" for k, v in p.params.items()
                                      if k != "storage") + ")") for p in passes]
    return " then ".join(parts) + f" {split}"


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("case", GRID, ids=[_id(c) for c in GRID])
def test_projection_within_ten_percent(tmp_path: Path, case: Any, cache: bool) -> None:
    passes, split = case
    plan, made = build(tmp_path, passes, split, cache)
    check(plan, made)


@pytest.mark.parametrize("case", [GRID[2], GRID[4], GRID[8], GRID[10]],
                         ids=[_id(c) for c in (GRID[2], GRID[4], GRID[8], GRID[10])])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_bound_holds_when_the_teacher_always_fails(tmp_path: Path, case: Any,
                                                   cache: bool) -> None:
    passes, split = case
    plan, made = build(tmp_path, passes, split, cache, reply=teacher_wrong)
    made["total"] -= made.pop("evaluate after (val + test)", 0)
    check(plan[:-1], made, key="max_calls")


def test_full_evaluation_search_is_near_its_projection(tmp_path: Path) -> None:
    """The mean over seeds: which combinations one seed's trials reach moves a run by
    more than the projection's error (72 to 114 calls over seeds 0-5)."""
    planned, made = [], []
    for seed in (0, 1, 2, 3):
        passes = [PassIR(name="mipro_v2", params={"auto": None, "num_candidates": 4,
                                                  "num_trials": 12, "minibatch": False,
                                                  "storage": "memory", "seed": seed})]
        (tmp_path / str(seed)).mkdir()
        plan, run = build(tmp_path / str(seed), passes, (12, 10, 6), True)
        planned.append(plan[1]["calls"])
        made.append(run["mipro_v2"])
    assert abs(sum(planned) - sum(made)) <= 0.15 * sum(made), (planned, made)


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_weak_writers_gepa_hands_back_its_input_so_the_final_evaluation_is_cached(
        tmp_path: Path, cache: bool) -> None:
    """With the embedded base model writing the reflections (W1606) GEPA proposes no
    child: the build's final evaluation repeats its first (all cached)."""
    from lmpc.ir import LMIR

    passes = [PassIR(name="gepa", params={"max_metric_calls": 60})]
    program = sentiment_program(tmp_path, passes=passes,
                                split=SplitIR(train=10, val=6, test=4, seed=5))
    optimize = program.optimizes[0]
    sizes = {"train": 10, "val": 6, "test": 4}
    strong = estimate_plan(program, optimize, sizes, cache=cache)
    program.lms["fake"] = LMIR(name="fake", model="local/gemma-3-270m", model_type="text")
    weak = estimate_plan(program, optimize, sizes, cache=cache)
    assert strong[-1]["calls"] == (4 if cache else 10)  # the test rows (val: the search's)
    assert weak[-1]["calls"] == (0 if cache else 10)
    assert weak[1]["calls"] != strong[1]["calls"]  # the search itself is projected apart
