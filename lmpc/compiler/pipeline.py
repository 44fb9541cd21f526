"""The pass driver: run an ``optimize`` block's passes in order over its data.

``PASSES`` maps every pass name to its function, imported from
``lmpc.compiler.passes.<name>`` only when used. ``run_optimize`` loads and splits the
dataset, scores the unoptimized program on val and test (on train and test when there is
no val split, as DSPy scores on its trainset without a valset), runs the passes (each
starts from the previous result and sees the previous pass's candidates), then scores the
result. Only the train and val splits ever reach a pass; test is for the final report.

Budget: the optimize block's caps apply to the passes; the before/after evaluations
are reporting and are not counted against them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lmpc.compiler.budget import BudgetedClient, BudgetTracker, MeteredClient
from lmpc.compiler.passes.base import (
    BudgetExceeded,
    BuildNote,
    BuildWarning,
    Candidate,
    Example,
    Pass,
    PassContext,
    PassFinished,
    PassResult,
    PassStarted,
    Progress,
    StudyOptions,
)
from lmpc.eval.data import dataset_files, load_splits
from lmpc.eval.evaluate import EvalResult, evaluate
from lmpc.eval.metrics import Metric, build_metric, reward_fns_for
from lmpc.files import file_sha256
from lmpc.ir import LMIR, OptimizeIR, ProgramIR
from lmpc.runtime.trust import Trust

OWN_PROGRAM = Trust(allow_tools=True)  # a program the calling code built itself

log = logging.getLogger("lmpc")

PASS_NAMES: tuple[str, ...] = (
    "labeled_fewshot",
    "bootstrap_fewshot",
    "bootstrap_random_search",
    "knn_fewshot",
    "copro",
    "mipro_v2",
    "simba",
    "gepa",
    "bootstrap_finetune",
    "better_together",
    "ensemble",
)

ProgressFn = Callable[[Any], None]  # receives lmpc.compiler.passes.base events


class PipelineError(Exception):
    """A pipeline that cannot run (unknown or unavailable pass, bad parameters, no data)."""


class PassRegistry(Mapping[str, Pass]):
    """Pass name -> pass function; each module is imported on first use."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._loaded: dict[str, Pass] = {}

    def __getitem__(self, name: str) -> Pass:
        if name not in self._names:
            raise PipelineError(f"unknown optimizer pass {name!r}")
        if name not in self._loaded:
            self._loaded[name] = getattr(self.module(name), name)
        return self._loaded[name]

    def module(self, name: str) -> Any:
        try:
            return importlib.import_module(f"lmpc.compiler.passes.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lmpc.compiler.passes.{name}":
                raise
            raise PipelineError(
                f"optimizer pass {name!r} is not available in this version of lmpc"
            ) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


PASSES = PassRegistry(PASS_NAMES)


@dataclass
class PassRun:
    """What one pass did: its record for the artifact."""

    name: str
    params: dict[str, Any]
    seed: int
    candidates: list[Candidate] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    # every scored candidate or trial, in order: its score, the best so far and the
    # pass's LM work at that moment (what `lmpc report` plots)
    trajectory: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BuildResult:
    """The optimized program, its scores before and after, and the provenance."""

    program: ProgramIR
    module: str
    metric: str
    task_lm: LMIR
    seed: int
    splits: dict[str, int]
    datasets: list[dict[str, Any]]
    before: dict[str, EvalResult | None]
    after: dict[str, EvalResult | None]
    passes: list[PassRun]
    usage: dict[str, Any]
    budget_stop: str | None = None
    examples: dict[str, list[Example]] = field(default_factory=dict)  # the scored splits
    original: dict[str, Any] = field(default_factory=dict)  # predictor id -> PredictorIR

    @property
    def scores(self) -> dict[str, dict[str, float | None]]:
        """``{"val": {"before", "after"}, "test": {...}}``; None for an empty split.

        With no val split the program is scored on the trainset instead (as DSPy does
        when it has no valset), reported under ``"train"``.
        """
        splits = [s for s in ("train", "val", "test") if s != "train" or s in self.before]
        return {split: {"before": _score(self.before.get(split)),
                        "after": _score(self.after.get(split))} for split in splits}


def _score(result: EvalResult | None) -> float | None:
    return result.score if result is not None and result.n else None


# ---------------------------------------------------------------- LMs and contexts


def resolve_lm(program: ProgramIR, name_or_model: str) -> LMIR:
    """A declared LM by name, or an ad-hoc LM for a litellm model string."""
    if name_or_model in program.lms:
        return program.lms[name_or_model]
    return LMIR(name=name_or_model, model=name_or_model)


def task_lm_for(program: ProgramIR, optimize: OptimizeIR | None, override: str | None) -> LMIR:
    """The task LM: ``--lm``, else the optimize block's ``lm`` role, else the runtime's
    default (the first LM declared, else the embedded model)."""
    from lmpc.runtime.execute import default_task_lm

    if override:
        return resolve_lm(program, override)
    if optimize is not None and "lm" in optimize.lms:
        return resolve_lm(program, optimize.lms["lm"])
    return default_task_lm(program)


def make_run_ctx(program: ProgramIR, client: Any, task_lm: LMIR, *,
                 trust: Trust | None = None, metric_ctx: bool = True) -> Any:
    """A ``RunContext`` for ``program`` with its LMs, tools and reward functions.

    ``trust`` is what the runner allows (the CLI passes its own); None is a caller's own
    program: its Python code may run, its files must lie under its ``base_dir``."""
    from lmpc.runtime.context import RunContext

    lms = {**program.lms, task_lm.name: task_lm}
    ctx = RunContext(client=client, program_lms=lms, task_lm=task_lm,
                     base_dir=Path(program.base_dir), trust=trust or OWN_PROGRAM)
    if metric_ctx:
        rewards = reward_fns_for(program, ctx.derive(attribution={"role": "reward"}))
        ctx = ctx.derive(reward_fns=rewards)
    return ctx


def _role_ctx(program: ProgramIR, optimize: OptimizeIR, base: Any, role: str) -> Any:
    name = optimize.lms.get(role)
    return base.derive(task_lm=resolve_lm(program, name)) if name else base


# ---------------------------------------------------------------- the driver


def run_optimize(
    program: ProgramIR,
    optimize: OptimizeIR,
    *,
    client: Any,
    seed: int | None = None,
    progress: ProgressFn | None = None,
    lm_override: str | None = None,
    threads: int | None = None,
    trust: Trust | None = None,
    study: StudyOptions | None = None,
) -> Any:
    """Run ``optimize``'s pipeline on ``program``; return the result and its provenance.

    ``trust`` is the runner's (see ``make_run_ctx``): it governs the Python code the
    program imports and the files it reads, the dataset included. ``study`` names the
    studies the distributed passes share with other processes; with ``study.worker``
    this process only takes work: it runs the passes up to the last distributed one,
    scores nothing, and returns a ``WorkerResult`` (no artifact is made of it)."""
    emit = progress or (lambda event: None)
    trust = trust or OWN_PROGRAM
    seed = optimize.seed if seed is None else seed
    threads = threads or optimize.threads or 4
    module, metric_ir, dataset = _parts(program, optimize)
    task_lm = task_lm_for(program, optimize, lm_override)
    program = program.model_copy(update={"lms": {**program.lms, task_lm.name: task_lm}})
    splits = _load_data(program, module, dataset, trust, optimize)
    sizes = {name: len(rows) for name, rows in splits.items()}
    if task_lm.model.startswith("local/") and threads > 1:
        emit(BuildNote(f"{task_lm.model} runs one call at a time: threads: {threads} "
                       "overlaps only the work around its calls"))
    if study is not None and study.worker:
        return _work_only(program, optimize, module, splits, metric_ir, client, task_lm,
                          seed, threads, emit, trust, study)
    before_usage = client.usage.snapshot()
    first_record = len(client.usage)

    eval_meter = MeteredClient(client)
    eval_ctx = make_run_ctx(program, eval_meter, task_lm, trust=trust).derive(
        attribution={"eval": "before"})
    metric = build_metric(metric_ir, program, eval_ctx.derive(attribution={"metric": "judge"}))
    before = _eval_splits(program, module, splits, metric, eval_ctx, threads, emit, "before")

    _warn_weak_writers(program, optimize, task_lm, emit)
    tracker = BudgetTracker(optimize.budget, client)
    runs, final = _run_passes(program, optimize, module, splits, metric_ir, client, task_lm,
                              tracker, seed, threads, emit, trust, study)

    # the passes may have added LMs (bootstrap_finetune's tuned models)
    after_ctx = eval_ctx.derive(attribution={"eval": "after"},
                                program_lms={**final.lms, task_lm.name: task_lm})
    after = _eval_splits(final, module, splits, metric, after_ctx, threads, emit, "after")
    _warn_if_worse(before, after, emit)
    usage = _sum_usage([eval_meter.snapshot(), *[r.usage for r in runs]])
    spent = _delta(before_usage, client.usage.snapshot())
    log.info("build used %s", spent)
    check_health(module, spent, client.usage.last_error(first_record), after)
    return BuildResult(
        program=final, module=module, metric=metric_ir.name, task_lm=task_lm, seed=seed,
        splits=sizes, datasets=_dataset_records(program, dataset, splits),
        before=before, after=after, passes=runs, usage=usage, budget_stop=tracker.exceeded,
        examples={split: splits[split] for split in scored_splits(splits)},
        original={p.id: p for p in program.predictors_of(module)},
    )


def _load_data(program: ProgramIR, module: str, dataset: Any, trust: Trust,
               optimize: OptimizeIR) -> dict[str, list[Example]]:
    inputs = [f.name for f in program.modules[module].inputs]
    for path in (dataset.files.values() if dataset.files else [dataset.path]):
        trust.resolve_file(path, program.base_dir, f"dataset {dataset.name!r}")
    splits = load_splits(dataset, program.base_dir, inputs)
    if not splits["train"] and optimize.passes:
        raise PipelineError(f"dataset {dataset.name!r}: the train split is empty")
    return splits


#: Passes whose work several processes can share through a study (docs/distributed.md).
DISTRIBUTED = ("mipro_v2", "bootstrap_random_search")


@dataclass
class WorkerResult:
    """What a worker did: the passes it ran (the last one distributed) and their LM work."""

    module: str
    passes: list[PassRun]
    usage: dict[str, Any]


def _work_only(program: ProgramIR, optimize: OptimizeIR, module: str,
               splits: dict[str, list[Example]], metric_ir: Any, client: Any, task_lm: LMIR,
               seed: int, threads: int, emit: ProgressFn, trust: Trust,
               study: StudyOptions) -> WorkerResult:
    """Run the passes up to the last distributed one (the ones before it are run by
    every worker alike: with a shared cache each request is paid for once)."""
    from lmpc.compiler.check.optimizer_specs import canonical_name

    names = [canonical_name(p.name) for p in optimize.passes]
    last = max((i for i, n in enumerate(names) if n in DISTRIBUTED), default=None)
    if last is None:
        raise PipelineError(
            f"optimize {module}: no pass of this pipeline ({', '.join(names) or 'none'}) "
            f"shares its work with workers; only {' and '.join(DISTRIBUTED)} do "
            "(docs/distributed.md says why the others cannot)")
    if not task_lm.model.startswith("local/"):
        from lmpc.runtime.lm import preload_litellm

        preload_litellm()  # while the study opens and the first units wait
    before = client.usage.snapshot()
    tracker = BudgetTracker(optimize.budget, client)
    cut = optimize.model_copy(update={"passes": optimize.passes[:last + 1]})
    runs, _ = _run_passes(program, cut, module, splits, metric_ir, client, task_lm, tracker,
                          seed, threads, emit, trust, study)
    return WorkerResult(module=module, passes=runs,
                        usage=_delta(before, client.usage.snapshot()))


def _warn_weak_writers(program: ProgramIR, optimize: OptimizeIR, task_lm: LMIR,
                       emit: ProgressFn) -> None:
    """W1606 at build start, for the task LM the build really uses (``--lm`` included)."""
    from lmpc.compiler.check.prompt_model import CODE, message, weak_writers

    for pass_ir, role, model in weak_writers(program, optimize, task_lm.model):
        text, hint = message(pass_ir, role, model)
        log.info("%s: %s (%s)", CODE, text, hint)  # the event is what the user sees
        emit(BuildWarning(CODE, text, hint, pass_ir.name))


#: The build's own warning: the optimized program scores below the unoptimized one.
WORSE_CODE = "W1607"


def _warn_if_worse(before: dict[str, EvalResult | None], after: dict[str, EvalResult | None],
                   emit: ProgressFn) -> None:
    """Say so when the passes made the first scored split (val, else train) worse.

    The artifact still holds what the pipeline produced — the user asked for it — but a
    drop is never silent (issue 13: a plain sample of demos took a 4-class task from 91%
    to 58%).
    """
    split = next((s for s in ("val", "train") if before.get(s) is not None), None)
    if split is None or after.get(split) is None:
        return
    old, new = before[split].score, after[split].score  # type: ignore[union-attr]
    if new < old:
        emit(BuildWarning(WORSE_CODE, f"the optimized program scores below the unoptimized "
                          f"one on {split} ({100 * old:.1f}% -> {100 * new:.1f}%)",
                          "compare the two with `lmpc diff`; a search pass "
                          "(random_search, mipro_v2) keeps the unchanged program when "
                          "nothing beats it"))


MAX_FAILED_FRACTION = 0.5  # of a build's LM requests; more failed: the build fails


def check_health(module: str, spent: dict[str, Any], last_error: str,
                 after: dict[str, EvalResult | None]) -> None:
    """``PipelineError`` for a build that did not really run, so that no artifact of it
    is written: more than half of its LM requests failed for good, or the optimized
    program failed on every example it was scored on."""
    requests = spent.get("calls", 0) + spent.get("cache_hits", 0) + spent.get("failures", 0)
    failures = spent.get("failures", 0)
    why = f" (last error: {last_error})" if last_error else ""
    if requests and failures / requests > MAX_FAILED_FRACTION:
        raise PipelineError(f"build of {module} failed: {failures} of {requests} LM calls "
                            f"failed{why}; no artifact written")
    scored = [r for r in after.values() if r is not None and r.n]
    if scored and all(r.failures == r.n for r in scored):
        first = next((e for r in scored for e in r.errors), "")
        raise PipelineError(f"build of {module} failed: the optimized program failed on "
                            f"every example it was scored on ({first}); no artifact written")


def _parts(program: ProgramIR, optimize: OptimizeIR) -> tuple[str, Any, Any]:
    if optimize.program not in program.modules:
        raise PipelineError(f"optimize: unknown module {optimize.program!r}")
    metric = program.metrics.get(optimize.metric)
    if metric is None:
        raise PipelineError(f"optimize {optimize.program}: unknown metric {optimize.metric!r}")
    dataset = program.datasets.get(optimize.dataset)
    if dataset is None:
        raise PipelineError(f"optimize {optimize.program}: unknown dataset {optimize.dataset!r}")
    return optimize.program, metric, dataset


def _eval_splits(program: ProgramIR, module: str, splits: dict[str, list[Example]],
                 metric: Metric, ctx: Any, threads: int, emit: ProgressFn,
                 phase: str) -> dict[str, EvalResult | None]:
    results: dict[str, EvalResult | None] = {}
    for split in scored_splits(splits):
        rows = splits[split]
        if not rows:
            results[split] = None
            continue
        label = f"evaluate {phase} ({split})"
        emit(PassStarted(label, projected=len(rows)))
        results[split] = evaluate(
            program, module, rows, metric, ctx, threads=threads,
            progress=lambda e, label=label: emit(Progress(
                label, "examples", e.get("done"), e.get("total"), score=e.get("score"),
                examples=int(e.get("done", 0)))))
        emit(PassFinished(label, best=results[split].score))
    return results


def scored_splits(splits: dict[str, list[Any]]) -> tuple[str, ...]:
    """The splits a build scores before and after: val and test, or, when there is no
    val split, train and test (the trainset is then the only data to report on)."""
    return ("val", "test") if splits.get("val") else ("train", "test")


def _run_passes(program: ProgramIR, optimize: OptimizeIR, module: str,
                splits: dict[str, list[Example]], metric_ir: Any, client: Any, task_lm: LMIR,
                tracker: BudgetTracker, seed: int, threads: int,
                emit: ProgressFn, trust: Trust, study: StudyOptions | None = None,
                ) -> tuple[list[PassRun], ProgramIR]:
    """Each pass starts from the previous result; a budget stop keeps the best so far."""
    from lmpc.compiler.check.optimizer_specs import validate_params

    current, candidates, runs = program, [], []
    sizes = {name: len(rows) for name, rows in splits.items()}
    cached = getattr(client, "cache", None) is not None
    plan = estimate_plan(program, optimize, sizes, splits=splits, cache=cached,
                         seed=seed)[1:-1]
    for index, pass_ir in enumerate(optimize.passes):
        params, problems = validate_params(pass_ir.name, dict(pass_ir.params))
        if problems:
            raise PipelineError(f"pass {pass_ir.name}: {problems[0].message}")
        fn = PASSES[pass_ir.name]
        meter = MeteredClient(BudgetedClient(client, tracker))
        run_ctx = make_run_ctx(current, meter, task_lm, trust=trust).derive(
            attribution={"pass": pass_ir.name, "index": index})
        metric = build_metric(metric_ir, current, run_ctx.derive(
            attribution={"pass": pass_ir.name, "index": index, "metric": "judge"}))
        run = PassRun(name=pass_ir.name, params=params, seed=seed)
        ctx = PassContext(
            module=module, trainset=list(splits["train"]), valset=list(splits["val"]),
            metric=metric, run_ctx=run_ctx,
            teacher_ctx=_role_ctx(current, optimize, run_ctx, "teacher"),
            prompt_ctx=_role_ctx(current, optimize, run_ctx, "prompt_model"),
            reflection_ctx=_role_ctx(current, optimize, run_ctx, "reflection"),
            seed=seed, threads=threads, candidates=candidates,
            progress=_recording(emit, run, meter),
            budget=tracker if tracker.limited else None,
            metric_field=_metric_field(current, metric_ir),
            pass_name=pass_ir.name,
            requests=lambda meter=meter: int(meter.snapshot()["lm_requests"]),
            study=_pass_study(study, index, pass_ir.name),
        )
        emit(PassStarted(pass_ir.name, index, len(optimize.passes), plan[index]["calls"],
                         plan[index]["requests"]))
        result = _call_pass(fn, current, ctx, params, run)
        result.report.setdefault("dry_run", {"calls": plan[index]["calls"],
                                             "max_calls": plan[index]["max_calls"]})
        emit(PassFinished(pass_ir.name, int(meter.snapshot()["lm_requests"]),
                          max((c.score for c in result.candidates), default=None)))
        run.usage = meter.snapshot() if result.usage is None else dict(result.usage)
        if result.trajectory is not None:
            run.trajectory = list(result.trajectory)
        run.candidates, run.report = result.candidates, result.report
        current, candidates = result.program, result.candidates
        runs.append(run)
        if tracker.exceeded:
            run.stopped = run.stopped or tracker.exceeded
            log.warning("budget reached in pass %s: %s", pass_ir.name, tracker.exceeded)
            break
    return runs, current


def _pass_study(study: StudyOptions | None, index: int, name: str) -> StudyOptions | None:
    """The build's study options for one pass: its study is ``NAME.INDEX.PASS``."""
    if study is None:
        return None
    return replace(study, name=f"{study.name}.{index}.{name}" if study.name else None)


def _recording(emit: ProgressFn, run: PassRun, meter: MeteredClient) -> ProgressFn:
    """``emit``, keeping each scored unit of work (a ``Progress`` that is ``finished``
    and has a score: a candidate, a trial) in ``run.trajectory``. Any pass that reports
    its candidates this way gets a trajectory in the artifact, with no code of its own."""

    def on_event(event: Any) -> None:
        if isinstance(event, Progress) and event.finished and event.score is not None:
            work = meter.snapshot()
            run.trajectory.append({
                "label": event.label, "score": event.score, "best": event.best,
                "lm_requests": int(work["lm_requests"]),
                "tokens": int(work["prompt_tokens"] + work["completion_tokens"]),
                "examples": event.examples})
        emit(event)

    return on_event


def _metric_field(program: ProgramIR, metric_ir: Any) -> str | None:
    """The output the metric compares (the first one, through weighted sums)."""
    from lmpc.compiler.check.data import metric_fields

    fields = metric_fields(metric_ir.name, program.metrics)
    return fields[0][0] if fields else None


def _call_pass(fn: Pass, program: ProgramIR, ctx: PassContext, params: dict[str, Any],
               run: PassRun) -> PassResult:
    try:
        return fn(program, ctx, **params)
    except BudgetExceeded as exc:
        run.stopped = str(exc) or "budget"
        if exc.partial is not None:
            return exc.partial
        best = max(ctx.candidates, key=lambda c: c.score, default=None)
        kept = best.program if best is not None else program
        return PassResult(program=kept, candidates=list(ctx.candidates),
                          report={"stopped": "budget"})


def _dataset_records(program: ProgramIR, dataset: Any, splits: dict[str, list[Example]]
                     ) -> list[dict[str, Any]]:
    """The data a build read: its file (or each split file) with hash and row count."""
    records = []
    cut_from_train = "val" if "val" not in dataset.files else None  # a val part of train
    for part, path in dataset_files(dataset, program.base_dir).items():
        parts = list(splits) if part is None else [part, cut_from_train] if part == "train" \
            else [part]
        rows = sum(len(splits[p]) for p in parts if p)
        record = {"name": dataset.name, "path": str(path.resolve()),
                  "sha256": file_sha256(path), "rows": rows}
        records.append(record if part is None else {**record, "part": part})
    return records


def _sum_usage(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def _delta(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    return {k: end[k] - start.get(k, 0) for k in end if isinstance(end[k], int | float)}


#: Passes that change only demos: a zero-shot baseline after them is the source program.
DEMO_ONLY = ("labeled_fewshot", "bootstrap_fewshot", "bootstrap_random_search")


def estimate_plan(program: ProgramIR, optimize: OptimizeIR, n_split: dict[str, int], *,
                  splits: dict[str, list[Example]] | None = None,
                  cache: bool = True, seed: int | None = None) -> list[dict[str, Any]]:
    """Projected LM calls per step — the before/after evaluations and every pass — with
    no LM called. ``calls`` is what each step is expected to make (see
    ``lmpc.compiler.passes._estimate``), ``max_calls`` its bound when the teacher never
    succeeds. ``splits`` gives the real rows (their labels order stratified walks);
    ``cache`` says whether the build reads the LM cache (repeats are then free)."""
    from lmpc.compiler.check.optimizer_specs import validate_params
    from lmpc.compiler.check.prompt_model import weak_writers
    from lmpc.compiler.passes._estimate import Workload, judge_calls, placeholder_rows

    n_val, n_test = n_split.get("val", 0), n_split.get("test", 0)
    scored = scored_splits({k: [None] * v for k, v in n_split.items()})
    n_first = n_split.get(scored[0], 0)  # val, or train when there is no val split
    label = " + ".join(scored)
    metric = program.metrics.get(optimize.metric)
    work = Workload(
        program=program, module=optimize.program,
        trainset=list(splits["train"]) if splits else placeholder_rows(n_split.get("train", 0)),
        n_val=n_val, seed=optimize.seed if seed is None else seed, cache=cache,
        metric_field=_metric_field(program, metric) if metric is not None else None,
        scoring_calls=judge_calls(program, optimize.metric))
    per = work.per_run()
    before = (n_first + n_test) * per
    plan = [{"step": f"evaluate before ({label})", "calls": before, "max_calls": before}]
    last, demo_only, ensemble_of = None, True, None
    unchanged = True  # every pass so far is expected to hand back its input
    weak = {id(p) for p, _, _ in weak_writers(program, optimize)}
    base_work = work
    for i, pass_ir in enumerate(optimize.passes):
        params, _ = validate_params(pass_ir.name, dict(pass_ir.params))
        work = replace(base_work, weak_writer=id(pass_ir) in weak)
        est = _estimate_pass(work, pass_ir.name, params)
        saved = 0
        clears = bool(getattr(_pass_module(pass_ir.name), "BASELINE_CLEARS_DEMOS", False))
        if cache and est.baseline_rows and (i == 0 or (clears and demo_only)):
            # its full score of the unchanged program repeats the "before" evaluation
            saved = min(est.baseline_rows, n_first) * per
        # every request the pass sends, the cache's answers included: what its progress
        # bar counts against
        requests = _estimate_pass(work.with_cache(False), pass_ir.name, params).calls
        plan.append({"step": pass_ir.name, "params": params, "calls": est.calls - saved,
                     "max_calls": est.max_calls - saved, "requests": requests,
                     **({"training": est.training} if est.training else {})})
        demo_only = demo_only and pass_ir.name in DEMO_ONLY
        unchanged = unchanged and est.returns_input
        if pass_ir.name == "ensemble":
            ensemble_of = (last, params)
        else:
            last, ensemble_of = est, None
    # the unchanged program's rows are the "before" evaluation's: all cached
    after = 0 if cache and unchanged and last is not None else \
        _after_calls(n_first, n_test, per, cache, last, ensemble_of)
    plan.append({"step": f"evaluate after ({label})", "calls": after, "max_calls": after})
    return plan


def _after_calls(n_val: int, n_test: int, per: int, cache: bool, last: Any,
                 ensemble_of: tuple[Any, dict[str, Any]] | None) -> int:
    """The final evaluation: the rows of the first scored split (``n_val``: val, or train
    without one) that the result was already scored on are cached (for an ensemble, only
    if every member was scored on them)."""
    if last is None:
        return 0 if cache else (n_val + n_test) * per  # the unchanged program: cached
    if ensemble_of is not None:
        scored, params = ensemble_of
        members = scored.candidates if scored is not None else 1
        for key in ("top", "size"):
            if params.get(key) is not None:
                members = min(members, int(params[key]))
        on_val = scored is not None and scored.candidates_on_val
        fresh_val = n_val - min(scored.val_rows, n_val) if cache and on_val else n_val
        return max(members, 1) * per * (fresh_val + n_test)
    fresh_val = n_val - min(last.val_rows, n_val) if cache else n_val
    return per * (fresh_val + n_test)


def _pass_module(name: str) -> Any:
    try:
        return PASSES.module(name)
    except PipelineError:
        return None


def _estimate_pass(work: Any, name: str, params: dict[str, Any]) -> Any:
    from lmpc.compiler.passes._estimate import Estimate

    estimator = getattr(_pass_module(name), "estimate", None)
    if estimator is not None:
        return estimator(work, **params)
    # generic: one run over train and one over val per pass
    return Estimate.fixed((work.n_train + work.n_val) * work.per_run())
