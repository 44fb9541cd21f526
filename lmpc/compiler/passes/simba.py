"""``simba``: stochastic introspective mini-batch ascent over a whole module graph.

Parameters (defaults): ``bsize=32, num_candidates=6, max_steps=8, max_demos=4,
temperature_for_sampling=0.2, temperature_for_candidates=0.2``
(OPTIMIZERS.md "Reflective / stochastic"). As DSPy's SIMBA does it:

1. Each step takes the next ``bsize`` training rows (a seeded shuffle, reshuffled each
   epoch) and runs them ``num_candidates`` times, at temperature 1 with rollout
   indices 0..n−1; each run uses a program drawn by softmax
   (``temperature_for_sampling``) over the pool's best ``num_candidates`` (the
   unchanged program always among them), weighted by their mean minibatch scores.
2. *Buckets*: the runs of each example, sorted by (max − min score, max score, max −
   mean): the examples whose outcome varies most come first.
3. For each bucket, a source program is drawn by softmax
   (``temperature_for_candidates``), some of its demos are dropped (a Poisson draw
   around demos / ``max_demos``, at least one once a predictor is full), and one of
   two strategies is applied: *append a demo* — each step of the bucket's best run
   becomes a bootstrapped demo of its predictor (when that run is above the batch's
   10th percentile) — or *append a rule* — the prompt model compares the best and
   the worst run, with the metric's feedback, and writes a rule of advice for each
   predictor, appended to its instruction (when the best run is above the 10th
   percentile and the worst below the 90th). With ``max_demos = 0`` only rules.
   Up to ``num_candidates + 1`` new programs per step.
4. The new programs are scored on the same minibatch and join the pool; the best of
   each step is a *winner*.
5. Evenly spaced winners (the unchanged program first) are scored on the full
   trainset; the best is returned. Beyond DSPy: when the build has a val split, the
   pick is also scored on it and the unchanged program kept if the pick is worse there
   (what the user sees is never worse on val than what went in).

Rules go through the proposal guard: a degenerate reply is dropped and asked again,
and a rule that never passes leaves the candidate without one (counted in the report).
Written here rather than taken from a library: SIMBA exists only inside DSPy, bound to
its module classes and global settings.

Before / after, for ``Classify(text) -> label`` with one ``predict`` step::

    before: Classify.c  instructions="Classify the text."  demos=[]
    after:  Classify.c  instructions="Classify the text.\\n\\nWhen a review mixes praise
            and complaints, ..."  demos=[1 bootstrapped]
            report.steps = [{step 0, batch_score 0.52, candidates [...], winner 3}, ...]
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from lmpc.compiler.passes._demos import PassError, attributed, check_budget, rng_for
from lmpc.compiler.passes._estimate import Estimate, Workload, writes_weakly
from lmpc.compiler.passes._guard import MAX_REASKS, ProposalGuard
from lmpc.compiler.passes._reflect import Rollout, run_rollouts, write_advice
from lmpc.compiler.passes.base import BudgetExceeded, Candidate, PassContext, PassResult
from lmpc.ir import Demo, Example, ProgramIR

log = logging.getLogger("lmpc")
PASS = "simba"
SAMPLING_TEMPERATURE = 1.0  # the runs of step 1 resample, as DSPy's do
_RUN_CAP = 600  # characters of a run's field values shown to the advice writer


@dataclass
class _Pool:
    """Every program SIMBA made, with its minibatch scores (index 0: the input)."""

    programs: list[ProgramIR]
    scores: dict[int, list[float]] = field(default_factory=dict)

    def mean(self, i: int) -> float:
        s = self.scores.get(i, [])
        return sum(s) / len(s) if s else 0.0

    def top_k_plus_baseline(self, k: int) -> list[int]:
        ranked = sorted(range(len(self.programs)), key=lambda i: -self.mean(i))  # stable
        top = ranked[:k]
        if 0 not in top and top:
            top[-1] = 0
        return list(dict.fromkeys(top))


def softmax_sample(rng: random.Random, pool: _Pool, idxs: list[int], temperature: float) -> int:
    """One index drawn with weights exp(mean score / temperature).

    >>> pool = _Pool([None, None], {0: [0.0], 1: [1.0]})
    >>> rng = random.Random(0)
    >>> draws = [softmax_sample(rng, pool, [0, 1], 0.2) for _ in range(1000)]
    >>> 0.97 < draws.count(1) / 1000 < 1.0   # e^5 / (1 + e^5) = 0.993
    True
    """
    if not idxs:
        raise PassError("simba: no program to sample from")
    weights = [math.exp(pool.mean(i) / max(temperature, 1e-6)) for i in idxs]
    total = sum(weights)
    if not total or math.isinf(total):
        return rng.choice(idxs)
    return rng.choices(idxs, weights=[w / total for w in weights], k=1)[0]


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; lam is small here: demos / max_demos)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def percentile(values: list[float], q: float) -> float:
    """numpy's default (linear) percentile.

    >>> percentile([0.0, 1.0, 1.0, 1.0], 10), percentile([0.0, 1.0], 90)
    (0.3, 0.9)
    """
    xs = sorted(values)
    if not xs:
        return 0.0
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 12)


@dataclass
class _Run:
    """One sampled run: which pool program, at which rollout, and what happened."""

    program: int
    rollout: int
    result: Rollout


def bucket_stats(runs: list[_Run]) -> tuple[float, float, float]:
    """(max − min, max, max − mean) of one example's runs: the bucket's sort key."""
    scores = [r.result.score for r in runs]
    top = max(scores)
    return top - min(scores), top, top - sum(scores) / len(scores)


def simba(
    program: ProgramIR,
    ctx: PassContext,
    bsize: int = 32,
    num_candidates: int = 6,
    max_steps: int = 8,
    max_demos: int = 4,
    temperature_for_sampling: float = 0.2,
    temperature_for_candidates: float = 0.2,
) -> PassResult:
    """Ascend on minibatches with demos and LM-written rules (see the module doc)."""
    params = {k: v for k, v in locals().items() if k not in ("program", "ctx")}
    if not ctx.trainset:
        raise PassError("simba runs on training rows, and the train split is empty")
    search = _Simba(program, ctx, params)
    try:
        search.run()
    except BudgetExceeded:
        search.report["stopped"] = "budget"
        log.info("simba: budget reached; keeping the best program so far")
    return search.result()


class _Simba:
    def __init__(self, program: ProgramIR, ctx: PassContext, params: dict[str, Any]) -> None:
        self.ctx = ctx
        self.params = params
        self.input = program
        self.bsize = min(int(params["bsize"]), len(ctx.trainset))
        self.rng = rng_for(ctx.seed, "simba")
        self.pool = _Pool([program.model_copy(deep=True)], {0: []})
        self.winners: list[int] = [0]
        self.guard = ProposalGuard()
        self.preds = [p.id for p in program.predictors_of(ctx.module)]
        self.strategies = ["append_a_demo", "append_a_rule"] if params["max_demos"] > 0 \
            else ["append_a_rule"]
        self.advice_asked = 0
        self.final: list[dict[str, Any]] = []
        self.picked: int | None = None
        self.report: dict[str, Any] = {
            "params": params, "bsize_used": self.bsize, "steps": [],
            "projected_calls": estimate(replace(_workload(program, ctx),
                                                weak_writer=writes_weakly(ctx.prompt_ctx)),
                                        **params).calls,
        }

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        order = list(range(len(self.ctx.trainset)))
        self.rng.shuffle(order)
        at = 0
        for step in range(int(self.params["max_steps"])):
            if at + self.bsize > len(order):
                self.rng.shuffle(order)
                at = 0
            batch = [self.ctx.trainset[i] for i in order[at: at + self.bsize]]
            at += self.bsize
            self._step(step, batch, order[at - self.bsize: at])
        self._final_pick()

    def _step(self, step: int, batch: list[Example], picked: list[int]) -> None:
        n = int(self.params["num_candidates"])
        check_budget(self.ctx.budget)
        runs = self._sample(step, batch, n)
        scores = [r.result.score for per in runs for r in per]
        p10, p90 = percentile(scores, 10), percentile(scores, 90)
        order = sorted(range(len(batch)), key=lambda j: bucket_stats(runs[j]), reverse=True)
        record: dict[str, Any] = {
            "step": step, "batch": picked, "batch_score": sum(scores) / len(scores),
            "p10": p10, "p90": p90,
            "buckets": [{"example": picked[j], "stats": list(bucket_stats(runs[j]))}
                        for j in order],
            "candidates": [],
        }
        made: list[tuple[ProgramIR, dict[str, Any]]] = []
        for j in order:
            bucket = sorted(runs[j], key=lambda r: -r.result.score)  # stable
            source = softmax_sample(self.rng, self.pool, self.pool.top_k_plus_baseline(n),
                                    float(self.params["temperature_for_candidates"]))
            cand, dropped = self._drop_demos(self.pool.programs[source])
            strategy = self.rng.choice(self.strategies)
            change = self._apply(strategy, cand, bucket, p10, p90, step, len(made))
            made.append((cand, {"source": source, "example": picked[j], "strategy": strategy,
                                "dropped_demos": dropped, **change}))
            if len(made) >= n + 1:
                break
        self._score_candidates(step, batch, made, record)
        self.report["steps"].append(record)

    def _sample(self, step: int, batch: list[Example], n: int) -> list[list[_Run]]:
        """``n`` runs of every example, each with a program drawn from the pool."""
        top = self.pool.top_k_plus_baseline(n)
        temperature = float(self.params["temperature_for_sampling"])
        draws: dict[tuple[int, int], list[int]] = {}
        for model in range(n):
            for j in range(len(batch)):
                prog = softmax_sample(self.rng, self.pool, top, temperature)
                draws.setdefault((prog, model), []).append(j)
        runs: list[list[_Run]] = [[] for _ in batch]
        for k, ((prog, model), js) in enumerate(sorted(draws.items())):
            run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, "step": step,
                                                      "stage": "sample"}).derive(
                temperature=SAMPLING_TEMPERATURE, rollout=model)
            self.ctx.emit("sample", k + 1, len(draws), label=f"step {step + 1}")
            got = run_rollouts(self.pool.programs[prog], self.ctx, [batch[j] for j in js],
                               run_ctx, stage=f"step {step + 1} sampling")
            for j, rollout in zip(js, got, strict=True):
                runs[j].append(_Run(prog, model, rollout))
        for per in runs:
            per.sort(key=lambda r: r.rollout)  # the model order, as DSPy's outputs are
        return runs

    def _drop_demos(self, source: ProgramIR) -> tuple[ProgramIR, list[int]]:
        """A copy of ``source`` with a Poisson-sized random set of demo slots dropped."""
        cand = source.model_copy(deep=True)
        preds = cand.predictors_of(self.ctx.module)
        most = max((len(p.demos) for p in preds), default=0)
        cap = int(self.params["max_demos"]) or 3
        k = max(poisson(self.rng, most / cap), int(most >= cap))
        k = min(k, most)
        slots = sorted({self.rng.randrange(most) for _ in range(k)}) if most else []
        for p in preds:
            p.demos = [d for i, d in enumerate(p.demos) if i not in slots]
        return cand, slots

    def _apply(self, strategy: str, cand: ProgramIR, bucket: list[_Run], p10: float,
               p90: float, step: int, k: int) -> dict[str, Any]:
        good, bad = bucket[0].result, bucket[-1].result
        if strategy == "append_a_demo":
            if good.score <= p10:
                return {"applied": False, "why": "best run at or below the 10th percentile"}
            added = {}
            for s in good.trace:  # the last step of each predictor becomes its demo
                if s.predictor in cand.predictors:
                    added[s.predictor] = Demo(values={**s.inputs, **s.outputs},
                                              kind="bootstrapped")
            for pid, demo in added.items():
                cand.predictors[pid].demos.append(demo)
            return {"applied": bool(added), "demos_added": sorted(added)}
        if good.score <= p10 or bad.score >= p90:
            return {"applied": False, "why": "no spread between the best and worst run"}
        rules: dict[str, str] = {}
        for pid in self.preds:
            if not any(s.predictor == pid for s in good.trace + bad.trace):
                continue
            current = cand.predictors[pid].signature.instructions
            self.advice_asked += 1
            text = write_advice(cand, self.ctx, attributed(
                self.ctx.prompt_ctx, **{"pass": PASS, "step": step}), pid,
                _render_run(good, pid), _render_run(bad, pid), self.guard, [current],
                rollout=step * 1000 + k)
            if text is None:
                continue
            rules[pid] = text
            cand.predictors[pid].signature.instructions = (current + "\n\n" + text).strip()
        return {"applied": bool(rules), "rules": rules}

    def _score_candidates(self, step: int, batch: list[Example],
                          made: list[tuple[ProgramIR, dict[str, Any]]],
                          record: dict[str, Any]) -> None:
        best, best_score = None, -1.0
        for k, (cand, info) in enumerate(made):
            check_budget(self.ctx.budget)
            run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, "step": step,
                                                      "stage": "candidate", "candidate": k})
            got = run_rollouts(cand, self.ctx, batch, run_ctx,
                               stage=f"step {step + 1} candidate {k + 1}/{len(made)}")
            scores = [r.score for r in got]
            mean = sum(scores) / len(scores)
            self.pool.programs.append(cand)
            idx = len(self.pool.programs) - 1
            self.pool.scores[idx] = scores
            record["candidates"].append({"index": idx, **info, "score": mean})
            if mean > best_score:
                best, best_score = idx, mean
            self.ctx.emit("candidate", k + 1, len(made), label=f"step {step + 1}", score=mean,
                          best=best_score, finished=True)
        if best is not None:
            self.winners.append(best)
            record["winner"] = best

    # ------------------------------------------------------------ the pick

    def _final_pick(self) -> None:
        from lmpc.eval.evaluate import evaluate

        m, n = len(self.winners) - 1, int(self.params["num_candidates"]) + 1
        spots = [0] * n if m < 1 else [round(i * m / (n - 1)) for i in range(n)]
        chosen = list(dict.fromkeys(self.winners[i] for i in spots))
        for k, idx in enumerate(chosen):
            check_budget(self.ctx.budget)
            run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, "stage": "final"})
            res = evaluate(self.pool.programs[idx], self.ctx.module, self.ctx.trainset,
                           self.ctx.metric, run_ctx, self.ctx.threads, failure_score=0.0,
                           progress=self.ctx.eval_progress(
                               f"final {k + 1}/{len(chosen)} on train"))
            self.final.append({"index": idx, "train_score": float(res.score)})
        best = max(self.final, key=lambda r: r["train_score"])  # first of equals: earliest
        self.picked = best["index"]
        self._val_check()

    def _val_check(self) -> None:
        """Keep the input when the pick scores below it on val (the build's first split)."""
        from lmpc.eval.evaluate import evaluate

        if not self.ctx.valset or self.picked in (None, 0):
            return
        scores = {}
        for idx in (0, self.picked):
            run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, "stage": "val_check"})
            scores[idx] = float(evaluate(
                self.pool.programs[idx], self.ctx.module, self.ctx.valset, self.ctx.metric,
                run_ctx, self.ctx.threads, failure_score=0.0,
                progress=self.ctx.eval_progress("val check")).score)
        self.report["val_check"] = {"input": scores[0], "picked": scores[self.picked]}
        if scores[self.picked] < scores[0]:
            self.report["val_check"]["kept"] = "input"
            self.picked = 0

    def result(self) -> PassResult:
        report = self.report
        report["guard"] = self.guard.report()
        report["advice_asked"] = self.advice_asked
        report["winners"] = self.winners
        report["final"] = self.final
        picked = self.picked
        if picked is None:  # stopped early: the best winner by minibatch score
            picked = max(self.winners, key=lambda i: (self.pool.mean(i), -i))
        report["picked"] = picked
        scored = {r["index"]: r["train_score"] for r in self.final}
        candidates = [Candidate(self.pool.programs[i].model_copy(deep=True), s,
                                f"simba program {i}")
                      for i, s in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))]
        return PassResult(program=self.pool.programs[picked].model_copy(deep=True),
                          candidates=candidates, report=report)


def _render_run(run: Rollout, pid: str) -> str:
    """One run for the advice writer: its trajectory, outputs, score and feedback."""
    lines = []
    for s in run.trace:
        tag = "this step" if s.predictor == pid else "step"
        ins = ", ".join(f"{k}={_cap(v)}" for k, v in s.inputs.items())
        outs = ", ".join(f"{k}={_cap(v)}" for k, v in s.outputs.items())
        lines.append(f"{tag} {s.predictor}: inputs {ins} -> outputs {outs}")
    if run.outputs is None:
        lines.append(f"the run failed: {run.error}")
    lines.append(f"score: {run.score:.2f}")
    lines.append(f"feedback: {run.feedback}")
    return "\n".join(lines)


def _cap(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _RUN_CAP else text[: _RUN_CAP - 3] + "..."


def _workload(program: ProgramIR, ctx: PassContext) -> Workload:
    from lmpc.compiler.passes._estimate import workload_of

    return workload_of(program, ctx)


# ---------------------------------------------------------------- projections


DEFAULTS: dict[str, Any] = {"bsize": 32, "num_candidates": 6, "max_steps": 8, "max_demos": 4}


def estimate(work: Workload, **given: Any) -> Estimate:
    """Projected new LM calls.

    Each step: ``num_candidates × bsize`` sampled runs, then ``num_candidates + 1`` new
    programs (fewer when the batch has fewer examples) scored on the batch; half of them
    (all with ``max_demos = 0``) ask for a rule per predictor. Then the winners (at most
    ``num_candidates + 1``, the input among them) on the trainset, and the pick on val.
    With the cache on, the input's val rows come from the build's first evaluation, a
    winner's minibatch rows are known when it is scored on the trainset, and the sampled
    runs repeat (same program, rollout and row) once the trainset has been walked.
    The bound has every rule re-asked twice.

    When the writer is an embedded base model (``work.weak_writer``, W1606) the guard
    drops every rule after ``1 + MAX_REASKS`` asks, so a rule candidate is a copy of a
    program already in the pool and, with the cache, costs only the rows its original
    was not scored on. The new programs are then the demo candidates; every program is
    scored on one minibatch, and the distinct winners (the input and, in expectation,
    the share of steps a demo candidate won) on the whole trainset, which covers their
    copies' rows. The pool's best are new programs each step, so the sampled runs rarely
    repeat. (Measured on the quick start, ``bsize = 16, num_candidates = 4, max_steps =
    4``: 825 new calls; 994 projected the other way, 854 this way. A ``bsize`` covering
    the whole trainset repeats more than this counts.)
    """
    p = {**DEFAULTS, **given}
    preds = work.program.predictors_of(work.module)
    per = work.per_run()
    n_train = work.n_train
    b = min(int(p["bsize"]), n_train)
    n, steps = int(p["num_candidates"]), int(p["max_steps"])
    made = min(n + 1, b)
    demo_share = 0.5 if int(p["max_demos"]) > 0 else 0.0
    rule_slots = round(steps * made * (1 - demo_share) * len(preds))
    winners = min(steps + 1, n + 1)
    sampled = steps * n * b
    baseline = work.n_val
    if work.cache and not (work.weak_writer and demo_share):
        # a later epoch's draws of the input at the same rollout are cached
        sampled = min(sampled, n * n_train) + max(sampled - n * n_train, 0) // 2
    if work.weak_writer and work.cache:
        rules = rule_slots * (1 + MAX_REASKS)
        programs = 1 + steps * made * demo_share  # the input and the demo candidates
        finalists = 1 + (winners - 1) * demo_share
        scored = round((programs - finalists) * b + finalists * n_train)
        val = 2 * work.n_val
        if not demo_share:  # every program is the input: picked, it has no val check
            sampled, val, baseline = min(steps * n * b, n * n_train), 0, 0
        calls = (sampled + scored + val) * per + rules
    else:
        rules = rule_slots * ((1 + MAX_REASKS) if work.weak_writer else 1)
        evals = steps * made * b
        final = winners * n_train + 2 * work.n_val
        if work.cache:  # a winner's own minibatch rows were scored already
            final -= (winners - 1) * b
        calls = (sampled + evals + final) * per + rules
    evals, final = steps * made * b, winners * n_train + 2 * work.n_val
    bound = (steps * n * b + evals + final) * per + rule_slots * (1 + MAX_REASKS)
    return Estimate(calls=calls, max_calls=max(bound, calls), candidates=winners,
                    val_rows=work.n_val, candidates_on_val=False, baseline_rows=baseline,
                    returns_input=work.weak_writer and not demo_share)
