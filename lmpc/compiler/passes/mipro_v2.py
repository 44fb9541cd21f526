"""``mipro_v2``: propose instructions, bootstrap demo sets, search their combinations.

Parameters (defaults): ``auto=light, num_candidates=none, num_trials=none,
max_bootstrapped_demos=4, max_labeled_demos=4, minibatch=true, minibatch_size=35,
minibatch_full_eval_steps=5, seed=9, init_temperature=1.0, program_aware=true,
data_aware=true, tip_aware=true, fewshot_aware=true, stratify=true, storage=none``
(OPTIMIZERS.md "Instructions").

- Presets: light → 6 candidates, val capped at 100; medium → 12 / 300; heavy → 18 /
  1000; ``auto = none`` takes ``num_candidates`` and ``num_trials``. With no valset the
  last 80% of the trainset (at most 1000 rows) becomes the valset. Trials =
  ``max(2·V·log2(n), 1.5·n)`` for n candidates and V = P predictors (2P when demo sets
  are chosen too). With both demo maxima 0 the search is over instructions only.
1. Bootstrap n demo sets per predictor with random search's seed scheme (slot 0 is the
   program's current demos — zero-shot when it has none — then −2 labeled only, −1
   unshuffled bootstrap, then seeded shuffles), stratified over the classes of the
   metric's field like ``bootstrap_fewshot`` (``stratify = false``: plain sampling).
2. Propose n − 1 instructions per predictor with the grounded proposer (slot 0 keeps
   the original instruction).
3. Search with Optuna's seeded multivariate TPE sampler: each trial picks an
   instruction and a demo set per predictor and scores the program on a seeded random
   minibatch of the valset. The unchanged program is fully evaluated first and
   registered as trial 0; every ``minibatch_full_eval_steps`` trials and at the end, the
   combination with the best mean minibatch score that lacks a full evaluation gets one.
   The program with the best full score is returned.

The study is stored (``storage``: None → ``optuna.sqlite3`` in the lmpc cache folder,
a path, an Optuna RDB URL, or ``"memory"``) under a name derived from the program, data,
parameters and seed, together with the proposed candidates: an interrupted build
resumes its completed trials, and several processes can work one study together.

Before / after, for ``Classify(text) -> label`` with one ``predict`` step::

    before: Classify.c  instructions="Classify the text."  demos=[]
    after:  Classify.c  instructions=<candidate 3>  demos=<demo set 2: 4 bootstrapped>
            report.trials = [{number 0, baseline, full 0.41}, {number 1, mb 0.57}, ...]
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from lmpc.compiler.passes import _study
from lmpc.compiler.passes._demos import (
    PassError,
    attributed,
    check_budget,
    class_field,
    rng_for,
    seeded_sample,
)
from lmpc.compiler.passes._estimate import (
    Estimate,
    Workload,
    placeholder_rows,
    walked,
    workload_of,
)
from lmpc.compiler.passes._guard import MAX_REASKS
from lmpc.compiler.passes._propose import (
    ProposerSwitches,
    proposal_calls,
    propose_instructions,
    stop_if_exceeded,
)
from lmpc.compiler.passes.base import (
    BudgetExceeded,
    Candidate,
    Example,
    PassContext,
    PassResult,
)
from lmpc.compiler.passes.bootstrap_fewshot import BootstrapParams, bootstrap
from lmpc.compiler.passes.bootstrap_random_search import labeled_candidate
from lmpc.compiler.passes.copro import predictor_calls
from lmpc.ir import Demo, ProgramIR

log = logging.getLogger("lmpc")
PASS = "mipro_v2"

#: auto preset → (candidates per predictor, valset cap)
PRESETS: dict[str, tuple[int, int]] = {"light": (6, 100), "medium": (12, 300),
                                       "heavy": (18, 1000)}
AUTO_VAL_SHARE = 0.8  # with no valset, this share of the trainset (its end) validates
MAX_AUTO_VAL = 1000


@dataclass(frozen=True)
class Settings:
    """The resolved search size."""

    num_candidates: int
    num_trials: int
    val_cap: int | None
    fewshot: bool


def num_trials_for(n_predictors: int, num_candidates: int, fewshot: bool) -> int:
    """``max(2·V·log2(n), 1.5·n)`` trials, V = P (2P when demo sets are searched too).

    >>> num_trials_for(1, 6, fewshot=True), num_trials_for(1, 6, fewshot=False)
    (10, 9)
    >>> num_trials_for(3, 12, fewshot=True)
    43
    """
    variables = n_predictors * (2 if fewshot else 1)
    return max(int(max(2 * variables * math.log2(num_candidates), 1.5 * num_candidates)), 1)


def resolve_settings(
    n_predictors: int, auto: str | None, num_candidates: int | None, num_trials: int | None,
    max_bootstrapped_demos: int, max_labeled_demos: int,
) -> Settings:
    """Candidates, trials and valset cap from the preset (or the manual values)."""
    fewshot = max_bootstrapped_demos > 0 or max_labeled_demos > 0
    if auto is None:
        if num_candidates is None or num_trials is None:
            raise PassError("mipro_v2 with auto = none needs num_candidates and num_trials")
        return Settings(num_candidates, num_trials, None, fewshot)
    if auto not in PRESETS:
        raise PassError(f"mipro_v2.auto must be one of {', '.join(PRESETS)} or none, "
                         f"got {auto!r}")
    if num_candidates is not None or num_trials is not None:
        raise PassError(f"mipro_v2: auto = {auto} sets num_candidates and num_trials; "
                         "write auto = none to set them")
    n, cap = PRESETS[auto]
    return Settings(n, num_trials_for(n_predictors, n, fewshot), cap, fewshot)


def split_data(
    trainset: list[Example], valset: list[Example], val_cap: int | None, seed: int
) -> tuple[list[Example], list[Example]]:
    """(trainset, valset): carve the valset off the trainset's end if none; cap it."""
    if not valset:
        if len(trainset) < 2:
            raise PassError("mipro_v2 needs a valset, or a trainset of at least 2 rows "
                             "to take one from")
        n_val = min(MAX_AUTO_VAL, max(1, int(len(trainset) * AUTO_VAL_SHARE)))
        trainset, valset = trainset[: len(trainset) - n_val], trainset[len(trainset) - n_val:]
    if val_cap is not None and len(valset) > val_cap:
        picked = sorted(seeded_sample(list(range(len(valset))), val_cap,
                                      rng_for(seed, "valset")))
        valset = [valset[i] for i in picked]
    return trainset, valset


@dataclass
class _Space:
    """The search space: instruction and demo-set candidates per predictor."""

    instructions: dict[str, list[str]]
    demo_sets: dict[str, list[list[Demo]]]
    proposer: dict[str, Any]

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        out: dict[str, Any] = {}
        for pid, options in self.instructions.items():
            out[f"{pid}:instruction"] = CategoricalDistribution(list(range(len(options))))
            if len(self.demo_sets.get(pid, [])) > 1:
                out[f"{pid}:demos"] = CategoricalDistribution(
                    list(range(len(self.demo_sets[pid]))))
        return out

    def build(self, program: ProgramIR, params: dict[str, int]) -> ProgramIR:
        """The program with the picked instruction and demo set of every predictor."""
        out = program.model_copy(deep=True)
        for pid, options in self.instructions.items():
            pred = out.predictors[pid]
            pred.signature.instructions = options[params.get(f"{pid}:instruction", 0)]
            sets = self.demo_sets.get(pid)
            if sets:
                pred.demos = [d.model_copy(deep=True) for d in sets[params.get(f"{pid}:demos", 0)]]
        return out

    def to_json(self) -> str:
        return json.dumps({
            "instructions": self.instructions,
            "demo_sets": {pid: [[d.model_dump() for d in s] for s in sets]
                          for pid, sets in self.demo_sets.items()},
            "proposer": self.proposer,
        }, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> _Space:
        data = json.loads(text)
        sets = {pid: [[Demo.model_validate(d) for d in s] for s in v]
                for pid, v in data["demo_sets"].items()}
        return cls(data["instructions"], sets, data["proposer"])


def mipro_v2(
    program: ProgramIR,
    ctx: PassContext,
    auto: str | None = "light",
    num_candidates: int | None = None,
    num_trials: int | None = None,
    max_bootstrapped_demos: int = 4,
    max_labeled_demos: int = 4,
    minibatch: bool = True,
    minibatch_size: int = 35,
    minibatch_full_eval_steps: int = 5,
    seed: int = 9,
    init_temperature: float = 1.0,
    program_aware: bool = True,
    data_aware: bool = True,
    tip_aware: bool = True,
    fewshot_aware: bool = True,
    stratify: bool = True,
    storage: str | None = None,
) -> PassResult:
    """Search instructions and demo sets of ``ctx.module``'s predictors (see the module doc)."""
    params = {k: v for k, v in locals().items() if k not in ("program", "ctx")}
    preds = [p.id for p in program.predictors_of(ctx.module)]
    settings = resolve_settings(len(preds), auto, num_candidates, num_trials,
                                max_bootstrapped_demos, max_labeled_demos)
    trainset, valset = split_data(ctx.trainset, ctx.valset, settings.val_cap, seed)
    pctx = replace(ctx, trainset=trainset, valset=valset, seed=seed)
    projected = estimate(workload_of(program, ctx), **params).calls
    log.info("mipro_v2: %d candidates, %d trials, %d train / %d val rows; projected LM "
             "calls: %d", settings.num_candidates, settings.num_trials, len(trainset),
             len(valset), projected)
    report: dict[str, Any] = {
        "params": {k: v for k, v in params.items() if k != "storage"},
        "settings": {**asdict(settings), "train": len(trainset), "val": len(valset)},
        "projected_calls": projected,
    }
    search = _Search(program, pctx, settings, params, report)
    return search.run()


# ---------------------------------------------------------------- the search


class _Search:
    """One MIPROv2 run: prepare (or load) the space, then the trial loop."""

    def __init__(self, program: ProgramIR, ctx: PassContext, settings: Settings,
                 params: dict[str, Any], report: dict[str, Any]) -> None:
        self.program = program
        self.ctx = ctx
        self.settings = settings
        self.params = params
        self.report = report
        self.space: _Space | None = None
        self.study: Any = None
        n_val = len(ctx.valset)
        self.minibatch = bool(params["minibatch"]) and params["minibatch_size"] < n_val
        self.batch_size = min(int(params["minibatch_size"]), n_val)

    def run(self) -> PassResult:
        try:
            self._open()
            self._prepare()
            self._baseline()
            self._trials()
            if self.minibatch and self._finished() > self._last_full_after():
                self._full_eval_best()  # for the trials since the last periodic one
        except BudgetExceeded:
            self.report["stopped"] = "budget"
            log.info("mipro_v2: budget reached; keeping the best program so far")
        return self._result()

    # ------------------------------------------------------------ setup

    def _open(self) -> None:
        key = {
            "program": _hash(self.program.model_dump_json()),
            "module": self.ctx.module,
            "data": _hash(json.dumps([[e.values for e in self.ctx.trainset],
                                      [e.values for e in self.ctx.valset]],
                                     sort_keys=True, default=str)),
            "params": {k: v for k, v in self.params.items() if k != "storage"},
            "lms": [_model_of(c) for c in (self.ctx.run_ctx, self.ctx.prompt_ctx,
                                           self.ctx.teacher_ctx)],
        }
        name = _study.study_name(PASS, key, int(self.params["seed"]))
        storage = self.params["storage"]
        if storage is None:
            storage = _study.storage_beside_cache(self.ctx.run_ctx)
        self.study = _study.open_study(name, storage, int(self.params["seed"]))
        done, _ = _study.counts(self.study)
        # (how many trials were resumed is logged, not reported: the artifact of a
        # finished build must not depend on whether it was interrupted on the way)
        self.report["study"] = {"name": name}
        if done:
            log.info("mipro_v2: resuming study %s with %d completed trials", name, done)

    def _prepare(self) -> None:
        """Load the candidates from the study, or build them and store them there."""
        stored = self.study.user_attrs.get("space")
        if stored is None:
            space = self._build_space()
            stored = self.study.user_attrs.get("space")  # another process may have won
            if stored is None:
                self.study.set_user_attr("space", space.to_json())
                self.space = space
                return
        self.space = _Space.from_json(stored)

    def _build_space(self) -> _Space:
        ctx, n = self.ctx, self.settings.num_candidates
        demo_sets = self._demo_sets() if self.settings.fewshot else {
            p.id: [list(p.demos)] for p in self.program.predictors_of(ctx.module)}
        p = self.params
        switches = ProposerSwitches(p["program_aware"], p["data_aware"], p["tip_aware"],
                                    p["fewshot_aware"] and self.settings.fewshot)
        proposals = propose_instructions(self.program, ctx, n, demo_sets, switches,
                                         float(p["init_temperature"]), int(p["seed"]),
                                         {"pass": PASS, "stage": "propose"})
        return _Space(proposals.instructions, demo_sets, proposals.report)

    def _demo_sets(self) -> dict[str, list[list[Demo]]]:
        """n demo sets per predictor: current demos, then seeds −2, −1, 0, 1, ..."""
        ctx = self.ctx
        bparams = BootstrapParams(max_bootstrapped_demos=self.params["max_bootstrapped_demos"],
                                  max_labeled_demos=self.params["max_labeled_demos"],
                                  stratify=bool(self.params.get("stratify", True)))
        preds = self.program.predictors_of(ctx.module)
        sets: dict[str, list[list[Demo]]] = {p.id: [list(p.demos)] for p in preds}
        n_sets = max(self.settings.num_candidates - 1, 0)
        for i, seed in enumerate(range(-2, self.settings.num_candidates - 3), start=1):
            check_budget(ctx.budget)
            ctx.emit("demo sets", i, n_sets, label=f"seed={seed}")
            cand = _seeded_candidate(self.program, ctx, bparams, seed)
            for pred in cand.predictors_of(ctx.module):
                sets[pred.id].append(list(pred.demos))
        return sets

    # ------------------------------------------------------------ evaluation

    def _evaluate(self, prog: ProgramIR, examples: list[Example], **attribution: Any) -> float:
        from lmpc.eval.evaluate import evaluate  # evaluation pulls in the runtime lazily

        run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, **attribution})
        stage = f"trial {attribution['trial']}/{self.settings.num_trials}" \
            if "trial" in attribution else f"full evaluation ({attribution.get('combo', '')})"
        result = evaluate(prog, self.ctx.module, examples, self.ctx.metric, run_ctx,
                          self.ctx.threads, failure_score=0.0,
                          progress=self.ctx.eval_progress(stage, best=self._best()))
        stop_if_exceeded(self.ctx.budget)
        return float(result.score)

    def _full(self, params: dict[str, int], label: str) -> float:
        """Fully evaluate one combination and remember its score in the study."""
        assert self.space is not None
        check_budget(self.ctx.budget)
        score = self._evaluate(self.space.build(self.program, params), self.ctx.valset,
                               step="full_eval", combo=label)
        fulls = self._fulls()
        self.study.set_user_attr(f"full:{_combo_key(params)}", {
            "score": score, "params": params, "order": len(fulls), "after": self._finished()})
        return score

    def _finished(self) -> int:
        """Completed trials, the baseline not counted."""
        return sum(1 for t in _study.completed(self.study) if not t.user_attrs.get("baseline"))

    def _last_full_after(self) -> int:
        """How many trials had finished when the latest full evaluation was made."""
        return max((v.get("after", 0) for v in self._fulls().values()), default=0)

    def _fulls(self) -> dict[str, dict[str, Any]]:
        return {k[5:]: v for k, v in self.study.user_attrs.items() if k.startswith("full:")}

    def _baseline(self) -> None:
        """Fully evaluate the unchanged program and register it as the first trial."""
        import optuna

        assert self.space is not None
        if any(t.user_attrs.get("baseline") for t in _study.completed(self.study)):
            return
        params = {name: 0 for name in self.space.distributions()}
        score = self._full(params, "baseline")
        self.study.add_trial(optuna.trial.create_trial(
            params=params, distributions=self.space.distributions(), value=score,
            user_attrs={"baseline": True, "full_score": score}))
        self._event(0, score)

    def _trials(self) -> None:
        """Ask, evaluate on a minibatch (or fully), tell — until the study has enough."""
        assert self.space is not None
        dists = self.space.distributions()
        target = self.settings.num_trials + 1  # + the baseline
        while True:
            done, running = _study.counts(self.study)
            if done + running >= target:
                break
            check_budget(self.ctx.budget)
            trial = _study.ask_unless_full(self.study, dists, target)
            if trial is None:
                break
            with _study.heartbeat(self.study, trial):
                score = self._run_trial(trial)
                self.study.tell(trial, score)
            self._event(trial.number, score)
            if self.minibatch and self._finished() % int(
                    self.params["minibatch_full_eval_steps"]) == 0:
                self._full_eval_best()

    def _run_trial(self, trial: Any) -> float:
        assert self.space is not None
        params = dict(trial.params)
        prog = self.space.build(self.program, params)
        if not self.minibatch:
            known = self._fulls().get(_combo_key(params))
            score = known["score"] if known else self._full(params, f"trial {trial.number}")
            trial.set_user_attr("full_score", score)
            return score
        rng = rng_for(int(self.params["seed"]), f"minibatch:{trial.number}")
        picked = sorted(rng.sample(range(len(self.ctx.valset)), self.batch_size))
        trial.set_user_attr("minibatch", picked)
        return self._evaluate(prog, [self.ctx.valset[i] for i in picked],
                              step="trial", trial=trial.number)

    def _full_eval_best(self) -> None:
        """Fully evaluate the best-mean-minibatch combination that has no full score yet."""
        fulls = self._fulls()
        groups: dict[str, list[float]] = {}
        params_of: dict[str, dict[str, int]] = {}
        for t in _study.completed(self.study):
            if t.user_attrs.get("baseline") or t.value is None:
                continue
            key = _combo_key(t.params)
            groups.setdefault(key, []).append(float(t.value))
            params_of.setdefault(key, dict(t.params))
        pending = [(sum(v) / len(v), k) for k, v in groups.items() if k not in fulls]
        if not pending:
            return
        best_key = max(pending, key=lambda sk: sk[0])[1]  # first of equals: earliest trial
        self._full(params_of[best_key], f"best minibatch {best_key}")

    def _best(self) -> float | None:
        """The best full-evaluation score so far (None before the baseline's)."""
        if self.study is None:
            return None
        return max((v["score"] for v in self._fulls().values()), default=None)

    def _event(self, number: int, score: float) -> None:
        self.ctx.emit("trial", number, self.settings.num_trials,
                      label="baseline" if number == 0 else f"trial {number}", score=score,
                      best=self._best(), finished=True)

    # ------------------------------------------------------------ result

    def _result(self) -> PassResult:
        report = self.report
        if self.space is None or self.study is None:
            return PassResult(program=self.program.model_copy(deep=True), report=report)
        report["instructions"] = self.space.instructions
        report["demo_sets"] = {pid: [len(s) for s in sets]
                               for pid, sets in self.space.demo_sets.items()}
        by = class_field(self.program, self.ctx.module, self.ctx.metric_field,
                         self.ctx.trainset) if self.params.get("stratify", True) else None
        if by:
            report["demo_set_classes"] = {pid: [_classes(s, by) for s in sets]
                                          for pid, sets in self.space.demo_sets.items()}
        report["proposer"] = self.space.proposer
        fulls = self._fulls()
        report["trials"] = [_trial_row(t, fulls) for t in _study.completed(self.study)]
        ranked = sorted(fulls.items(), key=lambda kv: (-kv[1]["score"], kv[1]["order"]))
        report["full_evals"] = [{"params": _readable(v["params"]), "score": v["score"]}
                                for _, v in sorted(fulls.items(), key=lambda kv: kv[1]["order"])]
        if not ranked:
            return PassResult(program=self.program.model_copy(deep=True), report=report)
        candidates = [Candidate(self.space.build(self.program, v["params"]), v["score"],
                                f"mipro_v2 {_combo_key(v['params'])}") for _, v in ranked]
        report["best"] = {"params": _readable(ranked[0][1]["params"]),
                          "score": ranked[0][1]["score"]}
        baseline = next((v["score"] for k, v in fulls.items()
                         if all(x == 0 for x in v["params"].values())), None)
        report["baseline_score"] = baseline
        return PassResult(program=candidates[0].program, candidates=candidates, report=report)


def _seeded_candidate(program: ProgramIR, ctx: PassContext, params: BootstrapParams,
                      seed: int) -> ProgramIR:
    """Random search's candidate for ``seed`` ≥ −2, built from the few-shot passes' parts.

    The same rng tags as ``bootstrap_random_search`` keep the shuffles (and so the cached
    teacher calls) the same for the same seed.
    """
    attribution = {"pass": PASS, "stage": "bootstrap", "candidate": seed}
    if seed == -2:
        return labeled_candidate(program, ctx, params)
    if seed == -1 or params.max_bootstrapped_demos == 0:
        return bootstrap(program, ctx, ctx.trainset, params, attribution)[0]
    trainset = list(ctx.trainset)
    rng = rng_for(ctx.seed, f"candidate:{seed}")
    rng.shuffle(trainset)
    size = rng.randint(1, params.max_bootstrapped_demos)
    return bootstrap(program, ctx, trainset, replace(params, max_bootstrapped_demos=size),
                     attribution)[0]


def _classes(demos: list[Demo], field: str) -> dict[str, int]:
    """Demos per class of ``field`` (for the report)."""
    counts: dict[str, int] = {}
    for d in demos:
        if field in d.values:
            key = str(d.values[field])
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _combo_key(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


def _readable(params: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{"P.x:instruction": 2}`` → ``{"P.x": {"instruction": 2}}``."""
    out: dict[str, dict[str, int]] = {}
    for name, value in sorted(params.items()):
        pid, _, what = name.rpartition(":")
        out.setdefault(pid, {})[what] = int(value)
    return out


def _trial_row(trial: Any, fulls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    full = fulls.get(_combo_key(trial.params))
    baseline = bool(trial.user_attrs.get("baseline"))
    return {
        "number": trial.number,
        "params": _readable(trial.params),
        "baseline": baseline,
        "minibatch_score": None if baseline or "minibatch" not in trial.user_attrs
        else trial.value,
        "minibatch_size": len(trial.user_attrs.get("minibatch", [])) or None,
        "full_score": full["score"] if full else None,
    }


def _model_of(run_ctx: Any) -> str | None:
    """The task model of a run context (a study must not mix trials of two models)."""
    lm = getattr(run_ctx, "task_lm", None)
    return getattr(lm, "model", None)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- projections


def estimate(work: Workload, **given: Any) -> Estimate:
    """Projected new LM calls (every bootstrap attempt succeeding, every proposal kept).

    Bootstrapping: the demo sets' walks (random search's seed scheme with this pass's
    ``seed``); with the cache on, an example already walked is free. Proposing: see
    ``proposal_calls`` (up to ``1 + MAX_REASKS`` times that when proposals are dropped).
    Search: the baseline's full evaluation, a minibatch per trial and the periodic full
    evaluations — with the cache on, only the valset rows not run before for that
    combination (``_search_rows``); without it, every one.
    """
    params = {**DEFAULTS, **given}
    preds = work.program.predictors_of(work.module)
    settings = resolve_settings(len(preds), params["auto"], params["num_candidates"],
                                params["num_trials"], params["max_bootstrapped_demos"],
                                params["max_labeled_demos"])
    val = placeholder_rows(work.n_val)
    train, val = split_data(list(work.trainset), val, settings.val_cap, int(params["seed"]))
    part = replace(work, trainset=train, n_val=len(val), seed=int(params["seed"]))
    per_run = sum(predictor_calls(p) for p in preds) + work.scoring_calls
    n = settings.num_candidates
    walks = _walks(len(train), n, params, settings.fewshot)
    by = class_field(work.program, work.module, work.metric_field, train) \
        if params["stratify"] else None
    boot = walked(part, walks, by)
    worst_boot = len(train) * (1 if work.cache else len(walks)) if walks else 0
    switches = ProposerSwitches(params["program_aware"], params["data_aware"],
                                params["tip_aware"], params["fewshot_aware"])
    propose = proposal_calls(len(train), len(preds), n, switches)
    combos = (n * (n if settings.fewshot else 1)) ** len(preds)
    rows, fulls = _search_rows(len(val), settings.num_trials, combos, params, work.cache)
    reasks = (n - 1) * len(preds) * MAX_REASKS
    # its valset (the val split, capped, or the end of the trainset when there is none)
    # is part of the split the build scores first, so those rows are cached there
    return Estimate(calls=(boot + rows) * per_run + propose,
                    max_calls=(worst_boot + rows) * per_run + propose + reasks,
                    candidates=1 + fulls, val_rows=len(val), candidates_on_val=True,
                    baseline_rows=len(val))


DEFAULTS: dict[str, Any] = {
    "auto": "light", "num_candidates": None, "num_trials": None,
    "max_bootstrapped_demos": 4, "max_labeled_demos": 4, "minibatch": True,
    "minibatch_size": 35, "minibatch_full_eval_steps": 5, "seed": 9, "program_aware": True,
    "data_aware": True, "tip_aware": True, "fewshot_aware": True, "stratify": True,
}


def _search_rows(n_val: int, trials: int, combos: int, params: dict[str, Any],
                 cache: bool) -> tuple[int, int]:
    """(valset rows the search runs, full evaluations besides the baseline's).

    See ``_visited`` for how many combinations the trials reach. With the cache on, a
    combination's distinct minibatch rows follow from its share of the trials, the
    baseline's rows are all cached by its full evaluation, and a full evaluation runs the
    rows its combination's minibatches did not cover.
    """
    others = max(combos - 1, 0)
    if not (params["minibatch"] and params["minibatch_size"] < n_val):
        # every trial is a full evaluation, and a combination is scored once: TPE, seeing
        # the full scores, re-picks known ones more than uniform draws would
        visited = _visited(others, combos, min(trials, TPE_STARTUP))
        return round(n_val * (1 + visited)), round(visited)
    visited = _visited(others, combos, trials)
    steps = int(params["minibatch_full_eval_steps"])
    fulls = min(math.ceil(trials / steps), visited)
    size = int(params["minibatch_size"])
    if not cache:
        return round(n_val + trials * size + fulls * n_val), round(fulls)
    q = size / n_val
    # A combination's first minibatch is all new rows. TPE spends the trials beyond the
    # combinations it reaches on the best one so far, whose coverage soon saturates; the
    # full evaluations are of that one (nearly all cached) and of once-tried ones.
    repeats = max(trials - visited, 0.0)
    missed = (1 - q) ** (1 + repeats)  # rows of the favourite no minibatch covered
    trial_rows = visited * n_val * q + n_val * ((1 - q) - missed)
    full_rows = (missed + max(fulls - 1, 0) * (1 - q)) * n_val if fulls else 0.0
    return round(n_val + trial_rows + full_rows), round(fulls)


#: Optuna's TPE sampler draws its first trials at random (``n_startup_trials``).
TPE_STARTUP = 10
TPE_NEW = 0.8


def _visited(others: int, combos: int, trials: int) -> float:
    """Expected combinations besides the baseline that the trials reach.

    The first ``TPE_STARTUP`` trials are uniform draws (a combination is missed with
    probability (1 − 1/C)^t); after them about ``TPE_NEW`` of TPE's trials go to a
    combination not scored yet, while any are left. (Measured on the dry-run grid of
    ``tests/test_dry_run_grid.py``: with more trials than combinations TPE reaches nearly
    all of them, not the 1 − e^(−T/C) of uniform draws.)
    """
    if not combos:
        return 0.0
    startup = min(trials, TPE_STARTUP)
    seen = others * (1 - (1 - 1 / combos) ** startup)
    return seen + min(others - seen, TPE_NEW * max(trials - startup, 0))


def _walks(n_train: int, n: int, params: dict[str, Any], fewshot: bool
           ) -> list[tuple[list[int], int]]:
    """The teacher walks of the demo sets: (trainset order, demos wanted)."""
    max_boot = int(params["max_bootstrapped_demos"])
    if not fewshot or max_boot == 0 or n < 3:
        return []
    walks = [(list(range(n_train)), max_boot)]  # seed −1: the trainset in order
    seed = int(params["seed"])
    for s in range(0, n - 3):
        order = list(range(n_train))
        rng = rng_for(seed, f"candidate:{s}")
        rng.shuffle(order)
        walks.append((order, rng.randint(1, max_boot)))
    return walks
