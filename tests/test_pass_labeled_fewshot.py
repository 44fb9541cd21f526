"""labeled_fewshot: k labeled demos per predictor, seeded or in order, no LM calls."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import World, classify_program, examples, pass_context, pipe_program  # noqa: E402

from lmpc.compiler.passes._estimate import Workload, placeholder_rows  # noqa: E402
from lmpc.compiler.passes.labeled_fewshot import estimate, labeled_fewshot  # noqa: E402

TEXTS = [f"good thing {i}" if i % 2 else f"bad thing {i}" for i in range(20)]


def test_k_labeled_demos_with_only_signature_fields() -> None:
    world = World()
    prog = classify_program()
    train = examples(TEXTS)
    result = labeled_fewshot(prog, pass_context(world, prog, "Classify", train), k=5)
    demos = result.program.predictors["Classify.c"].demos
    assert len(demos) == 5
    assert {d.kind for d in demos} == {"labeled"}
    assert all(set(d.values) == {"text", "label"} for d in demos)
    assert prog.predictors["Classify.c"].demos == []  # the input IR is untouched
    assert result.report["demos"] == {"Classify.c": {"labeled": 5, "bootstrapped": 0}}
    assert world.requests == []


def test_sample_false_takes_the_first_k() -> None:
    prog = classify_program()
    ctx = pass_context(World(), prog, "Classify", examples(TEXTS))
    demos = labeled_fewshot(prog, ctx, k=3, sample=False).program.predictors["Classify.c"].demos
    assert [d.values["text"] for d in demos] == TEXTS[:3]


def test_sample_is_seeded() -> None:
    prog = classify_program()
    train = examples(TEXTS)

    def texts(seed: int) -> list[str]:
        ctx = pass_context(World(), prog, "Classify", train, seed=seed)
        out = labeled_fewshot(prog, ctx, k=4).program
        return [d.values["text"] for d in out.predictors["Classify.c"].demos]

    assert texts(0) == texts(0)
    assert texts(0) != texts(1)
    assert texts(0) != TEXTS[:4]


def test_k_larger_than_trainset_takes_all() -> None:
    prog = classify_program()
    ctx = pass_context(World(), prog, "Classify", examples(TEXTS[:3]))
    assert len(labeled_fewshot(prog, ctx, k=16).program.predictors["Classify.c"].demos) == 3


def test_each_predictor_gets_the_fields_the_data_has() -> None:
    prog = pipe_program()
    with_summary = labeled_fewshot(
        prog, pass_context(World(), prog, "Pipe", examples(TEXTS, with_summary=True)), k=4
    ).program
    assert len(with_summary.predictors["Pipe.c"].demos) == 4
    assert set(with_summary.predictors["Pipe.s"].demos[0].values) == {"text", "summary"}
    # without a summary label the second predictor has nothing to learn from
    without = labeled_fewshot(prog, pass_context(World(), prog, "Pipe", examples(TEXTS)),
                              k=4).program
    assert len(without.predictors["Pipe.c"].demos) == 4
    assert without.predictors["Pipe.s"].demos == []


def test_estimate_is_zero() -> None:
    work = Workload(classify_program(), "Classify", placeholder_rows(100), 50)
    assert estimate(work, k=16).max_calls == 0
