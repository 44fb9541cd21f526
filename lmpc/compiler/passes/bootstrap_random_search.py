"""``bootstrap_random_search`` (alias ``random_search``): many demo sets, best on the valset.

Parameters: those of ``bootstrap_fewshot`` (``stratify`` included: every candidate's
labeled and bootstrapped demos cover the classes of the metric's field) plus
``num_candidate_programs=16`` and ``stop_at_score=none``. Candidates are built by
seed (OPTIMIZERS.md):

- seed −3: zero-shot (every demo cleared);
- seed −2: ``labeled_fewshot(k=max_labeled_demos)`` only;
- seed −1: ``bootstrap_fewshot`` on the trainset in its order;
- seed s ≥ 0 (s < ``num_candidate_programs``): the trainset shuffled with seed s, and
  ``max_bootstrapped_demos`` drawn between 1 and the maximum with seed s, then bootstrap.

Each candidate is scored on the full valset (the trainset when there is none) with
``evaluate``; the best is returned (ties go to the earlier seed), and every scored
candidate is kept in ``PassResult.candidates``, best first, for a later ``ensemble``.
Reaching ``stop_at_score`` stops the search; so does the build's budget, keeping the best
candidate so far (``report["stopped"] == "budget"``).

Before / after::

    before: Classify.c demos=[]
    after:  Classify.c demos=<the best of 19 candidates, e.g. seed 3: 2 bootstrapped +
            14 labeled>;  candidates=[seed 3: 0.91, seed -1: 0.88, ..., seed -3: 0.40]
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any

from lmpc.compiler.passes._demos import (
    attributed,
    check_budget,
    class_field,
    clear_demos,
    demo_classes,
    demo_counts,
    reraise_if_over_budget,
    rng_for,
)
from lmpc.compiler.passes._estimate import Estimate, Workload, walked
from lmpc.compiler.passes.base import BudgetExceeded, Candidate, PassContext, PassResult
from lmpc.compiler.passes.bootstrap_fewshot import BootstrapParams, bootstrap
from lmpc.compiler.passes.labeled_fewshot import apply_labeled
from lmpc.ir import Demo, ProgramIR

log = logging.getLogger("lmpc")
PASS = "bootstrap_random_search"
#: Its baseline (seed -3) is the program with its demos cleared.
BASELINE_CLEARS_DEMOS = True
_LABELS = {-3: "zero-shot", -2: "labeled only", -1: "bootstrap, unshuffled"}


def bootstrap_random_search(
    program: ProgramIR,
    ctx: PassContext,
    max_bootstrapped_demos: int = 4,
    max_labeled_demos: int = 16,
    max_rounds: int = 1,
    metric_threshold: float | None = None,
    max_errors: int = 10,
    teacher: str | None = None,
    stratify: bool = True,
    num_candidate_programs: int = 16,
    stop_at_score: float | None = None,
) -> PassResult:
    """Build candidates by seed, score each on the valset, return the best."""
    params = BootstrapParams(max_bootstrapped_demos, max_labeled_demos, max_rounds,
                             metric_threshold, max_errors, teacher, stratify)
    valset = ctx.valset or ctx.trainset
    scored: list[Candidate] = []  # in seed order, so that sorting keeps ties in it
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "params": {**asdict(params), "num_candidate_programs": num_candidate_programs,
                   "stop_at_score": stop_at_score},
        "valset": "val" if ctx.valset else "train",
        "candidates": rows,
    }
    if ctx.study is not None:  # a build shared with workers: candidates from its study
        return _shared(program, ctx, params, valset, report, num_candidate_programs,
                       stop_at_score)
    try:
        total = num_candidate_programs + 3
        best: float | None = None
        for i, seed in enumerate(range(-3, num_candidate_programs), start=1):
            check_budget(ctx.budget)
            ctx.emit("candidate", i, total, label=f"seed={seed}: demos", best=best)
            cand, row = _build(program, ctx, params, seed)
            rows.append(row)
            row["score"] = _score(cand, ctx, valset, seed, row,
                                  ctx.eval_progress(f"candidate {i}/{total} scoring",
                                                    row["label"], best))
            scored.append(Candidate(cand, row["score"], row["label"]))
            best = max(c.score for c in scored)
            ctx.emit("candidate", i, total, label=row["label"], score=row["score"],
                     best=best, finished=True)
            if stop_at_score is not None and row["score"] >= stop_at_score:
                report["stopped"] = "stop_at_score"
                break
    except BudgetExceeded:
        if not scored:
            raise
        report["stopped"] = "budget"
        log.info("random search: budget reached after %d candidates", len(scored))
    candidates = sorted(scored, key=lambda c: -c.score)
    report["best"] = candidates[0].label
    report["best_score"] = candidates[0].score
    return PassResult(program=candidates[0].program, candidates=candidates, report=report)


def _shared(program: ProgramIR, ctx: PassContext, params: BootstrapParams,
            valset: list[Any], report: dict[str, Any], n_programs: int,
            stop_at_score: float | None) -> PassResult:
    """The search as units of a study (``_units``), one per seed, that any number of
    processes take: the candidate's demos and report row are stored on its unit, and
    the result, trajectory and LM work are read back in seed order. With
    ``stop_at_score`` the result is the candidates up to the first that reached it,
    as in one process; a unit that sees an earlier one reach it does nothing."""
    import json

    from lmpc.compiler.passes import _study
    from lmpc.compiler.passes._units import Units, add_work, work_between, work_so_far

    seeds = list(range(-3, n_programs))
    key = {"layout": 2, "pass": PASS, "params": report["params"], "module": ctx.module,
           "program": program.model_dump(mode="json", exclude={"base_dir", "sources"}),
           "data": [[e.values for e in ctx.trainset], [e.values for e in valset]],
           "lms": [getattr(getattr(c, "task_lm", None), "model", None)
                   for c in (ctx.run_ctx, ctx.teacher_ctx)]}
    name, storage = _study.locate(PASS, key, ctx.seed, ctx.study, None, ctx.run_ctx)
    study = _study.open_study(name, storage, _study.search_key(key))
    units = Units(study, len(seeds))

    def reached(done: dict[int, Any], below: int) -> bool:
        return stop_at_score is not None and any(
            t.value >= stop_at_score for s, t in done.items()
            if s < below and not t.user_attrs["unit"].get("skipped"))

    def work(unit: Any) -> float:
        seed = seeds[unit.slot]
        if reached(units.done(), unit.slot):
            unit.trial.set_user_attr("unit", {"skipped": True})
            return 0.0
        check_budget(ctx.budget)
        before = work_so_far(ctx)
        cand, row = _build(program, ctx, params, seed)
        row["score"] = _score(cand, ctx, valset, seed, row,
                              ctx.eval_progress(f"candidate {unit.slot + 1}/{len(seeds)} "
                                                "scoring", row["label"]))
        record = {"row": json.loads(json.dumps(row, default=str)),
                  "demos": {p.id: [d.model_dump(mode="json") for d in p.demos]
                            for p in cand.predictors_of(ctx.module)},
                  "usage": work_between(before, work_so_far(ctx))}
        unit.trial.set_user_attr("unit", record)
        ctx.emit("candidate", unit.slot + 1, len(seeds), label=row["label"],
                 score=row["score"], finished=True)
        return float(row["score"])

    try:
        units.drive(work)
    except BudgetExceeded:
        report["stopped"] = "budget"
    done = units.done()
    scored: list[Candidate] = []
    total: dict[str, Any] = {}
    trajectory: list[dict[str, Any]] = []
    complete = True
    for slot in sorted(done):
        record = done[slot].user_attrs["unit"]
        if record.get("skipped") or reached(done, slot):
            report["stopped"] = "stop_at_score"
            break
        cand = program.model_copy(deep=True)
        for pid, demos in record["demos"].items():
            cand.predictors[pid].demos = [Demo.model_validate(d) for d in demos]
        row = record["row"]
        report["candidates"].append(row)
        scored.append(Candidate(cand, float(row["score"]), row["label"]))
        complete = complete and record.get("usage") is not None
        add_work(total, record.get("usage") or {})
        trajectory.append({"label": row["label"], "score": float(row["score"]),
                           "best": max(c.score for c in scored),
                           "lm_requests": int(total.get("lm_requests", 0)),
                           "tokens": int(total.get("prompt_tokens", 0)
                                         + total.get("completion_tokens", 0)),
                           "examples": len(valset) * len(scored)})
    if ctx.study.worker:
        report["units_run"] = units.ran  # a worker's report only
    if not scored:
        raise BudgetExceeded("budget")
    candidates = sorted(scored, key=lambda c: -c.score)
    report["best"] = candidates[0].label
    report["best_score"] = candidates[0].score
    # a budget stop cut a unit short: only this process's meter knows its work
    usage = total if complete and report.get("stopped") != "budget" else None
    return PassResult(program=candidates[0].program, candidates=candidates, report=report,
                      usage=usage, trajectory=trajectory)


def _build(
    program: ProgramIR, ctx: PassContext, params: BootstrapParams, seed: int
) -> tuple[ProgramIR, dict[str, Any]]:
    """The candidate program of one seed and its report row."""
    row: dict[str, Any] = {"seed": seed}
    attribution = {"pass": PASS, "candidate": seed}
    if seed == -3:
        cand = clear_demos(program, ctx.module)
    elif seed == -2:
        cand = labeled_candidate(program, ctx, params)
    elif seed == -1:
        cand, row["bootstrap"] = bootstrap(program, ctx, ctx.trainset, params, attribution)
    else:
        trainset = list(ctx.trainset)
        rng = rng_for(ctx.seed, f"candidate:{seed}")
        rng.shuffle(trainset)
        size = rng.randint(1, max(params.max_bootstrapped_demos, 1))
        row["max_bootstrapped_demos"] = size
        cand, row["bootstrap"] = bootstrap(
            program, ctx, trainset, replace(params, max_bootstrapped_demos=size), attribution
        )
    row["label"] = f"seed={seed}" + (f" ({_LABELS[seed]})" if seed in _LABELS else "")
    row["demos"] = demo_counts(cand, ctx.module)
    by = class_field(program, ctx.module, ctx.metric_field, ctx.trainset) \
        if params.stratify else None
    if by:
        row["classes"] = demo_classes(cand, ctx.module, by)
    return cand, row


def labeled_candidate(program: ProgramIR, ctx: PassContext,
                      params: BootstrapParams) -> ProgramIR:
    """Seed −2: the program with ``max_labeled_demos`` labeled demos only."""
    cand = clear_demos(program, ctx.module)
    by = class_field(program, ctx.module, ctx.metric_field, ctx.trainset) \
        if params.stratify else None
    apply_labeled(cand, ctx.module, ctx.trainset, params.max_labeled_demos, True, ctx.seed, by)
    return cand


def _score(cand: ProgramIR, ctx: PassContext, valset: list[Any], seed: int,
           row: dict[str, Any], progress: Any = None) -> float:
    """The candidate's mean metric on the full valset (failures score 0 and are counted)."""
    from lmpc.eval.evaluate import evaluate  # evaluation pulls in the runtime lazily

    run_ctx = attributed(ctx.run_ctx, **{"pass": PASS, "candidate": seed, "step": "eval"})
    result = evaluate(cand, ctx.module, valset, ctx.metric, run_ctx, ctx.threads,
                      failure_score=0.0, progress=progress)
    reraise_if_over_budget(ctx.budget)  # a half-run candidate's score means nothing
    row["failures"] = result.failures
    row["n"] = result.n
    return float(result.score)


def estimate(work: Workload, **params: Any) -> Estimate:
    """Teacher walks plus a full evaluation of every candidate on the valset.

    The walks are those of the seed scheme (the same shuffles and demo counts, class by
    class when stratified), each taking its first examples when the teacher always
    succeeds. Every bootstrapping candidate runs the same teacher, so with the cache on
    an example already walked is free; without it each walk pays again. When the teacher
    never succeeds, every walk covers the whole trainset, every round.
    """
    n_programs = int(params.get("num_candidate_programs", 16))
    max_boot = int(params.get("max_bootstrapped_demos", 4))
    rounds = int(params.get("max_rounds", 1))
    by = class_field(work.program, work.module, work.metric_field, work.trainset) \
        if params.get("stratify", True) else None
    n = work.n_train
    walks = [(list(range(n)), max_boot)]
    for seed in range(n_programs):
        order = list(range(n))
        rng = rng_for(work.seed, f"candidate:{seed}")
        rng.shuffle(order)
        walks.append((order, rng.randint(1, max(max_boot, 1))))
    boot = walked(work, walks, by)
    worst = n * rounds * (1 if work.cache else len(walks))
    evals = (n_programs + 3) * (work.n_val or n)
    per = work.per_run()
    return Estimate(calls=(boot + evals) * per, max_calls=(worst + evals) * per,
                    candidates=n_programs + 3, val_rows=work.n_val or n,
                    candidates_on_val=True, baseline_rows=work.n_val or n)


#: The name OPTIMIZERS.md and DSPy users know it by.
random_search = bootstrap_random_search
