"""``gepa``: reflective evolutionary search over the instructions of a whole module graph.

Parameters (defaults): ``auto | max_full_evals | max_metric_calls`` (exactly one),
``reflection_lm=none, reflection_minibatch_size=3, candidate_selection=pareto,
use_merge=true, max_merge_invocations=5, skip_perfect_score=true, seed=0``
(OPTIMIZERS.md "Reflective / stochastic").

The search itself is the ``gepa`` package's engine (the GEPA authors' own, which DSPy
builds on), driven through its adapter interface:

- a *candidate* is lmpc's IR seen as ``{predictor id: instruction}`` for every
  predictor of the module (nested modules included);
- ``evaluate`` runs the candidate with lmpc's runtime (cache, retries, budget, threads)
  and scores each example with the build's metric; with traces it keeps every run's
  trace and the metric's feedback;
- ``make_reflective_dataset`` turns those into records per predictor: the step's own
  inputs and outputs, the score and the feedback (focused on that predictor);
- ``propose_new_texts`` has the reflection LM write the new instruction through lmpc's
  runtime, behind the proposal guard (degenerate replies dropped and asked again).

The engine keeps, for every validation example, the candidates best on it (the Pareto
front), picks the parent by how many examples it is best on, mutates one predictor at a
time (round-robin) from a minibatch of ``reflection_minibatch_size`` training rows
(skipped when the parent is perfect on all of them), keeps a child only when it beats
its parent on that minibatch, and then scores it on the whole valset; merges combine
two descendants of a common ancestor predictor by predictor. Its budget is metric calls
(one per example run): ``auto`` light/medium/heavy sizes it as DSPy does (6/12/18
candidates), ``max_full_evals`` counts passes over train + val. A build's own caps
(``budget: calls N``) stop it between iterations and keep the best found so far.

Why the package and not our own search: it takes the candidate, the evaluator and the
proposer from us, so lmpc's cache, budget, determinism (seeded; same seed, same
artifact) and guard all hold, and there is no second GEPA to keep in step.

Before / after, for ``Classify(text) -> label`` with one ``predict`` step::

    before: Classify.c  instructions="Classify the text."
    after:  Classify.c  instructions="Label the review positive or negative; ..."
            report.tree = [{index 0, origin seed, val 0.55}, {index 1, parents [0],
                           origin reflection, val 0.80, reflection {...}}, ...]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

from lmpc.compiler.passes._demos import PassError, attributed
from lmpc.compiler.passes._estimate import Estimate, Workload, workload_of, writes_weakly
from lmpc.compiler.passes._guard import MAX_REASKS, ProposalGuard
from lmpc.compiler.passes._reflect import (
    Reflection,
    Rollout,
    record_for,
    reflect_instruction,
    run_rollouts,
)
from lmpc.compiler.passes.base import BudgetExceeded, Candidate, PassContext, PassResult
from lmpc.ir import Example, ProgramIR

log = logging.getLogger("lmpc")
PASS = "gepa"

#: auto preset -> candidates, as DSPy's GEPA sizes its budget (``AUTO_RUN_SETTINGS``)
AUTO_CANDIDATES = {"light": 6, "medium": 12, "heavy": 18}
_AUTO_MINIBATCH = 35
_AUTO_FULL_EVAL_STEPS = 5
REFLECTION_VALUE = 1200  # characters of the reflection prompt kept per tree node


def auto_budget(n_predictors: int, n_candidates: int, n_val: int,
                minibatch_size: int = _AUTO_MINIBATCH,
                full_eval_steps: int = _AUTO_FULL_EVAL_STEPS) -> int:
    """Metric calls of an ``auto`` preset: DSPy's ``GEPA.auto_budget`` formula.

    >>> auto_budget(1, 6, 20)
    460
    """
    trials = int(max(2 * (n_predictors * 2) * math.log2(n_candidates), 1.5 * n_candidates))
    total = n_val + n_candidates * 5 + trials * minibatch_size
    periodic = (trials + 1) // full_eval_steps + 1
    extra = 1 if trials < full_eval_steps else 0
    return total + (periodic + extra) * n_val


def metric_budget(n_predictors: int, n_train: int, n_val: int, auto: str | None,
                  max_full_evals: int | None, max_metric_calls: int | None) -> int:
    """The search's budget in metric calls (``n_val`` is the valset GEPA tracks)."""
    given = [k for k, v in (("auto", auto), ("max_full_evals", max_full_evals),
                            ("max_metric_calls", max_metric_calls)) if v is not None]
    if len(given) != 1:
        raise PassError("gepa needs exactly one budget: auto, max_full_evals or "
                        f"max_metric_calls (got {', '.join(given) or 'none'})")
    if auto is not None:
        if auto not in AUTO_CANDIDATES:
            raise PassError(f"gepa.auto must be light, medium or heavy, got {auto!r}")
        return auto_budget(max(n_predictors, 1), AUTO_CANDIDATES[auto], n_val)
    if max_full_evals is not None:
        return int(max_full_evals) * (n_train + n_val)
    return int(max_metric_calls)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the adapter


@dataclass
class _Log:
    """GEPA's logger protocol, onto lmpc's log (library code never prints)."""

    def log(self, message: str) -> None:
        log.debug("gepa: %s", message)


@dataclass
class _Adapter:
    """lmpc's IR, runtime, metric feedback and reflection LM behind GEPA's adapter."""

    program: ProgramIR
    ctx: PassContext
    reflection_ctx: Any
    valset: list[Example]
    guard: ProposalGuard = field(default_factory=ProposalGuard)
    reflections: list[dict[str, Any]] = field(default_factory=list)
    tried: dict[str, list[str]] = field(default_factory=dict)
    full_evals: int = 0
    minibatches: int = 0
    front: list[list[int]] = field(default_factory=list)  # the engine's, per val example

    # GEPA reads this attribute: our own proposer writes the new instructions.
    def __post_init__(self) -> None:
        self.propose_new_texts = self._propose

    def build(self, candidate: dict[str, str]) -> ProgramIR:
        out = self.program.model_copy(deep=True)
        for pid, text in candidate.items():
            out.predictors[pid].signature.instructions = text
        return out

    def evaluate(self, batch: list[Example], candidate: dict[str, str],
                 capture_traces: bool = False) -> Any:
        from gepa import EvaluationBatch

        full = len(batch) == len(self.valset) and all(
            a is b for a, b in zip(batch, self.valset, strict=True))
        if full:
            self.full_evals += 1
            stage, step = f"candidate {self.full_evals} on val", "full_eval"
        else:
            self.minibatches += 1
            stage, step = f"minibatch {self.minibatches}", "minibatch"
        run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, "step": step})
        focus = list(candidate) if capture_traces else None
        rollouts = run_rollouts(self.build(candidate), self.ctx, batch, run_ctx, focus, stage)
        scores = [r.score for r in rollouts]
        if full:
            self.ctx.emit("candidate", self.full_evals, None, label=stage,
                          score=sum(scores) / max(len(scores), 1), finished=True)
        return EvaluationBatch(outputs=[r.outputs for r in rollouts], scores=scores,
                               trajectories=rollouts if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict]]:
        rollouts: list[Rollout] = list(eval_batch.trajectories or [])
        return {pid: [record_for(r, pid) for r in rollouts] for pid in components_to_update}

    def _propose(self, candidate: dict[str, str], reflective_dataset: Any,
                 components_to_update: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for pid in components_to_update:
            records = list(reflective_dataset.get(pid, []))
            earlier = self.tried.setdefault(pid, [])
            rollout = len(self.reflections)  # a fresh index per reflection: never cached
            self.ctx.emit("reflect", len(self.reflections) + 1, None, label=pid)
            found: Reflection = reflect_instruction(
                self.program, self.ctx, self.reflection_ctx, pid, candidate[pid], records,
                self.guard, earlier, rollout)
            self.reflections.append({
                "predictor": pid, "parent_instruction": candidate[pid],
                "minibatch_scores": [r["Score"] for r in records],
                "shown": found.shown[:REFLECTION_VALUE], "asked": found.asked,
                "instruction": found.text,
                "parent": dict(candidate),
            })
            if found.text is not None:
                earlier.append(found.text)
                out[pid] = found.text
        return out


@dataclass
class _Stop:
    """GEPA's stopper: the build's budget caps, checked between iterations.

    Stops when a cap was hit, or when the calls left would not cover one more iteration
    (a reflection and two minibatches), so the pass ends cleanly with what it found.
    """

    ctx: PassContext
    per_iteration: int
    max_metric_calls: int
    state: Any = None
    by_budget: bool = False

    def __call__(self, state: Any) -> bool:
        self.by_budget = self._over(state)
        return self.by_budget

    def _over(self, state: Any) -> bool:
        self.state = state
        used = int(getattr(state, "total_num_evals", 0))
        self.ctx.emit("search", min(used, self.max_metric_calls), self.max_metric_calls,
                      label="metric calls", best=_best_val(state))
        budget = self.ctx.budget
        if budget is None:
            return False
        if getattr(budget, "exceeded", None):
            return True
        cap = getattr(getattr(budget, "budget", None), "calls", None)
        if cap is None:
            return False
        spent = budget.used()["calls"]
        return spent + self.per_iteration > cap


def _best_val(state: Any) -> float | None:
    scores = getattr(state, "program_full_scores_val_set", None)
    return max(scores) if scores else None


# ---------------------------------------------------------------- the pass


def gepa(
    program: ProgramIR,
    ctx: PassContext,
    auto: str | None = None,
    max_full_evals: int | None = None,
    max_metric_calls: int | None = None,
    reflection_lm: str | None = None,
    reflection_minibatch_size: int = 3,
    candidate_selection: str = "pareto",
    use_merge: bool = True,
    max_merge_invocations: int = 5,
    skip_perfect_score: bool = True,
    seed: int = 0,
) -> PassResult:
    """Evolve the instructions of ``ctx.module``'s predictors with GEPA (module doc)."""
    import gepa as gepa_engine

    params = {k: v for k, v in locals().items() if k not in ("program", "ctx", "gepa_engine")}
    if not ctx.trainset:
        raise PassError("gepa reflects on training rows, and the train split is empty")
    preds = [p.id for p in program.predictors_of(ctx.module)]
    if not preds:
        raise PassError(f"gepa: module {ctx.module} has no predictor to optimize")
    valset = list(ctx.valset or ctx.trainset)  # DSPy: no valset -> track on the trainset
    budget = metric_budget(len(preds), len(ctx.trainset), len(ctx.valset), auto,
                           max_full_evals, max_metric_calls)
    reflection_ctx = _reflection_ctx(program, ctx, reflection_lm)
    adapter = _Adapter(program, ctx, attributed(reflection_ctx, **{"pass": PASS}), valset)
    per_iteration = 1 + 2 * reflection_minibatch_size * workload_of(program, ctx).per_run()
    stop = _Stop(ctx, per_iteration, budget)
    report: dict[str, Any] = {
        "params": params, "max_metric_calls": budget,
        "train": len(ctx.trainset), "val": len(valset), "predictors": preds,
        "projected_calls": estimate(replace(workload_of(program, ctx),
                                            weak_writer=writes_weakly(reflection_ctx)),
                                    **params).calls,
        "engine": f"gepa {getattr(gepa_engine, '__version__', '')}".strip(),
    }
    seed_candidate = {pid: program.predictors[pid].signature.instructions for pid in preds}
    try:
        result = gepa_engine.optimize(
            seed_candidate=seed_candidate, trainset=list(ctx.trainset), valset=valset,
            adapter=adapter, candidate_selection_strategy=candidate_selection,
            skip_perfect_score=skip_perfect_score, perfect_score=1.0,
            reflection_minibatch_size=reflection_minibatch_size,
            module_selector="round_robin", use_merge=use_merge,
            max_merge_invocations=max_merge_invocations, max_metric_calls=budget,
            stop_callbacks=[stop], logger=_Log(), seed=seed, raise_on_exception=True,
            display_progress_bar=False, track_best_outputs=False)
    except BudgetExceeded:
        report["stopped"] = "budget"
        log.info("gepa: budget reached; keeping the best candidate so far")
        tree = _tree_from_state(stop.state, adapter)
    else:
        if stop.by_budget:
            report["stopped"] = "budget"
        tree = _tree_from_result(result, adapter)
        report["metric_calls"] = int(getattr(result, "total_metric_calls", 0) or 0)
    return _result(program, adapter, tree, report)


def _reflection_ctx(program: ProgramIR, ctx: PassContext, name: str | None) -> Any:
    """The run context that writes instructions: ``reflection_lm`` (an LM or a role),
    else the reflection role (which falls back to the task model)."""
    roles = {"lm": ctx.run_ctx, "teacher": ctx.teacher_ctx, "prompt_model": ctx.prompt_ctx,
             "reflection": ctx.reflection_ctx}
    if name is None:
        return ctx.reflection_ctx
    if name in roles:
        return roles[name]
    if name in program.lms:
        return ctx.reflection_ctx.derive(task_lm=program.lms[name])
    raise PassError(f"gepa.reflection_lm '{name}' is neither an LM nor an LM role of this "
                    f"program (LMs: {sorted(program.lms)}, roles: {sorted(roles)})")


# ---------------------------------------------------------------- the candidate tree


def _tree_from_result(result: Any, adapter: _Adapter) -> list[dict[str, Any]]:
    fronts = getattr(result, "per_val_instance_best_candidates", {}) or {}
    if isinstance(fronts, dict):
        fronts = [fronts[k] for k in sorted(fronts)]
    adapter.front = [sorted(int(i) for i in best) for best in fronts]
    return _tree(list(result.candidates), [list(p or []) for p in result.parents],
                 [list(_values(s)) for s in result.val_subscores],
                 list(result.discovery_eval_counts), adapter)


def _tree_from_state(state: Any, adapter: _Adapter) -> list[dict[str, Any]]:
    if state is None:
        return []
    cands = list(state.program_candidates)
    parents = [list(p or []) for p in state.parent_program_for_candidate][: len(cands)]
    subs = [list(_values(s)) for s in state.prog_candidate_val_subscores][: len(cands)]
    counts = list(getattr(state, "num_metric_calls_by_discovery", [0] * len(cands)))
    return _tree(cands[: len(subs)], parents, subs, counts, adapter)


def _values(subscores: Any) -> list[float]:
    """Per-example val scores in valset order (GEPA keeps a list or an id -> score map)."""
    if isinstance(subscores, dict):
        return [float(subscores[k]) for k in sorted(subscores)]
    return [float(s) for s in subscores]


def _tree(candidates: list[dict[str, str]], parents: list[list[int | None]],
          subscores: list[list[float]], discovered: list[int],
          adapter: _Adapter) -> list[dict[str, Any]]:
    """Every candidate: its parents, per-example val scores, and how it was made."""
    by_child: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for rec in adapter.reflections:  # the reflection that wrote each mutation's text
        if rec["instruction"] is None:
            continue
        child = {**rec["parent"], rec["predictor"]: rec["instruction"]}
        by_child.setdefault(tuple(sorted(child.items())), rec)
    nodes = []
    for i, cand in enumerate(candidates):
        ps = [p for p in (parents[i] if i < len(parents) else []) if p is not None]
        scores = subscores[i] if i < len(subscores) else []
        rec = by_child.get(tuple(sorted(cand.items())))
        origin = "seed" if i == 0 else "merge" if len(ps) > 1 else "reflection"
        node: dict[str, Any] = {
            "index": i, "parents": ps, "origin": origin,
            "val_score": sum(scores) / len(scores) if scores else None,
            "val_scores": scores,
            "discovered_after_metric_calls": int(discovered[i]) if i < len(discovered) else None,
            "instructions": dict(cand),
        }
        if origin == "reflection" and rec is not None:
            node["reflection"] = {k: rec[k] for k in ("predictor", "minibatch_scores",
                                                      "shown", "asked")}
        nodes.append(node)
    front = _front(subscores)
    for node in nodes:
        node["best_on"] = front.get(node["index"], 0)
    return nodes


def _front(subscores: list[list[float]]) -> dict[int, int]:
    """How many validation examples each candidate is (one of) the best on."""
    counts: dict[int, int] = {}
    if not subscores:
        return counts
    for j in range(min(len(s) for s in subscores)):
        top = max(s[j] for s in subscores)
        for i, s in enumerate(subscores):
            if s[j] == top:
                counts[i] = counts.get(i, 0) + 1
    return counts


def _result(program: ProgramIR, adapter: _Adapter, tree: list[dict[str, Any]],
            report: dict[str, Any]) -> PassResult:
    report["tree"] = tree
    # per validation example, the candidates best on it (the engine's Pareto front)
    report["pareto_front"] = adapter.front or [
        sorted(i for i, n in enumerate(tree) if n["val_scores"] and
               n["val_scores"][j] == max(m["val_scores"][j] for m in tree))
        for j in range(len(tree[0]["val_scores"]) if tree else 0)]
    report["guard"] = adapter.guard.report()
    report["reflections"] = len(adapter.reflections)
    scored = [n for n in tree if n["val_score"] is not None]
    if not scored:
        report["best"] = None
        return PassResult(program=program.model_copy(deep=True), report=report)
    # the best mean on val; ties go to the earliest (the seed first: never worse on val)
    best = max(scored, key=lambda n: (n["val_score"], -n["index"]))
    report["best"] = {"index": best["index"], "val_score": best["val_score"],
                      "instructions": best["instructions"]}
    report["baseline_score"] = tree[0]["val_score"]
    ranked = sorted(scored, key=lambda n: (-n["val_score"], n["index"]))
    candidates = [Candidate(adapter.build(n["instructions"]), float(n["val_score"]),
                            f"gepa candidate {n['index']}") for n in ranked]
    return PassResult(program=adapter.build(best["instructions"]), candidates=candidates,
                      report=report)


# ---------------------------------------------------------------- projections


DEFAULTS: dict[str, Any] = {
    "auto": None, "max_full_evals": None, "max_metric_calls": None,
    "reflection_minibatch_size": 3, "use_merge": True, "skip_perfect_score": True,
}


def estimate(work: Workload, **given: Any) -> Estimate:
    """Projected new LM calls of the search.

    GEPA spends its budget ``B`` in metric calls, one per example run: the seed on the
    valset, then per iteration a parent and a child on a minibatch of ``b`` training
    rows and a reflection call; an accepted child is also run on the valset. The
    projection takes every child as rejected (what a small reflection model mostly
    gets): ``k = (B − V) / 2b`` iterations, each a reflection and ``b`` new child runs;
    the parent (the seed) runs each training row once, the cache answering its repeats.
    The bound takes every run as new and every reflection re-asked twice.

    When the writer is an embedded base model (``work.weak_writer``, W1606) the guard
    drops nearly every reflection, so no child is run: each iteration is a parent
    minibatch of ``b`` rows and ``1 + MAX_REASKS`` reflection asks, ``(B − V) / b`` of
    them (measured on the quick start: 193 new calls against 202 projected this way, 148
    the other). Proposing nothing, the search returns its input, so the build's final
    evaluation is the cache's.
    """
    params = {**DEFAULTS, **given}
    preds = work.program.predictors_of(work.module)
    n_val = work.n_val or work.n_train
    budget = metric_budget(len(preds), work.n_train, work.n_val, params["auto"],
                           params["max_full_evals"], params["max_metric_calls"])
    b = min(int(params["reflection_minibatch_size"]), max(work.n_train, 1))
    per = work.per_run()
    left = max(budget - n_val, 0)
    iterations = math.ceil(left / (2 * b)) if left else 0
    child_runs = iterations * b
    parent_runs = iterations * b
    asks = iterations
    if work.weak_writer:
        iterations = math.ceil(left / b) if left else 0
        child_runs, parent_runs, asks = 0, iterations * b, iterations * (1 + MAX_REASKS)
    if work.cache:
        parent_runs = min(parent_runs, work.n_train)
    calls = (n_val + child_runs + parent_runs) * per + asks
    bound = (n_val + 2 * iterations * b + n_val) * per + iterations * (1 + MAX_REASKS)
    return Estimate(calls=calls, max_calls=max(bound, calls), candidates=1,
                    val_rows=n_val if work.n_val else 0, candidates_on_val=bool(work.n_val),
                    baseline_rows=n_val if work.n_val else 0, returns_input=work.weak_writer)
