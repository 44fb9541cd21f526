"""``copro``: coordinate ascent on instructions (OPTIMIZERS.md "Instructions").

Parameters (defaults): ``breadth=10, depth=3, init_temperature=1.4, track_stats=true``.

1. Each predictor starts with its current instruction plus ``breadth − 1`` alternatives
   written by the prompt model (at ``init_temperature``, each call with its own rollout
   index so the cache does not collapse them).
2. Each of ``depth`` rounds goes predictor by predictor: every new candidate instruction
   is scored on the trainset (the other predictors fixed at their best), the predictor is
   fixed to its best instruction so far, and — except after the last round — the prompt
   model writes ``breadth`` new candidates from the best attempts so far, shown with
   their scores in ascending order.
3. The best-scoring program evaluated is returned; every candidate instruction and its
   score is in the report (with per-round statistics when ``track_stats``).

Before / after, for ``Classify(text) -> label`` with one ``predict`` step::

    before: Classify.c  instructions="Classify the text."
    after:  Classify.c  instructions="Read the review and label its sentiment as ..."
            report.candidates["Classify.c"] = [{round 0, "Classify the text.", 0.55}, ...]
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from typing import Any

from lmpc.compiler.passes._demos import PassError, attributed, check_budget
from lmpc.compiler.passes._estimate import Estimate, Workload, workload_of
from lmpc.compiler.passes._guard import MAX_REASKS, ProposalGuard
from lmpc.compiler.passes._propose import (
    alternative_instruction,
    instruction_from_attempts,
    stop_if_exceeded,
)
from lmpc.compiler.passes.base import BudgetExceeded, Candidate, PassContext, PassResult
from lmpc.ir import PredictorIR, ProgramIR

log = logging.getLogger("lmpc")
PASS = "copro"


@dataclass
class _State:
    """What the ascent knows: scored instructions per predictor and the best program."""

    best: ProgramIR
    best_score: float = float("-inf")
    scored: dict[str, dict[str, float]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    guard: ProposalGuard = field(default_factory=ProposalGuard)
    planned: int = 0  # candidates to score, for progress (fewer when repeats are known)


def copro(
    program: ProgramIR,
    ctx: PassContext,
    breadth: int = 10,
    depth: int = 3,
    init_temperature: float = 1.4,
    track_stats: bool = True,
) -> PassResult:
    """Tune the instructions of every predictor of ``ctx.module`` by coordinate ascent."""
    if breadth < 2 or depth < 1:
        raise PassError(f"copro needs breadth >= 2 and depth >= 1 (got {breadth}, {depth})")
    if not ctx.trainset:
        raise PassError("copro scores candidate instructions on the trainset, which is empty")
    state = _State(best=program.model_copy(deep=True))
    preds = [p.id for p in state.best.predictors_of(ctx.module)]
    state.planned = breadth * len(preds) * depth
    report: dict[str, Any] = {
        "params": {"breadth": breadth, "depth": depth, "init_temperature": init_temperature,
                   "track_stats": track_stats},
        "projected_calls": estimate(workload_of(program, ctx), breadth=breadth,
                                    depth=depth).calls,
    }
    prompt_ctx = attributed(ctx.prompt_ctx, **{"pass": PASS})
    try:
        pending = {pid: _first_candidates(state, ctx, pid, breadth, init_temperature,
                                          prompt_ctx) for pid in preds}
        for round_ in range(depth):
            for pid in preds:
                _score_round(state, ctx, pid, pending[pid], round_, track_stats)
                if round_ < depth - 1:
                    pending[pid] = _next_candidates(state, ctx, pid, breadth, round_,
                                                    init_temperature, prompt_ctx)
    except BudgetExceeded:
        report["stopped"] = "budget"
        log.info("copro: budget reached after %d scored candidates", len(state.records))
    return _result(program, state, report, track_stats)


def _first_candidates(
    state: _State, ctx: PassContext, pid: str, breadth: int, temperature: float,
    prompt_ctx: Any,
) -> list[str]:
    """The current instruction plus ``breadth − 1`` alternatives (step 1)."""
    program = state.best
    pred = program.predictors[pid]
    out = [pred.signature.instructions]
    for k in range(1, breadth):
        check_budget(ctx.budget)
        ctx.emit("propose", k, breadth - 1, label=pid)
        call_ctx = attributed(prompt_ctx, step="propose", predictor=pid, round=0, candidate=k)
        text = alternative_instruction(program, pred, call_ctx, temperature, k, state.guard,
                                       out, ctx.budget)
        if text is not None:
            out.append(text)
    return out


def _next_candidates(
    state: _State, ctx: PassContext, pid: str, breadth: int, round_: int,
    temperature: float, prompt_ctx: Any,
) -> list[str]:
    """``breadth`` new candidates written from the best ``breadth`` attempts so far."""
    pred = state.best.predictors[pid]
    attempts = sorted(state.scored[pid].items(), key=lambda kv: -kv[1])[:breadth]
    out: list[str] = []
    for k in range(breadth):
        check_budget(ctx.budget)
        ctx.emit("propose", k + 1, breadth, label=f"{pid} round {round_ + 1}")
        call_ctx = attributed(prompt_ctx, step="propose", predictor=pid, round=round_ + 1,
                              candidate=k)
        earlier = [*state.scored[pid], *out]  # a repeat would only re-score a known one
        text = instruction_from_attempts(state.best, pred, attempts, call_ctx, temperature,
                                         k, state.guard, earlier, ctx.budget)
        if text is not None:
            out.append(text)
    return out


def _score_round(
    state: _State, ctx: PassContext, pid: str, candidates: list[str], round_: int,
    track_stats: bool,
) -> None:
    """Score each new candidate of ``pid``, then fix ``pid`` to its best so far (step 2)."""
    seen = state.scored.setdefault(pid, {})
    round_scores: list[float] = []
    for k, instruction in enumerate(candidates):
        if instruction in seen:  # the prompt model repeated itself: the score is known
            continue
        check_budget(ctx.budget)
        cand = _with_instruction(state.best, pid, instruction)
        best = state.best_score if state.records else None
        score = _evaluate(cand, ctx, pid, round_, k, ctx.eval_progress(
            f"candidate {len(state.records) + 1}/{state.planned} scoring", pid, best))
        seen[instruction] = score
        round_scores.append(score)
        state.records.append({"round": round_, "predictor": pid, "candidate": k,
                              "instruction": instruction, "score": score})
        label = f"round {round_} {pid} candidate {k}"
        state.candidates.append(Candidate(cand, score, label))
        if score > state.best_score:
            state.best_score = score
            state.best = cand
        ctx.emit("candidate", len(state.records), state.planned, label=label, score=score,
                 best=state.best_score, finished=True)
    best_instruction = max(seen.items(), key=lambda kv: kv[1])[0] if seen else None
    if best_instruction is not None:
        state.best.predictors[pid].signature.instructions = best_instruction
    if track_stats and round_scores:
        state.stats.append(_stats(round_, pid, round_scores))


def _with_instruction(program: ProgramIR, pid: str, instruction: str) -> ProgramIR:
    out = program.model_copy(deep=True)
    out.predictors[pid].signature.instructions = instruction
    return out


def _evaluate(cand: ProgramIR, ctx: PassContext, pid: str, round_: int, k: int,
              progress: Any = None) -> float:
    """The candidate's mean metric on the trainset (failures score 0)."""
    from lmpc.eval.evaluate import evaluate  # evaluation pulls in the runtime lazily

    run_ctx = attributed(ctx.run_ctx, **{"pass": PASS, "step": "eval", "predictor": pid,
                                         "round": round_, "candidate": k})
    result = evaluate(cand, ctx.module, ctx.trainset, ctx.metric, run_ctx, ctx.threads,
                      failure_score=0.0, progress=progress)
    stop_if_exceeded(ctx.budget)
    return float(result.score)


def _stats(round_: int, pid: str, scores: list[float]) -> dict[str, Any]:
    return {"round": round_, "predictor": pid, "n": len(scores), "max": max(scores),
            "min": min(scores), "mean": statistics.fmean(scores),
            "std": statistics.pstdev(scores)}


def _result(program: ProgramIR, state: _State, report: dict[str, Any],
            track_stats: bool) -> PassResult:
    report["candidates"] = state.records
    report["guard"] = state.guard.report()
    if track_stats:
        report["stats"] = state.stats
    if not state.candidates:  # stopped before anything was scored
        report["best_score"] = None
        return PassResult(program=program.model_copy(deep=True), report=report)
    report["best_score"] = state.best_score
    report["best_instructions"] = {
        p.id: p.signature.instructions for p in state.best.predictors.values()
        if p.id in state.scored
    }
    ranked = sorted(state.candidates, key=lambda c: -c.score)  # stable: ties keep order
    return PassResult(program=state.best, candidates=ranked, report=report)


# ---------------------------------------------------------------- projections


def predictor_calls(pred: PredictorIR) -> int:
    """LM calls one run of a predictor makes (n samples, m chains, react iterations)."""
    opts = pred.options
    return max(int(opts.get("n") or opts.get("m") or opts.get("max_iters") or 1), 1)


def module_predictors(program: ProgramIR) -> list[PredictorIR]:
    """The predictors of the optimized module (the first ``optimize`` block's), in order."""
    module = program.optimizes[0].program if program.optimizes else None
    return program.predictors_of(module) if module else list(program.predictors.values())


def estimate(work: Workload, **params: Any) -> Estimate:
    """New LM calls, assuming every proposal passes the guard (none is re-asked).

    Proposals: ``breadth − 1`` per predictor, then ``breadth`` per predictor after every
    round but the last (up to ``1 + MAX_REASKS`` times that when the guard drops them:
    the maximum). Evaluations: ``breadth`` candidates per predictor per round on the
    trainset; with the cache on each re-uses the calls of the steps before the predictor
    being tuned (those are fixed and were already run on the same examples).
    """
    breadth = int(params.get("breadth", 10))
    depth = int(params.get("depth", 3))
    preds = work.program.predictors_of(work.module)
    per = [predictor_calls(p) for p in preds]
    proposals = len(preds) * ((breadth - 1) + (depth - 1) * breadth)
    evals = 0
    for _round in range(depth):
        for i in range(len(preds)):
            steps = sum(per[i:]) if work.cache else sum(per)
            evals += breadth * work.n_train * (steps + work.scoring_calls)
    return Estimate(calls=proposals + evals, max_calls=proposals * (1 + MAX_REASKS) + evals,
                    candidates=depth * breadth * len(preds))
