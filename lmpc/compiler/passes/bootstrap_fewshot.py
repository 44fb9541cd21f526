"""``bootstrap_fewshot``: a teacher's successful traces become demos (OPTIMIZERS.md).

Parameters (defaults): ``max_bootstrapped_demos=4, max_labeled_demos=16, max_rounds=1,
metric_threshold=none, max_errors=10, teacher=none, stratify=true``.

1. The student is a copy of the program with its demos cleared. The teacher is the given
   teacher — another module of the same shape, an LM name or an LM role — or a copy of
   the student; a teacher without demos first gets ``labeled_fewshot(k=max_labeled_demos)``.
2. The trainset is walked in order until ``max_bootstrapped_demos`` examples succeeded;
   each is tried up to ``max_rounds`` times, later rounds at temperature 1.0 with a fresh
   rollout index (so the cache does not return the same answer). The example being run
   is hidden from the teacher's own demos.
3. An attempt succeeds when ``metric(example, prediction, trace)`` is truthy — or, with
   ``metric_threshold``, when the metric's grade reaches it. Every step of a successful
   trace becomes a *bootstrapped* demo of its predictor (inputs and all outputs, the
   reasoning of chain of thought included).
4. Each predictor keeps its bootstrapped demos and is topped up to ``max_labeled_demos``
   with a seeded sample of the training examples that were not bootstrapped.

Stratified (``stratify = true``, when the metric's field is an enum or a small label
set): the walk goes class by class — the next example tried is of the class with the
fewest bootstrapped demos, so every class the trainset has gets one before any gets a
second (a class the teacher keeps failing on is tried until its examples run out) —
and the top-up and the teacher's labeled demos cover the classes the same way. A weak
teacher that is right mostly on one class otherwise fills every slot with that class.
The report gives the class counts.

Before / after, for ``Classify(text) -> label`` with one ``predict`` step::

    before: Classify.c  demos=[]
    after:  Classify.c  demos=[bootstrapped {text, label} x4, labeled {text, label} x12]
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from lmpc.compiler.passes._demos import (
    ClassQueue,
    PassError,
    attributed,
    balanced,
    check_budget,
    class_field,
    class_of,
    clear_demos,
    demo_counts,
    hidden_values,
    labeled_demos,
    reraise_if_over_budget,
    rng_for,
    seeded_sample,
    trace_demos,
)
from lmpc.compiler.passes._estimate import Estimate, Workload
from lmpc.compiler.passes._teacher import Teacher, resolve_teacher
from lmpc.compiler.passes.base import BudgetExceeded, PassContext, PassResult
from lmpc.ir import Demo, Example, ProgramIR

log = logging.getLogger("lmpc")


@dataclass(frozen=True)
class BootstrapParams:
    """The checked parameters of one bootstrap run."""

    max_bootstrapped_demos: int = 4
    max_labeled_demos: int = 16
    max_rounds: int = 1
    metric_threshold: float | None = None
    max_errors: int = 10
    teacher: str | None = None
    stratify: bool = True


@dataclass
class Walk:
    """What walking the trainset produced (positions index the trainset walked)."""

    demos: dict[str, list[Demo]] = field(default_factory=dict)
    per_example: dict[int, dict[str, list[Demo]]] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)  # positions that succeeded
    attempts: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0


def bootstrap_fewshot(
    program: ProgramIR,
    ctx: PassContext,
    max_bootstrapped_demos: int = 4,
    max_labeled_demos: int = 16,
    max_rounds: int = 1,
    metric_threshold: float | None = None,
    max_errors: int = 10,
    teacher: str | None = None,
    stratify: bool = True,
) -> PassResult:
    """Bootstrap demos for every predictor of ``ctx.module`` from a teacher's traces."""
    params = BootstrapParams(max_bootstrapped_demos, max_labeled_demos, max_rounds,
                             metric_threshold, max_errors, teacher, stratify)
    out, report = bootstrap(program, ctx, ctx.trainset, params,
                            {"pass": "bootstrap_fewshot"})
    ctx.emit("bootstrap", report["examples_tried"], len(ctx.trainset),
             label=f"{len(report['bootstrapped_examples'])} demos", finished=True)
    return PassResult(program=out, report=report)


def bootstrap(
    program: ProgramIR,
    ctx: PassContext,
    trainset: list[Example],
    params: BootstrapParams,
    attribution: dict[str, Any],
) -> tuple[ProgramIR, dict[str, Any]]:
    """The four steps on ``trainset`` (in the order given); returns the student and a report.

    Shared by random search, which calls it with shuffled trainsets.
    """
    from lmpc.compiler.passes.labeled_fewshot import class_report

    class_by = class_field(program, ctx.module, ctx.metric_field, trainset) \
        if params.stratify else None
    student = clear_demos(program, ctx.module)
    teacher = resolve_teacher(program, student, ctx, params.teacher, params.max_labeled_demos,
                              class_by)
    walk = walk_teacher(teacher, ctx, trainset, params, attribution, class_by)
    _assign(student, ctx, trainset, walk, params, class_by)
    report: dict[str, Any] = {
        "params": asdict(params),
        "teacher": teacher.describe(),
        "examples_tried": len({a["example"] for a in walk.attempts}),
        "bootstrapped_examples": sorted(trainset[i].index for i in walk.used),
        "errors": walk.errors,
        "attempts": walk.attempts,
        "demos": demo_counts(student, ctx.module),
        **class_report(student, ctx, class_by),
    }
    return student, report


def walk_teacher(
    teacher: Teacher,
    ctx: PassContext,
    trainset: list[Example],
    params: BootstrapParams,
    attribution: dict[str, Any],
    class_by: str | None = None,
) -> Walk:
    """Step 2 and 3: run the teacher on examples until enough succeed.

    In order — or, with a class field ``class_by``, class by class (see ``ClassQueue``).
    """
    walk = Walk()
    queue = ClassQueue(range(len(trainset)), lambda pos: class_of(trainset[pos], class_by))
    tried = 0
    while len(walk.used) < params.max_bootstrapped_demos:
        pos = queue.next()
        if pos is None:
            break
        example = trainset[pos]
        tried += 1
        for round_ in range(params.max_rounds):
            check_budget(ctx.budget)
            hide = hidden_values(teacher.program, teacher.module, example)
            run_ctx = _round_ctx(teacher.run_ctx, hide, example, round_, attribution)
            attempt: dict[str, Any] = {"example": example.index, "round": round_}
            walk.attempts.append(attempt)
            trace = _attempt(teacher, ctx, example, run_ctx, params, attempt, walk)
            if trace is not None:
                walk.used.add(pos)
                walk.per_example[pos] = trace_demos(trace, teacher.rename)
                for pid, demos in walk.per_example[pos].items():
                    walk.demos.setdefault(pid, []).extend(demos)
                queue.taken(pos)
                break
        ctx.emit("bootstrap", tried, len(trainset), label=f"{len(walk.used)} demos")
    return walk


def _round_ctx(base: Any, hide: dict[str, Any], example: Example, round_: int,
               attribution: dict[str, Any]) -> Any:
    """The teacher's run context for one attempt: hide the example; resample after round 0."""
    run_ctx = attributed(base, **attribution, example=example.index, round=round_)
    changes: dict[str, Any] = {"hide_example": hide}
    if round_ > 0:
        changes.update(temperature=1.0, rollout=(base.rollout or 0) + round_)
    return run_ctx.derive(**changes)


def _attempt(
    teacher: Teacher,
    ctx: PassContext,
    example: Example,
    run_ctx: Any,
    params: BootstrapParams,
    attempt: dict[str, Any],
    walk: Walk,
) -> list[Any] | None:
    """One teacher run and its verdict: the trace when it succeeded, else None."""
    from lmpc.runtime.execute import run_module  # the runtime imports the LM layer lazily

    try:
        prediction = run_module(teacher.program, teacher.module, example.inputs, run_ctx)
        score = _score(ctx, example, prediction, params.metric_threshold)
    except BudgetExceeded:
        raise
    except Exception as exc:  # any failure of one example is counted, never hidden
        reraise_if_over_budget(ctx.budget)
        walk.errors += 1
        attempt["error"] = f"{type(exc).__name__}: {exc}"
        log.info("bootstrap: example %s round %s failed: %s",
                 example.index, attempt["round"], attempt["error"])
        if walk.errors >= params.max_errors:
            raise PassError(
                f"bootstrapping stopped after {walk.errors} failed examples (max_errors = "
                f"{params.max_errors}); the last one, {example.source or example.index}, "
                f"failed with {attempt['error']}. Raise max_errors or fix the cause."
            ) from exc
        return None
    attempt["score"] = score
    ok = score >= params.metric_threshold if params.metric_threshold is not None \
        else bool(score)
    attempt["ok"] = ok
    return prediction.trace if ok else None


def _score(ctx: PassContext, example: Example, prediction: Any,
           threshold: float | None) -> float:
    """The metric on a trace; with a threshold, the metric's grade (strictness off)."""
    graded = getattr(ctx.metric, "graded", None)
    if threshold is not None and graded is not None:
        return float(graded(example, prediction))
    value = ctx.metric(example, prediction, prediction.trace)
    return float(value) if isinstance(value, int | float) else float(bool(value))


def _assign(
    student: ProgramIR,
    ctx: PassContext,
    trainset: list[Example],
    walk: Walk,
    params: BootstrapParams,
    class_by: str | None = None,
) -> None:
    """Step 4: bootstrapped demos first, then a seeded top-up of unused labeled rows
    (with a class field ``class_by``: of the classes the bootstrapped demos have least of)."""
    unused = [ex for pos, ex in enumerate(trainset) if pos not in walk.used]
    used = Counter(class_of(trainset[pos], class_by) for pos in walk.used)
    rng = rng_for(ctx.seed, "topup")
    for pred in student.predictors_of(ctx.module):
        # in trainset order, not the class-by-class order they were found in (see balanced)
        boot = [d for pos in sorted(walk.per_example)
                for d in walk.per_example[pos].get(pred.id, [])][: params.max_bootstrapped_demos]
        room = max(params.max_labeled_demos - len(boot), 0)
        pool = seeded_sample(unused, len(unused), rng)
        if class_by:
            pool = balanced(pool, class_by, room, used)
        pred.demos = boot + labeled_demos(student, ctx.module, pred, pool, room)


def estimate(work: Workload, **params: Any) -> Estimate:
    """The teacher runs until ``max_bootstrapped_demos`` examples succeeded: that many
    runs when it always succeeds; every example and round when it never does."""
    per = work.per_run()
    wanted = min(int(params.get("max_bootstrapped_demos", 4)), work.n_train)
    return Estimate(calls=wanted * per,
                    max_calls=work.n_train * int(params.get("max_rounds", 1)) * per)
