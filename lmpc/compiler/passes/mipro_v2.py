"""``mipro_v2``: propose instructions, bootstrap demo sets, search their combinations.

Parameters (defaults): ``auto=light, num_candidates=none, num_trials=none,
max_bootstrapped_demos=4, max_labeled_demos=4, minibatch=true, minibatch_size=35,
minibatch_full_eval_steps=5, seed=9, init_temperature=1.0, program_aware=true,
data_aware=true, tip_aware=true, fewshot_aware=true, stratify=true, parallel_trials=1,
storage=none``
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
3. Search with Optuna's multivariate TPE sampler: each trial picks an instruction and
   a demo set per predictor and scores the program on a seeded random minibatch of the
   valset. The unchanged program is fully evaluated first and registered as trial 0;
   every ``minibatch_full_eval_steps`` trials and at the end, the combination with the
   best mean minibatch score that lacks a full evaluation gets one. The program with
   the best full score is returned.

Trial ``i`` is planned by a TPE sampler seeded with (seed, i) and fitted on trials
``0 .. i − parallel_trials`` (none while those are fewer than TPE's 10 start-up trials,
which it draws at random): with the default 1 each trial sees every earlier one (the
sequential search); with ``parallel_trials = N`` up to N trials can run at once, in any
number of processes, and the result is the same however many run it (docs/distributed.md).

The study is stored (``storage``: None → ``optuna.sqlite3`` in the lmpc cache folder,
a path, an Optuna RDB URL, or ``"memory"``) under a name derived from the program, data,
parameters and seed (or ``lmpc build --study NAME``), as units of work numbered by slot
(``_units``): an interrupted build resumes its completed units, several processes
(``lmpc build --worker``) work one study together, and the pass's trajectory and LM
work are read back from the study, so every process that finishes it writes the same
artifact.

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
import time
import warnings
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
from lmpc.compiler.passes._units import USAGE_KEYS, Units, work_between, work_so_far
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
    parallel_trials: int = 1,
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
    """One MIPROv2 run: its units of work on the study, then the result from the study.

    The study's units, in slot order (``schedule``): the candidates (demo sets and
    proposed instructions, stored on the study), the baseline's full evaluation, each
    trial, and every ``minibatch_full_eval_steps`` trials (and at the end) a full
    evaluation. Trial ``i`` picks its combination with a TPE sampler seeded by (seed,
    i) and fitted on the trials numbered up to ``i − parallel_trials`` (waiting for
    them): so trial ``i``'s combination depends on the seed and the earlier results,
    never on which process runs it or when. A full evaluation waits for every unit
    before it and picks the best-mean-minibatch combination that has no full score.
    """

    def __init__(self, program: ProgramIR, ctx: PassContext, settings: Settings,
                 params: dict[str, Any], report: dict[str, Any]) -> None:
        self.program = program
        self.ctx = ctx
        self.settings = settings
        self.params = params
        self.report = report
        self.space: _Space | None = None
        self.study: Any = None
        self.units: Any = None
        n_val = len(ctx.valset)
        self.minibatch = bool(params["minibatch"]) and params["minibatch_size"] < n_val
        self.batch_size = min(int(params["minibatch_size"]), n_val)
        self.lag = max(int(params.get("parallel_trials") or 1), 1)
        self.plan = schedule(settings.num_trials, int(params["minibatch_full_eval_steps"]),
                             self.minibatch)
        self.slot_of_trial = {n: s for s, (kind, n) in enumerate(self.plan)
                              if kind in (BASELINE, TRIAL)}

    def run(self) -> PassResult:
        try:
            self._open()
            self.units = Units(self.study, len(self.plan))
            self.units.drive(self._work)
            if self.ctx.study is not None and self.ctx.study.worker:
                self.report["units_run"] = self.units.ran  # a worker's report only
        except BudgetExceeded:
            self.report["stopped"] = "budget"
            log.info("mipro_v2: budget reached; keeping the best program so far")
        return self._result()

    # ------------------------------------------------------------ setup

    def _open(self) -> None:
        program = self.program.model_dump(mode="json", exclude={"base_dir", "sources"})
        key = {
            "layout": 2,  # units by slot (studies of earlier versions are not resumed)
            "program": _hash(json.dumps(_study.portable(program), sort_keys=True)),
            "module": self.ctx.module,
            "data": _hash(json.dumps([[e.values for e in self.ctx.trainset],
                                      [e.values for e in self.ctx.valset]],
                                     sort_keys=True, default=str)),
            "params": {k: v for k, v in self.params.items() if k != "storage"},
            "lms": [_model_of(c) for c in (self.ctx.run_ctx, self.ctx.prompt_ctx,
                                           self.ctx.teacher_ctx)],
        }
        seed = int(self.params["seed"])
        name, storage = _study.locate(PASS, key, seed, self.ctx.study,
                                      self.params["storage"], self.ctx.run_ctx)
        self.study = _study.open_study(name, storage, _study.search_key(key))
        # (how many units were resumed is logged, not reported: the artifact of a
        # finished build must not depend on whether it was interrupted on the way)
        self.report["study"] = {"name": name}
        finished = sum(1 for t in self.study.get_trials(deepcopy=False)
                       if t.state.is_finished() and t.state.name == "COMPLETE")
        if finished:
            log.info("mipro_v2: joining study %s with %d completed units", name, finished)

    def _load_space(self) -> _Space:
        if self.space is None:
            self.space = _Space.from_json(self.study.user_attrs["space"])
        return self.space

    def _build_space(self, ctx: PassContext) -> _Space:
        n = self.settings.num_candidates
        demo_sets = self._demo_sets(ctx) if self.settings.fewshot else {
            p.id: [list(p.demos)] for p in self.program.predictors_of(ctx.module)}
        p = self.params
        switches = ProposerSwitches(p["program_aware"], p["data_aware"], p["tip_aware"],
                                    p["fewshot_aware"] and self.settings.fewshot)
        proposals = propose_instructions(self.program, ctx, n, demo_sets, switches,
                                         float(p["init_temperature"]), int(p["seed"]),
                                         {"pass": PASS, "stage": "propose"})
        return _Space(proposals.instructions, demo_sets, proposals.report)

    def _demo_sets(self, ctx: PassContext) -> dict[str, list[list[Demo]]]:
        """n demo sets per predictor: current demos, then seeds −2, −1, 0, 1, ..."""
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

    # ------------------------------------------------------------ one unit

    def _work(self, unit: Any) -> float:
        """Run the unit in ``unit.slot`` (waiting first for the units it depends on)."""
        kind, n = self.plan[unit.slot]
        done = self._wait_for(unit)
        check_budget(self.ctx.budget)
        before = work_so_far(self.ctx)
        started = time.time()
        attrs: dict[str, Any] = {"kind": kind, "n": n}
        if kind == SPACE:
            space = self._build_space(self.ctx)
            self.study.set_user_attr("space", space.to_json())
            self.space, value = space, 0.0
        elif kind == BASELINE:
            attrs["params"] = {name: 0 for name in self._load_space().distributions()}
            value = attrs["full_score"] = self._full(attrs["params"], "baseline")
            attrs["examples"] = len(self.ctx.valset)
        elif kind == TRIAL:
            attrs["params"] = self._plan_trial(n, done)
            value = self._run_trial(n, attrs, done)
        else:
            value = self._full_eval_best(n, unit.slot, done, attrs)
        spent = work_between(before, work_so_far(self.ctx))
        if spent is not None:
            attrs["usage"] = spent
        unit.trial.set_user_attr("unit", attrs)
        # when it ran, after its wait (for bench/distributed_workers.py; not reported)
        unit.trial.set_user_attr("ran", [started, time.time()])
        if kind in (BASELINE, TRIAL):
            self.ctx.emit("trial", n, self.settings.num_trials,
                          label="baseline" if kind == BASELINE else f"trial {n}",
                          score=value, best=self._best(self.units.done(), unit.slot) or value,
                          finished=True)
        return float(value)

    def _wait_for(self, unit: Any) -> dict[int, Any]:
        """The completed units, once every unit ``unit`` depends on is among them."""
        kind, n = self.plan[unit.slot]
        if kind == SPACE:
            needed: list[int] = []
        elif kind == BASELINE:
            needed = [0]
        elif kind == TRIAL:
            needed = [0] + [self.slot_of_trial[m] for m in self._seen_by(n)]
        else:
            needed = [0, 1] + [s for s, (k, m) in enumerate(self.plan[:unit.slot])
                               if k == FULL or (k == TRIAL and m <= self._full_sees(n))]
        return self.units.wait(lambda done: all(s in done for s in needed), unit.slot,
                               self._work)

    def _seen_by(self, n: int) -> range:
        """The trials trial ``n`` is planned from: ``0 .. n − lag``, or none while they
        are fewer than TPE's start-up trials (it draws at random until then, so
        waiting for them would change nothing)."""
        last = n - self.lag
        return range(0, last + 1) if last + 1 >= TPE_STARTUP else range(0)

    def _full_sees(self, after: int) -> int:
        """The last trial a full evaluation after trial ``after`` chooses among: ``after
        − lag + 1`` (those trials' successors may still run), all of them at the end."""
        if after == self.settings.num_trials:
            return after
        return after - self.lag + 1

    def _plan_trial(self, n: int, done: dict[int, Any]) -> dict[str, int]:
        """Trial ``n``'s combination: TPE seeded by (seed, n) on ``_seen_by(n)``."""
        import optuna

        dists = self._load_space().distributions()
        seen_by = self._seen_by(n)
        seen = sorted((t.user_attrs["unit"]["n"], t) for t in done.values()
                      if t.user_attrs.get("unit", {}).get("kind") in (BASELINE, TRIAL)
                      and t.user_attrs["unit"]["n"] in seen_by)
        seed = rng_for(int(self.params["seed"]), f"plan:{n}").randrange(2**31)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
            scratch = optuna.create_study(direction="maximize", sampler=sampler)
            for _, t in seen:
                scratch.add_trial(optuna.trial.create_trial(
                    params=t.user_attrs["unit"]["params"], distributions=dists,
                    value=t.value))
            return {k: int(v) for k, v in scratch.ask(dists).params.items()}

    def _run_trial(self, n: int, attrs: dict[str, Any], done: dict[int, Any]) -> float:
        space = self._load_space()
        params = attrs["params"]
        if not self.minibatch:
            # a combination already fully scored by a trial this one waited for is not
            # scored again (which trials those are depends only on n)
            known = self._fulls(done, self.slot_of_trial[n]).get(_combo_key(params))
            score = known["score"] if known else self._full(params, f"trial {n}")
            attrs["full_score"] = score
            attrs["examples"] = 0 if known else len(self.ctx.valset)
            return score
        rng = rng_for(int(self.params["seed"]), f"minibatch:{n}")
        picked = sorted(rng.sample(range(len(self.ctx.valset)), self.batch_size))
        attrs["minibatch"] = picked
        attrs["examples"] = len(picked)
        return self._evaluate(space.build(self.program, params),
                              [self.ctx.valset[i] for i in picked], step="trial", trial=n)

    def _full_eval_best(self, after: int, slot: int, done: dict[int, Any],
                        attrs: dict[str, Any]) -> float:
        """Fully evaluate the best-mean-minibatch combination of trials ``1 ..
        _full_sees(after)`` that has no full score yet (none left: the unit does nothing)."""
        fulls = self._fulls(done, slot)
        groups: dict[str, list[float]] = {}
        params_of: dict[str, dict[str, int]] = {}
        for t in self._trial_units(done):
            unit = t.user_attrs["unit"]
            if unit["kind"] != TRIAL or unit["n"] > self._full_sees(after):
                continue
            key = _combo_key(unit["params"])
            groups.setdefault(key, []).append(float(t.value))
            params_of.setdefault(key, dict(unit["params"]))
        pending = [(sum(v) / len(v), k) for k, v in groups.items() if k not in fulls]
        if not pending:
            attrs["examples"] = 0
            return 0.0
        best_key = max(pending, key=lambda sk: sk[0])[1]  # first of equals: earliest trial
        attrs["params"] = params_of[best_key]
        attrs["full_score"] = self._full(params_of[best_key], f"best minibatch {best_key}")
        attrs["examples"] = len(self.ctx.valset)
        return float(attrs["full_score"])

    # ------------------------------------------------------------ evaluation

    def _evaluate(self, prog: ProgramIR, examples: list[Example], **attribution: Any) -> float:
        from lmpc.eval.evaluate import evaluate  # evaluation pulls in the runtime lazily

        run_ctx = attributed(self.ctx.run_ctx, **{"pass": PASS, **attribution})
        stage = f"trial {attribution['trial']}/{self.settings.num_trials}" \
            if "trial" in attribution else f"full evaluation ({attribution.get('combo', '')})"
        result = evaluate(prog, self.ctx.module, examples, self.ctx.metric, run_ctx,
                          self.ctx.threads, failure_score=0.0,
                          progress=self.ctx.eval_progress(stage))
        stop_if_exceeded(self.ctx.budget)
        return float(result.score)

    def _full(self, params: dict[str, int], label: str) -> float:
        check_budget(self.ctx.budget)
        return self._evaluate(self._load_space().build(self.program, params),
                              self.ctx.valset, step="full_eval", combo=label)

    # ------------------------------------------------------------ reading the study

    def _trial_units(self, done: dict[int, Any]) -> list[Any]:
        """Completed units with a combination, in slot order."""
        return [done[s] for s in sorted(done) if "params" in done[s].user_attrs.get("unit", {})]

    def _fulls(self, done: dict[int, Any], before: int | None = None) -> dict[str, dict]:
        """Combination → its first full score (and slot), from units before ``before``."""
        out: dict[str, dict[str, Any]] = {}
        for slot in sorted(done):
            unit = done[slot].user_attrs.get("unit", {})
            if before is not None and slot >= before:
                break
            if "full_score" in unit and "params" in unit:
                out.setdefault(_combo_key(unit["params"]), {
                    "score": float(unit["full_score"]), "params": unit["params"],
                    "slot": slot})
        return out

    def _best(self, done: dict[int, Any], upto: int) -> float | None:
        """The best full score of the units up to slot ``upto``."""
        scores = [v["score"] for v in self._fulls(done, upto + 1).values()]
        return max(scores, default=None)

    # ------------------------------------------------------------ result

    def _result(self) -> PassResult:
        report = self.report
        if self.study is None or "space" not in self.study.user_attrs:
            return PassResult(program=self.program.model_copy(deep=True), report=report)
        space = self._load_space()
        done = self.units.done() if self.units is not None else {}
        report["instructions"] = space.instructions
        report["demo_sets"] = {pid: [len(s) for s in sets]
                               for pid, sets in space.demo_sets.items()}
        by = class_field(self.program, self.ctx.module, self.ctx.metric_field,
                         self.ctx.trainset) if self.params.get("stratify", True) else None
        if by:
            report["demo_set_classes"] = {pid: [_classes(s, by) for s in sets]
                                          for pid, sets in space.demo_sets.items()}
        report["proposer"] = space.proposer
        fulls = self._fulls(done)
        trials = [t for t in self._trial_units(done)
                  if t.user_attrs["unit"]["kind"] in (BASELINE, TRIAL)]
        report["trials"] = [_trial_row(t, fulls) for t in trials]
        report["full_evals"] = [{"params": _readable(v["params"]), "score": v["score"]}
                                for v in sorted(fulls.values(), key=lambda v: v["slot"])]
        usage, trajectory = self._work_record(done)
        if "stopped" in report:  # the unit cut short is in this process's meter only
            usage = None
        ranked = sorted(fulls.values(), key=lambda v: (-v["score"], v["slot"]))
        if not ranked:
            return PassResult(program=self.program.model_copy(deep=True), report=report,
                              usage=usage, trajectory=trajectory)
        candidates = [Candidate(space.build(self.program, v["params"]), v["score"],
                                f"mipro_v2 {_combo_key(v['params'])}") for v in ranked]
        report["best"] = {"params": _readable(ranked[0]["params"]),
                          "score": ranked[0]["score"]}
        baseline = next((v["score"] for v in fulls.values()
                         if all(x == 0 for x in v["params"].values())), None)
        report["baseline_score"] = baseline
        return PassResult(program=candidates[0].program, candidates=candidates, report=report,
                          usage=usage, trajectory=trajectory)

    def _work_record(self, done: dict[int, Any]
                     ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The pass's LM work and trajectory summed over the study's units in slot order
        (whichever processes ran them); usage None when a unit has no record of it."""
        total = {k: 0 for k in USAGE_KEYS}
        total["cost_usd"] = 0.0
        examples, trajectory, complete = 0, [], True
        for slot in sorted(done):
            unit = done[slot].user_attrs.get("unit", {})
            if "usage" not in unit:
                complete = False
            for k in USAGE_KEYS:
                total[k] += unit.get("usage", {}).get(k, 0)
            examples += int(unit.get("examples", 0))
            if unit.get("kind") in (BASELINE, TRIAL):
                trajectory.append({
                    "label": "baseline" if unit["kind"] == BASELINE else f"trial {unit['n']}",
                    "score": float(done[slot].value), "best": self._best(done, slot),
                    "lm_requests": int(total["lm_requests"]),
                    "tokens": int(total["prompt_tokens"] + total["completion_tokens"]),
                    "examples": examples})
        total["cost_usd"] = round(total["cost_usd"], 9)
        return (total if complete else None), trajectory


SPACE, BASELINE, TRIAL, FULL = "space", "baseline", "trial", "full"


def schedule(num_trials: int, steps: int, minibatch: bool) -> list[tuple[str, int]]:
    """The study's units in slot order, as (kind, n): n is the trial's number (the
    baseline is trial 0), or for a full evaluation the trials it follows.

    >>> schedule(4, 2, True)[2:]
    [('trial', 1), ('trial', 2), ('full', 2), ('trial', 3), ('trial', 4), ('full', 4)]
    >>> schedule(3, 2, True)[-2:]
    [('trial', 3), ('full', 3)]
    >>> schedule(2, 5, False)
    [('space', 0), ('baseline', 0), ('trial', 1), ('trial', 2)]
    """
    units = [(SPACE, 0), (BASELINE, 0)]
    for i in range(1, num_trials + 1):
        units.append((TRIAL, i))
        if minibatch and (i % steps == 0 or i == num_trials):
            units.append((FULL, i))
    return units


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
    unit = trial.user_attrs["unit"]
    full = fulls.get(_combo_key(unit["params"]))
    baseline = unit["kind"] == BASELINE
    return {
        "number": unit["n"],
        "params": _readable(unit["params"]),
        "baseline": baseline,
        "minibatch_score": None if baseline or "minibatch" not in unit else trial.value,
        "minibatch_size": len(unit.get("minibatch", [])) or None,
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
    "parallel_trials": 1,
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
        # every trial is a full evaluation, and a combination is scored once (measured
        # over seeds 0-5 on tests/test_dry_run_grid.py: as many new combinations as
        # with minibatches)
        visited = _visited(others, combos, trials)
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
