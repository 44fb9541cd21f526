"""bootstrap_fewshot: the four steps of OPTIMIZERS.md, through the real runtime and adapter."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import (  # noqa: E402
    LMIR,
    World,
    classify_program,
    examples,
    pass_context,
    pipe_program,
)

from lmpc.compiler.passes._demos import PassError  # noqa: E402
from lmpc.compiler.passes._estimate import Workload, placeholder_rows  # noqa: E402
from lmpc.compiler.passes.bootstrap_fewshot import bootstrap_fewshot, estimate  # noqa: E402
from lmpc.ir import Demo  # noqa: E402

TEXTS = [f"good day {i}" if i % 2 else f"bad day {i}" for i in range(10)]


def _kinds(demos: list[Demo]) -> list[str]:
    return [d.kind for d in demos]


def test_bootstraps_in_order_then_tops_up_with_unused_labeled_rows() -> None:
    world = World()
    prog = classify_program()
    train = examples(TEXTS)
    result = bootstrap_fewshot(prog, pass_context(world, prog, "Classify", train),
                               max_bootstrapped_demos=2, max_labeled_demos=5)
    demos = result.program.predictors["Classify.c"].demos
    assert _kinds(demos) == ["bootstrapped"] * 2 + ["labeled"] * 3
    # the trainset is walked in order and stops at two successes
    assert [d.values["text"] for d in demos[:2]] == TEXTS[:2]
    assert result.report["examples_tried"] == 2
    assert result.report["bootstrapped_examples"] == [0, 1]
    # the top-up never repeats a bootstrapped example
    assert not {d.values["text"] for d in demos[2:]} & set(TEXTS[:2])
    assert result.report["demos"] == {"Classify.c": {"labeled": 3, "bootstrapped": 2}}
    assert prog.predictors["Classify.c"].demos == []


def test_teacher_has_labeled_demos_but_never_sees_the_example_it_runs() -> None:
    world = World()
    prog = classify_program()
    train = examples(TEXTS)
    bootstrap_fewshot(prog, pass_context(world, prog, "Classify", train),
                      max_bootstrapped_demos=4, max_labeled_demos=16)
    assert len(world.requests) == 4
    for request in world.requests:
        shown = world.demo_inputs(request)
        current = world.current_input(request)
        assert current not in shown
        assert sorted(shown) == sorted(t for t in TEXTS if t != current)


def test_every_step_of_a_trace_becomes_a_demo_of_its_predictor() -> None:
    world = World()
    prog = pipe_program()
    train = examples(TEXTS, with_summary=True)
    out = bootstrap_fewshot(prog, pass_context(world, prog, "Pipe", train),
                            max_bootstrapped_demos=3, max_labeled_demos=4).program
    cot, summ = out.predictors["Pipe.c"].demos, out.predictors["Pipe.s"].demos
    assert _kinds(cot) == ["bootstrapped"] * 3 + ["labeled"]
    assert _kinds(summ) == ["bootstrapped"] * 3 + ["labeled"]
    assert set(cot[0].values) == {"text", "reasoning", "label"}  # reasoning kept
    assert cot[0].values["reasoning"] == f"thinking about {TEXTS[0]}"
    assert set(summ[0].values) == {"text", "summary"}
    assert set(cot[3].values) == {"text", "label"}  # labeled rows carry no reasoning


def test_metric_threshold_decides_success() -> None:
    prog = classify_program()
    train = examples(TEXTS)

    def partial(example: Any, prediction: Any, trace: Any = None) -> float:
        return 0.6 if prediction.outputs["label"] == example.labels["label"] else 0.0

    def run(threshold: float | None) -> list[str]:
        ctx = pass_context(World(), prog, "Classify", train)
        ctx.metric = partial
        out = bootstrap_fewshot(prog, ctx, max_bootstrapped_demos=2, max_labeled_demos=2,
                                metric_threshold=threshold).program
        return _kinds(out.predictors["Classify.c"].demos)

    assert run(None) == ["bootstrapped", "bootstrapped"]  # 0.6 is truthy
    assert run(0.5) == ["bootstrapped", "bootstrapped"]
    assert run(0.7) == ["labeled", "labeled"]  # nothing reaches 0.7


def test_later_rounds_resample_at_temperature_one_with_fresh_rollouts() -> None:
    texts = ["good tricky 0", "bad tricky 1", "good day 2"]
    prog = classify_program()
    train = examples(texts)

    one = World()
    r1 = bootstrap_fewshot(prog, pass_context(one, prog, "Classify", train),
                           max_bootstrapped_demos=3, max_labeled_demos=3, max_rounds=1)
    assert r1.report["bootstrapped_examples"] == [2]  # tricky ones fail on the first try

    three = World()
    r3 = bootstrap_fewshot(prog, pass_context(three, prog, "Classify", train),
                           max_bootstrapped_demos=3, max_labeled_demos=3, max_rounds=3)
    assert r3.report["bootstrapped_examples"] == [0, 1, 2]
    tries = [(three.current_input(r), r.rollout, r.settings.get("temperature"))
             for r in three.requests]
    assert tries[0][1] == 0 and tries[0][2] != 1.0
    assert tries[1] == ("good tricky 0", 1, 1.0)
    assert [t[0] for t in tries] == ["good tricky 0", "good tricky 0", "bad tricky 1",
                                     "bad tricky 1", "good day 2"]
    assert [a["round"] for a in r3.report["attempts"]] == [0, 1, 0, 1, 0]


def test_errors_are_counted_and_abort_at_max_errors() -> None:
    texts = ["broken 0", "good 1", "broken 2", "bad 3", "good 4"]
    prog = classify_program()
    train = examples(texts)
    ok = bootstrap_fewshot(prog, pass_context(World(), prog, "Classify", train),
                           max_bootstrapped_demos=3, max_errors=5)
    assert ok.report["errors"] == 2
    assert ok.report["bootstrapped_examples"] == [1, 3, 4]
    assert "error" in ok.report["attempts"][0]

    with pytest.raises(PassError, match="max_errors = 2"):
        bootstrap_fewshot(prog, pass_context(World(), prog, "Classify", train),
                          max_bootstrapped_demos=3, max_errors=2)


def test_teacher_module_runs_instead_of_the_student() -> None:
    prog = classify_program()
    teacher_prog = classify_program("Teacher instructions.")
    # a second module of the same shape, with its own predictor
    mod = teacher_prog.modules["Classify"].model_copy(deep=True)
    mod.name = "Teach"
    mod.steps[0].predictor = "Teach.c"
    pred = teacher_prog.predictors["Classify.c"].model_copy(deep=True)
    pred.id = "Teach.c"
    prog.modules["Teach"] = mod
    prog.predictors["Teach.c"] = pred
    world = World()
    out = bootstrap_fewshot(prog, pass_context(world, prog, "Classify", examples(TEXTS)),
                            max_bootstrapped_demos=2, max_labeled_demos=2, teacher="Teach")
    assert _kinds(out.program.predictors["Classify.c"].demos) == ["bootstrapped"] * 2
    assert out.program.predictors["Teach.c"].demos == []
    assert all("Teacher instructions." in r.messages[0]["content"] for r in world.requests)


def test_teacher_lm_name_runs_on_that_model() -> None:
    prog = classify_program()
    prog.lms["big"] = LMIR(name="big", model="scripted/big", model_type="chat")
    world = World()
    bootstrap_fewshot(prog, pass_context(world, prog, "Classify", examples(TEXTS)),
                      max_bootstrapped_demos=2, teacher="big")
    assert {r.model for r in world.requests} == {"scripted/big"}


def test_unknown_teacher_is_a_clear_error() -> None:
    prog = classify_program()
    with pytest.raises(PassError, match="neither a module, an LM nor an LM role"):
        bootstrap_fewshot(prog, pass_context(World(), prog, "Classify", examples(TEXTS)),
                          teacher="nobody")


def test_estimate_expects_the_demos_wanted_and_bounds_by_every_example_and_round() -> None:
    work = Workload(classify_program(), "Classify", placeholder_rows(10), 5)
    est = estimate(work, max_rounds=2)
    assert (est.calls, est.max_calls) == (4, 20)


def test_hiding_and_labeled_demos_follow_renamed_module_fields() -> None:
    # Classify(q) -> (answer) binds Sentiment(text = q) and returns answer = c.label
    prog = classify_program(inp="q", out="answer")
    train = examples(TEXTS, inp="q", out="answer")
    world = World()
    out = bootstrap_fewshot(prog, pass_context(world, prog, "Classify", train, field="answer"),
                            max_bootstrapped_demos=2).program
    demos = out.predictors["Classify.c"].demos
    assert _kinds(demos) == ["bootstrapped"] * 2 + ["labeled"] * 8
    assert all(set(d.values) == {"text", "label"} for d in demos)
    for request in world.requests:
        assert world.current_input(request) not in world.demo_inputs(request)
        assert len(world.demo_inputs(request)) == 9  # all 10 rows are teacher demos
