"""``labeled_fewshot(k=16, sample=true, stratify=true)``: training rows become demos.

Every predictor of the optimized module gets up to ``k`` training examples as labeled
demos: a seeded sample of the trainset, or its first ``k`` rows when ``sample`` is false.
A demo holds the row's fields that the predictor's signature has (inputs and outputs).
When the metric's field is an enum or a small label set, the sample is stratified: it
covers every class of the trainset before repeating one (``stratify = false`` draws a
plain seeded sample, which on a small k may leave classes out). No LM calls.

Before / after, for ``QA(q) -> a`` with ``predict Answer(question = q)``:

>>> from lmpc.ir import *
>>> from lmpc.ir import Example
>>> from lmpc.compiler.passes.base import PassContext
>>> s = TypeRef(kind="str")
>>> sig = SignatureIR(name="Answer", inputs=[FieldIR(name="question", type=s)],
...                   outputs=[FieldIR(name="a", type=s)])
>>> prog = ProgramIR(
...     signatures={"Answer": sig},
...     predictors={"QA.p": PredictorIR(id="QA.p", signature=sig)},
...     modules={"QA": ModuleIR(name="QA", inputs=[FieldIR(name="q", type=s)],
...         steps=[StepIR(name="p", kind="predictor", predictor="QA.p",
...                       args={"question": ExprIR(kind="ref", path=["q"])})],
...         returns={"a": ExprIR(kind="ref", path=["p", "a"])})})
>>> train = [Example({"q": f"{i}+1?"}, {"a": str(i + 1)}, index=i) for i in range(5)]
>>> ctx = PassContext(module="QA", trainset=train, valset=[], metric=None, run_ctx=None)
>>> out = labeled_fewshot(prog, ctx, k=2, sample=False).program
>>> prog.predictors["QA.p"].demos, [d.values for d in out.predictors["QA.p"].demos]
([], [{'question': '0+1?', 'a': '1'}, {'question': '1+1?', 'a': '2'}])
"""

from __future__ import annotations

from typing import Any

from lmpc.compiler.passes._demos import (
    balanced,
    class_counts,
    class_field,
    demo_classes,
    demo_counts,
    labeled_demos,
    rng_for,
    seeded_sample,
)
from lmpc.compiler.passes._estimate import Estimate, Workload
from lmpc.compiler.passes.base import PassContext, PassResult
from lmpc.ir import Example, ProgramIR


def labeled_fewshot(
    program: ProgramIR, ctx: PassContext, k: int = 16, sample: bool = True,
    stratify: bool = True,
) -> PassResult:
    """Give each predictor of ``ctx.module`` ``k`` labeled demos from the trainset."""
    out = program.model_copy(deep=True)
    field = class_field(program, ctx.module, ctx.metric_field, ctx.trainset) \
        if stratify else None
    apply_labeled(out, ctx.module, ctx.trainset, k, sample, ctx.seed, field)
    report: dict[str, Any] = {
        "params": {"k": k, "sample": sample, "stratify": stratify},
        "seed": ctx.seed,
        "demos": demo_counts(out, ctx.module),
    }
    report.update(class_report(out, ctx, field))
    ctx.emit("demos", 1, 1, label=f"{k} labeled demos per predictor", finished=True)
    return PassResult(program=out, report=report)


def class_report(program: ProgramIR, ctx: PassContext, field: str | None) -> dict[str, Any]:
    """The class counts of the trainset and of each predictor's demos (for reports)."""
    if not field:
        return {}
    return {"classes": {"field": field, "trainset": class_counts(ctx.trainset, field),
                        "demos": demo_classes(program, ctx.module, field)}}


def apply_labeled(
    program: ProgramIR, module: str, trainset: list[Example], k: int, sample: bool, seed: int,
    field: str | None = None,
) -> None:
    """Replace (in place) the demos of ``module``'s predictors with ``k`` labeled rows.

    Every predictor draws from the same seeded order, as one sample per program, so
    that two predictors of one module see the same examples. With a class ``field`` a
    sample is stratified over its classes (the first ``k`` rows stay the first ``k``).
    """
    rows = seeded_sample(trainset, len(trainset), rng_for(seed, "labeled")) if sample \
        else list(trainset)
    if sample and field:
        rows = balanced(rows, field, k)
    for pred in program.predictors_of(module):
        pred.demos = labeled_demos(program, module, pred, rows, k)


def estimate(work: Workload, **params: Any) -> Estimate:
    """Labeled demos need no LM calls."""
    return Estimate.fixed(0)
