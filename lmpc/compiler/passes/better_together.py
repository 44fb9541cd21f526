"""``better_together``: alternate prompt (p) and weight (w) optimization (OPTIMIZERS.md).

Parameters (defaults): ``strategy="p -> w -> p", prompt_optimizer="bootstrap_random_search",
weight_optimizer="bootstrap_finetune", valset_ratio=0.1``.

The strategy is DSPy's string: steps ``p`` and ``w`` joined by ``->``. Each ``p`` runs
the prompt optimizer, each ``w`` the weight optimizer (each given as ``"name"`` or
``"name(k = v, ...)"``, checked like a pass of the optimize block), on the program the
previous step returned. After every step the program is scored on the scoring set, and
the best program wins (ties go to the earlier step; the program as given is step 0). The
scoring set is the optimize block's val split when the data has one — a 10% slice of a
small trainset is too few rows to pick by — and otherwise a seeded ``valset_ratio`` slice
held out of the trainset (the steps then train on the rest), as DSPy does.

Every step's score, its pass's report and its program's predictors and tuned LMs are in
the report (the artifact's record of the pass); the scored steps are its candidates.

Before / after, with ``strategy = "p -> w"`` and ``prompt_optimizer = "knn_fewshot(k = 4)"``::

    step 0  as given                     val 0.26
    step 1  p: knn_fewshot               val 0.80   (neighbours as demos)
    step 2  w: bootstrap_finetune        val 0.84   (zero-shot, tuned weights)  <- returned
"""

from __future__ import annotations

import importlib
import math
from dataclasses import replace
from typing import Any

from lmpc.compiler.check.optimizer_specs import parse_pass_spec, validate_params
from lmpc.compiler.passes._demos import PassError, rng_for, seeded_sample
from lmpc.compiler.passes._estimate import Estimate, Workload
from lmpc.compiler.passes.base import Candidate, PassContext, PassResult
from lmpc.ir import Example, ProgramIR

PASS = "better_together"


def parse_strategy(strategy: str) -> list[str]:
    """DSPy's strategy string as its steps.

    >>> parse_strategy("p -> w -> p")
    ['p', 'w', 'p']
    >>> parse_strategy("w")
    ['w']
    >>> parse_strategy("p -> x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lmpc.compiler.passes._demos.PassError: better_together strategy must be steps ...
    """
    steps = [s.strip() for s in strategy.split("->")]
    if not steps or any(s not in ("p", "w") for s in steps):
        raise PassError(f"better_together strategy must be steps 'p' or 'w' joined by '->', "
                        f"got {strategy!r}")
    return steps


def best_step(scores: list[float]) -> int:
    """The index of the best score; ties go to the earlier step.

    >>> best_step([0.2, 0.8, 0.8, 0.5])
    1
    """
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def better_together(
    program: ProgramIR,
    ctx: PassContext,
    strategy: str = "p -> w -> p",
    prompt_optimizer: str = "bootstrap_random_search",
    weight_optimizer: str = "bootstrap_finetune",
    valset_ratio: float = 0.1,
) -> PassResult:
    """Run the strategy's steps in order; return the best-scoring program."""
    steps = parse_strategy(strategy)
    passes = {"p": _resolve(prompt_optimizer), "w": _resolve(weight_optimizer)}
    train, scoring, where = _split(ctx, valset_ratio)
    current = program
    programs, scores, records = [program], [], []
    scores.append(_score(current, ctx, scoring, "step 0: as given"))
    records.append({"step": 0, "kind": "start", "score": scores[0], **_describe(current, ctx)})
    for index, kind in enumerate(steps, start=1):
        name, params = passes[kind]
        sub = _sub_context(ctx, current, train, f"{PASS}/{name}")
        result = getattr(importlib.import_module(f"lmpc.compiler.passes.{name}"), name)(
            current, sub, **params)
        current = result.program
        label = f"step {index}: {kind} ({name})"
        score = _score(current, ctx, scoring, label)
        programs.append(current)
        scores.append(score)
        records.append({"step": index, "kind": kind, "pass": name, "params": params,
                        "score": score, "report": result.report, **_describe(current, ctx)})
    best = best_step(scores)
    candidates = [Candidate(p, s, r["kind"] if r["step"] == 0 else f"step {r['step']}: "
                            f"{r['kind']} ({r['pass']})")
                  for p, s, r in zip(programs, scores, records, strict=True)]
    ctx.emit("steps", len(steps), len(steps), label=f"best: step {best}", best=scores[best],
             finished=True)
    report = {"params": {"strategy": strategy, "prompt_optimizer": prompt_optimizer,
                         "weight_optimizer": weight_optimizer, "valset_ratio": valset_ratio},
              "scored_on": where, "scored_rows": len(scoring), "trained_rows": len(train),
              "steps": records, "best_step": best}
    return PassResult(program=programs[best], candidates=candidates, report=report)


def _resolve(spec: str) -> tuple[str, dict[str, Any]]:
    try:
        name, raw = parse_pass_spec(spec)
    except ValueError as exc:
        raise PassError(f"better_together: {exc}") from None
    params, problems = validate_params(name, raw)
    if problems:
        raise PassError(f"better_together: {spec}: {problems[0].message}")
    if name in (PASS, "ensemble"):
        raise PassError(f"better_together: {name} cannot be one of its steps")
    return name, params


def _split(ctx: PassContext, ratio: float) -> tuple[list[Example], list[Example], str]:
    """(rows the steps train on, rows they are scored on, which rows those are)."""
    if ctx.valset:
        return list(ctx.trainset), list(ctx.valset), "val"
    shuffled = seeded_sample(ctx.trainset, len(ctx.trainset), rng_for(ctx.seed, PASS))
    held = max(1, math.ceil(ratio * len(shuffled)))
    if held >= len(shuffled):
        raise PassError(f"better_together needs more than {held} training examples to hold "
                        f"out {held} for scoring (valset_ratio = {ratio})")
    held_out = {ex.index for ex in shuffled[:held]}
    return ([ex for ex in ctx.trainset if ex.index not in held_out],
            [ex for ex in ctx.trainset if ex.index in held_out], "train slice")


def _with_lms(run_ctx: Any, program: ProgramIR) -> Any:
    """``run_ctx`` knowing the program's LMs (a weight step adds tuned ones)."""
    if run_ctx is None:
        return None
    lms = {**run_ctx.program_lms, **program.lms}
    return run_ctx.derive(program_lms=lms)


def _sub_context(ctx: PassContext, program: ProgramIR, train: list[Example], name: str
                 ) -> PassContext:
    return replace(ctx, trainset=train, candidates=[], pass_name=name,
                   run_ctx=_with_lms(ctx.run_ctx, program),
                   teacher_ctx=_with_lms(ctx.teacher_ctx, program),
                   prompt_ctx=_with_lms(ctx.prompt_ctx, program),
                   reflection_ctx=_with_lms(ctx.reflection_ctx, program))


def _score(program: ProgramIR, ctx: PassContext, rows: list[Example], label: str) -> float:
    from lmpc.eval.evaluate import evaluate

    run_ctx = _with_lms(ctx.run_ctx, program).derive(
        attribution={**(ctx.run_ctx.attribution or {}), "step": label})
    result = evaluate(program, ctx.module, rows, ctx.metric, run_ctx, threads=ctx.threads,
                      progress=ctx.eval_progress(f"score {label}"))
    ctx.emit("steps", label=label, score=result.score, finished=True)
    return result.score


def _describe(program: ProgramIR, ctx: PassContext) -> dict[str, Any]:
    """A step's program as the artifact keeps it: its predictors and the tuned LMs."""
    preds = program.predictors_of(ctx.module)
    used = {p.lm for p in preds if p.lm}
    return {"predictors": {p.id: p.model_dump(mode="json", exclude={"span"}) for p in preds},
            "lms": {n: lm.model_dump(mode="json", exclude={"span"})
                    for n, lm in program.lms.items() if n in used and lm.tuned is not None}}


def estimate(work: Workload, **params: Any) -> Estimate:
    """Each step's own projection, plus one scoring of every step (and of the program as
    given) on the scoring rows."""
    steps = parse_strategy(str(params.get("strategy", "p -> w -> p")))
    passes = {"p": _resolve(str(params.get("prompt_optimizer", "bootstrap_random_search"))),
              "w": _resolve(str(params.get("weight_optimizer", "bootstrap_finetune")))}
    n_score = work.n_val or max(1, math.ceil(float(params.get("valset_ratio", 0.1))
                                             * work.n_train))
    per = work.per_run()
    calls = max_calls = n_score * per * (len(steps) + 1)
    for kind in steps:
        name, sub = passes[kind]
        module = importlib.import_module(f"lmpc.compiler.passes.{name}")
        est = module.estimate(work, **sub)
        calls += est.calls
        max_calls += est.max_calls
    return Estimate(calls=calls, max_calls=max_calls, candidates=len(steps) + 1)
