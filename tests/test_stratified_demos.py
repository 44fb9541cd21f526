"""Stratified demo selection: every class of the metric's field before any repeats.

A four-class task whose trainset is mostly one class, and a scripted teacher that is
right only on that class: plain sampling and plain bootstrapping fill every demo slot
with it (the failure issue 13 measured on the embedded model); stratified selection
covers all four, stays seeded and reproducible, and ``stratify = false`` keeps plain
sampling available.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import World, classify_program, pass_context  # noqa: E402

from lmpc.compiler.passes._demos import (  # noqa: E402
    class_field,
    rng_for,
    seeded_sample,
    stratified,
)
from lmpc.compiler.passes.bootstrap_fewshot import bootstrap_fewshot  # noqa: E402
from lmpc.compiler.passes.bootstrap_random_search import bootstrap_random_search  # noqa: E402
from lmpc.compiler.passes.labeled_fewshot import labeled_fewshot  # noqa: E402
from lmpc.compiler.passes.mipro_v2 import mipro_v2  # noqa: E402
from lmpc.ir import Example, FieldIR, TypeRef  # noqa: E402
from lmpc.runtime.lm_types import LMRequest  # noqa: E402

CLASSES = ("billing", "technical", "shipping", "account")
# 13 billing rows, then one of each other class: a plain sample of 4 is nearly all billing
TRAIN_CLASSES = ["billing"] * 7 + ["technical"] + ["billing"] * 6 + ["shipping", "account"] \
    + ["billing"] * 4 + ["technical", "shipping", "account"]


def rows(labels: list[str] = TRAIN_CLASSES) -> list[Example]:
    return [Example(inputs={"text": f"{label} ticket {i}"}, labels={"label": label},
                    source=f"rows:{i + 1}", index=i) for i, label in enumerate(labels)]


def billing_only(request: LMRequest, text: str, name: str) -> str | None:
    """A weak teacher: right on billing tickets, wrong (says billing) on every other."""
    return "billing" if name == "label" else None


def classes(demos: list[Any]) -> Counter[str]:
    return Counter(d.values["label"] for d in demos)


def test_labeled_fewshot_covers_every_class_seeded_and_reproducible() -> None:
    prog = classify_program()
    demos = {}
    for seed in (0, 0, 1):
        ctx = pass_context(World(), prog, "Classify", rows(), seed=seed)
        result = labeled_fewshot(prog, ctx, k=6)
        demos.setdefault(seed, []).append(result.program.predictors["Classify.c"].demos)
        got = classes(demos[seed][-1])
        assert set(got) == set(CLASSES)  # all four before a repeat
        assert max(got.values()) - min(got.values()) <= 1
        assert result.report["classes"]["trainset"] == dict(sorted(Counter(TRAIN_CLASSES)
                                                                   .items()))
        assert result.report["classes"]["demos"] == {"Classify.c": dict(sorted(got.items()))}
    assert demos[0][0] == demos[0][1]  # same seed, same demos
    assert demos[0][0] != demos[1][0]  # another seed draws other rows of the classes


def test_stratify_false_is_the_plain_seeded_sample() -> None:
    prog = classify_program()
    ctx = pass_context(World(), prog, "Classify", rows(), seed=3)
    result = labeled_fewshot(prog, ctx, k=4, stratify=False)
    expected = seeded_sample(rows(), len(TRAIN_CLASSES), rng_for(3, "labeled"))[:4]
    got = [d.values["text"] for d in result.program.predictors["Classify.c"].demos]
    assert got == [e.inputs["text"] for e in expected]
    assert "classes" not in result.report


def test_sample_false_keeps_the_first_k_rows() -> None:
    prog = classify_program()
    result = labeled_fewshot(prog, pass_context(World(), prog, "Classify", rows()), k=4,
                             sample=False)
    assert classes(result.program.predictors["Classify.c"].demos) == {"billing": 4}


def test_bootstrap_with_a_one_class_teacher_still_covers_every_class() -> None:
    prog = classify_program()
    world = World(billing_only)
    ctx = pass_context(world, prog, "Classify", rows())
    result = bootstrap_fewshot(prog, ctx, max_bootstrapped_demos=4, max_labeled_demos=8)
    demos = result.program.predictors["Classify.c"].demos
    boot = [d for d in demos if d.kind == "bootstrapped"]
    # the teacher only succeeds on billing: the first billing success is kept, the
    # other classes are tried until their examples run out, then billing again
    assert classes(boot)["billing"] == len(boot)
    assert set(classes(demos)) == set(CLASSES)  # the labeled top-up brings the rest
    assert result.report["classes"]["demos"]["Classify.c"] == dict(sorted(
        classes(demos).items()))
    # every non-billing example was tried before a second billing demo was taken
    tried = [a["example"] for a in result.report["attempts"]]
    second_billing = [i for i in tried if TRAIN_CLASSES[i] == "billing"][1]
    assert {i for i, c in enumerate(TRAIN_CLASSES) if c != "billing"} <= \
        set(tried[: tried.index(second_billing)])


def test_bootstrap_with_a_good_teacher_takes_one_demo_per_class_in_trainset_order() -> None:
    prog = classify_program()
    world = World(lambda request, text, name: text.split()[0] if name == "label" else None)
    result = bootstrap_fewshot(prog, pass_context(world, prog, "Classify", rows()),
                               max_bootstrapped_demos=4, max_labeled_demos=4)
    boot = result.program.predictors["Classify.c"].demos
    assert classes(boot) == {c: 1 for c in CLASSES}
    assert result.report["bootstrapped_examples"] == [0, 7, 14, 15]  # first of each class
    assert result.report["examples_tried"] == 4


def test_bootstrap_stratify_false_walks_in_order() -> None:
    prog = classify_program()
    world = World(lambda request, text, name: text.split()[0] if name == "label" else None)
    result = bootstrap_fewshot(prog, pass_context(world, prog, "Classify", rows()),
                               max_bootstrapped_demos=4, max_labeled_demos=4, stratify=False)
    assert result.report["bootstrapped_examples"] == [0, 1, 2, 3]
    assert "classes" not in result.report


def test_random_search_and_mipro_demo_candidates_cover_every_class() -> None:
    prog = classify_program()
    good = World(lambda request, text, name: text.split()[0] if name == "label" else None)
    ctx = pass_context(good, prog, "Classify", rows(), rows()[:8])
    result = bootstrap_random_search(prog, ctx, num_candidate_programs=3,
                                     max_bootstrapped_demos=4, max_labeled_demos=4)
    for cand in result.candidates:
        demos = cand.program.predictors["Classify.c"].demos
        if len(demos) == 4:  # every candidate but zero-shot
            assert set(classes(demos)) == set(CLASSES), cand.label
    ctx = pass_context(World(), prog, "Classify", rows(), rows()[:8])
    mipro = mipro_v2(prog, ctx, auto=None, num_candidates=5, num_trials=2,
                     max_bootstrapped_demos=0, max_labeled_demos=4, storage="memory")
    sets = mipro.report["demo_sets"]["Classify.c"]
    assert sets == [0, 4, 4, 4, 4]  # current (none), then labeled-only candidates
    for counts in mipro.report["demo_set_classes"]["Classify.c"][1:]:
        assert counts == {c: 1 for c in CLASSES}
    for row in result.report["candidates"]:
        if row["seed"] != -3:
            assert set(row["classes"]["Classify.c"]) == set(CLASSES), row["label"]


def test_class_field_enum_small_label_set_or_none() -> None:
    prog = classify_program()
    assert class_field(prog, "Classify", "label", rows()) == "label"  # 4 values over 23 rows
    free_text = [Example({"text": str(i)}, {"label": f"answer {i}"}, index=i)
                 for i in range(20)]
    assert class_field(prog, "Classify", "label", free_text) is None
    assert class_field(prog, "Classify", None, rows()) is None
    prog.modules["Classify"].outputs = [FieldIR(name="label",
                                                type=TypeRef(kind="enum", name="Cat"))]
    assert class_field(prog, "Classify", "label", free_text[:1]) == "label"  # declared enum


def test_stratified_order_keeps_the_order_within_a_class() -> None:
    ordered = stratified(rows(), "label")
    assert [e.labels["label"] for e in ordered[:4]] == list(CLASSES)[:1] + \
        ["technical", "shipping", "account"]
    billing = [e.index for e in ordered if e.labels["label"] == "billing"]
    assert billing == sorted(billing)
    assert sorted(e.index for e in ordered) == list(range(len(TRAIN_CLASSES)))
