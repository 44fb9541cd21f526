"""knn_fewshot and the local vectorizer: nearest examples become the demos of a run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "passes"))

from world import World, classify_program, examples, pass_context, run_context  # noqa: E402

from lmpc.compiler.passes._demos import PassError  # noqa: E402
from lmpc.compiler.passes._estimate import Workload, placeholder_rows  # noqa: E402
from lmpc.compiler.passes.knn_fewshot import estimate, knn_fewshot  # noqa: E402
from lmpc.runtime.vectorize import LocalVectorizer, cosine, select_demos  # noqa: E402

TEXTS = [
    "good cat sleeps on the sofa all day",
    "bad stock market crash wiped out savings",
    "good football match with three goals",
    "bad kitten scratched the furniture",
    "good bond yields rose after the market opened",
    "bad referee ruined the football game",
    "good dog fetched the ball in the park",
]


def test_local_vectorizer_ranks_by_shared_words_and_stems() -> None:
    v = LocalVectorizer(TEXTS)
    q = v.vector("the football game tonight")
    sims = [cosine(q, v.vector(t)) for t in TEXTS]
    assert sorted(range(len(TEXTS)), key=lambda i: -sims[i])[:2] == [5, 2]
    assert abs(cosine(q, q) - 1.0) < 1e-9
    assert cosine(q, v.vector("")) == 0.0


def test_labeled_neighbours_without_a_teacher() -> None:
    world = World()
    prog = classify_program()
    ctx = pass_context(world, prog, "Classify", examples(TEXTS))
    out = knn_fewshot(prog, ctx, k=2, max_bootstrapped_demos=0).program
    pred = out.predictors["Classify.c"]
    assert pred.demos == []
    knn = pred.options["knn"]
    assert knn["k"] == 2 and knn["vectorizer"] == "local" and knn["input_fields"] == ["text"]
    assert len(knn["examples"]) == len(TEXTS)
    assert world.requests == []  # no teacher, no LM call
    demos = select_demos(knn, {"text": "stock market news: the market fell"})
    assert [d.values["text"] for d in demos] == [TEXTS[1], TEXTS[4]]
    assert [d.kind for d in demos] == ["labeled", "labeled"]
    assert demos[0].values["label"] == "negative"
    assert prog.predictors["Classify.c"].options == {}  # input untouched


def test_bootstrapped_neighbours_where_the_teacher_succeeded() -> None:
    texts = [*TEXTS, "good tricky cat video"]
    world = World()
    prog = classify_program()
    ctx = pass_context(world, prog, "Classify", examples(texts))
    result = knn_fewshot(prog, ctx, k=3, max_bootstrapped_demos=4)
    assert len(world.requests) == len(texts)  # the teacher ran once per example
    assert result.report["bootstrapped_examples"] == list(range(len(TEXTS)))  # not the tricky
    knn = result.program.predictors["Classify.c"].options["knn"]
    demos = select_demos(knn, {"text": "a cat and a kitten"})
    by_text = {d.values["text"]: d.kind for d in demos}
    assert by_text == {TEXTS[0]: "bootstrapped", TEXTS[3]: "bootstrapped",
                       "good tricky cat video": "labeled"}
    assert [d.kind for d in demos] == ["bootstrapped", "bootstrapped", "labeled"]


def test_max_bootstrapped_demos_caps_bootstrapped_neighbours() -> None:
    prog = classify_program()
    ctx = pass_context(World(), prog, "Classify", examples(TEXTS))
    knn = knn_fewshot(prog, ctx, k=3, max_bootstrapped_demos=1).program \
        .predictors["Classify.c"].options["knn"]
    kinds = [d.kind for d in select_demos(knn, {"text": "football"})]
    assert kinds == ["bootstrapped", "labeled", "labeled"]


def test_empty_trainset_is_a_clear_error() -> None:
    prog = classify_program()
    with pytest.raises(PassError, match="trainset is empty"):
        knn_fewshot(prog, pass_context(World(), prog, "Classify", []))


def test_estimate() -> None:
    work = Workload(classify_program(), "Classify", placeholder_rows(12), 3)
    assert estimate(work).calls == estimate(work).max_calls == 12
    assert estimate(work, max_rounds=2).max_calls == 24
    assert estimate(work, max_bootstrapped_demos=0).max_calls == 0


def test_a_run_shows_the_demos_of_the_nearest_examples() -> None:
    from lmpc.runtime.execute import run_module

    world = World()
    prog = classify_program()
    out = knn_fewshot(prog, pass_context(world, prog, "Classify", examples(TEXTS)), k=2,
                      max_bootstrapped_demos=0).program
    sent = len(world.requests)
    prediction = run_module(out, "Classify", {"text": "my kitten and my cat"},
                            run_context(world))
    assert prediction.outputs["label"] == "negative"
    request = world.requests[sent]
    if not world.demo_inputs(request):
        pytest.xfail("the executor does not call vectorize.select_demos yet")
    assert world.demo_inputs(request) == [TEXTS[3], TEXTS[0]]
