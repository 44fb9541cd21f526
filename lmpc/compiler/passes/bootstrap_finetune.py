"""``bootstrap_finetune``: a teacher's successful traces become training records, and the
program's predictors move to the weights trained on them (OPTIMIZERS.md).

Parameters (defaults): ``multitask=true, epochs=3, learning_rate=2e-4, batch_size=4,
lora_rank=8, lora_alpha=16, seed=0, metric_threshold=none, max_errors=10,
max_labeled_demos=16, teacher=none, timeout=3600``.

1. The teacher is the program as it is (its demos, its ``knn_fewshot`` neighbours) — or
   the ``teacher`` given: another module of the same shape, an LM name or an LM role —
   and a teacher without any demos first gets ``max_labeled_demos`` labeled ones. It runs
   once on every training example, that example hidden from its own demos.
2. A trace the metric accepts (truthy, or at least ``metric_threshold``) gives one
   training record per step, in exactly the form the student's predictor is prompted
   with (``lmpc.compiler.finetune.records``): the student is the program with its demos
   and neighbours cleared, so the records teach the zero-shot prompt. On a base (text)
   model that prompt is the compact one of tuned weights (``TunedIR.prompt``): the input
   and the output's label only, without the instructions and the lines saying what each
   output is — the weights learn what they say, and every call after sends only what
   varies (on examples/classify.lmp 20.8 prompt tokens a call, knn_fewshot's 139.5).
3. One model is trained for all predictors that share a base LM (``multitask``), or one
   per predictor. An embedded model (``local/...``) gets a LoRA adapter trained here on
   the CPU (``lmpc[train]``; ``lmpc.compiler.finetune.local``), stored by content in the
   weights cache beside the LM cache (a rebuild with the same records and parameters
   reuses it) and copied beside the artifact. Any other model is tuned by its provider's
   fine-tuning API through litellm (``lmpc.compiler.finetune.hosted``): the records
   uploaded as JSONL, a job created and polled (``timeout`` seconds at most).
4. Each tuned predictor's ``lm`` names a new LM whose ``tuned`` says what it runs on.

Before / after, for ``Router(ticket) -> category`` after ``knn_fewshot(k = 4)``::

    before: Router.c  lm=local   options={"knn": {...40 examples}}
    after:  Router.c  lm=local_tuned demos=[]  options={}
            lms.local_tuned = local/gemma-3-270m + LoRA (sha256 ..., 3.8 MB, 30 steps)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from lmpc.compiler.finetune.records import RecordError, TrainingRecord, group_records, records_for
from lmpc.compiler.passes._demos import PassError, clear_demos
from lmpc.compiler.passes._estimate import Estimate, Workload
from lmpc.compiler.passes._teacher import Teacher, resolve_teacher
from lmpc.compiler.passes.base import PassContext, PassResult
from lmpc.compiler.passes.bootstrap_fewshot import BootstrapParams, walk_teacher
from lmpc.compiler.passes.labeled_fewshot import apply_labeled
from lmpc.ir import LMIR, ProgramIR, TunedIR, WeightsFileIR
from lmpc.runtime.adapters import is_text_model

log = logging.getLogger("lmpc")

PASS = "bootstrap_finetune"
TRAINER_VERSION = 1  # part of the weights cache key: a change of the trainer retrains
#: The training facts an artifact records: what the same records and parameters
#: reproduce, so a rebuild (trained again or reusing the cached adapter) writes the same
#: bytes. How long it took is said in the build's progress and log, not stored.
REPRODUCED = ("steps", "tokens", "first_loss", "last_loss")


def bootstrap_finetune(
    program: ProgramIR,
    ctx: PassContext,
    multitask: bool = True,
    epochs: int = 3,
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    seed: int = 0,
    metric_threshold: float | None = None,
    max_errors: int = 10,
    max_labeled_demos: int = 16,
    teacher: str | None = None,
    timeout: float = 3600.0,
) -> PassResult:
    """Fine-tune the task model on the teacher's accepted traces; point predictors at it."""
    from lmpc.compiler.finetune.local import LoraParams

    if not ctx.trainset:
        raise PassError("bootstrap_finetune needs training examples, and the trainset is empty")
    student = zero_shot(program, ctx.module)
    found = _teacher(program, student, ctx, teacher, max_labeled_demos)
    params = BootstrapParams(len(ctx.trainset), max_labeled_demos, 1, metric_threshold,
                             max_errors, teacher, stratify=False)
    walk = walk_teacher(found, ctx, ctx.trainset, params, {"pass": PASS})
    bases = {p.id: untuned(ctx.run_ctx.lm_named(p.lm)) for p in student.predictors_of(ctx.module)}
    steps = [(pid, demo.values, ctx.trainset[pos].index)
             for pos in sorted(walk.per_example)
             for pid, demos in walk.per_example[pos].items() for demo in demos]
    try:  # rendered as each predictor will be prompted on its tuned LM (tuned.prompt)
        records = records_for(student, ctx.module, steps,
                              {pid: as_tuned(lm) for pid, lm in bases.items()})
    except RecordError as exc:
        raise PassError(f"bootstrap_finetune: {exc}") from None
    if not records:
        raise PassError(f"bootstrap_finetune: the teacher ({found.source}) succeeded on none "
                        f"of the {len(ctx.trainset)} training examples, so there is nothing "
                        "to train on; give it demos first (e.g. knn_fewshot then "
                        "bootstrap_finetune) or a stronger teacher")
    lora = LoraParams(epochs, learning_rate, batch_size, lora_rank, lora_alpha, seed)
    tuned = []
    for key, group in _training_sets(records, bases, multitask).items():
        base = bases[group[0].predictor]
        pids = sorted({r.predictor for r in group})
        lm = _tune(student, ctx, base, group, pids, lora, timeout, key)
        student.lms[lm.name] = lm
        for pid in pids:
            student.predictors[pid].lm = lm.name
        tuned.append({"lm": lm.name, "base": base.model, "predictors": pids,
                      "records": len(group), **_summary(lm)})
    report: dict[str, Any] = {
        "params": {"multitask": multitask, **asdict(lora), "metric_threshold": metric_threshold,
                   "max_errors": max_errors, "max_labeled_demos": max_labeled_demos,
                   "teacher": teacher, "timeout": timeout},
        "teacher": found.describe(),
        "examples": len(ctx.trainset),
        "accepted_examples": sorted(ctx.trainset[i].index for i in walk.used),
        "records": len(records),
        "errors": walk.errors,
        "failed_attempts": [a for a in walk.attempts if not a.get("ok")],
        "tuned": tuned,
    }
    return PassResult(program=student, report=report)


def zero_shot(program: ProgramIR, module: str) -> ProgramIR:
    """A copy with no demos and no ``knn_fewshot`` neighbours in ``module``'s predictors:
    the prompt the tuned model learns to answer."""
    out = clear_demos(program, module)
    for pred in out.predictors_of(module):
        pred.options = {k: v for k, v in pred.options.items() if k != "knn"}
    return out


def untuned(lm: LMIR) -> LMIR:
    """The LM a tuning starts from: a tuned one's base model (training always starts
    from the base weights, as DSPy's BetterTogether does for every weight step)."""
    if lm.tuned is None:
        return lm
    name = lm.tuned.training.get("base_lm") or lm.name
    return lm.model_copy(update={"model": lm.tuned.base, "tuned": None, "name": name})


def tuned_prompt(base: LMIR) -> Literal["full", "compact"]:
    """The layout tuned weights of ``base`` are trained on and prompted with: a base
    (text) model's completion layout loses its instructions and guide lines ("compact":
    the weights learn what they say, and every call sends a quarter of the tokens on
    the classify example); a chat model keeps its full layout (a provider's tuning
    keeps the system prompt it was tuned with)."""
    return "compact" if is_text_model(base) else "full"


def as_tuned(base: LMIR) -> LMIR:
    """``base`` as its tuned LM looks to ``choose`` (the adapter that renders records),
    before the weights exist."""
    method = "local-lora" if base.model.startswith("local/") else "hosted"
    return base.model_copy(update={"tuned": TunedIR(base=base.model, method=method,
                                                    prompt=tuned_prompt(base))})


def _teacher(program: ProgramIR, student: ProgramIR, ctx: PassContext, teacher: str | None,
             max_labeled_demos: int) -> Teacher:
    if teacher is not None:
        return resolve_teacher(program, student, ctx, teacher, max_labeled_demos)
    found = Teacher(program.model_copy(deep=True), ctx.module, ctx.teacher_ctx,
                    source="the program as it is")
    preds = found.program.predictors_of(ctx.module)
    if not any(p.demos or p.options.get("knn") for p in preds):
        apply_labeled(found.program, ctx.module, ctx.trainset, max_labeled_demos, True,
                      ctx.seed)
        found.source += f" with {max_labeled_demos} labeled demos"
    return found


def _training_sets(records: list[TrainingRecord], bases: dict[str, LMIR], multitask: bool
                   ) -> dict[str, list[TrainingRecord]]:
    """One set per base LM (multitask) or per predictor."""
    if not multitask:
        return group_records(records, False)
    sets: dict[str, list[TrainingRecord]] = {}
    for rec in records:
        sets.setdefault(bases[rec.predictor].name, []).append(rec)
    return sets


def _tune(program: ProgramIR, ctx: PassContext, base: LMIR, records: list[TrainingRecord],
          pids: list[str], lora: Any, timeout: float, key: str) -> LMIR:
    name = _new_name(program, f"{base.name}_tuned" if key == base.name else
                     f"{base.name}_tuned_{pids[0].rpartition('.')[2]}")
    training = {"pass": PASS, "records": len(records), "base_lm": base.name}
    if base.model.startswith("local/"):
        adapter, report = _train_local(ctx, base, records, lora)
        tuned = TunedIR(base=base.model, method="local-lora", adapter=adapter, predictors=pids,
                        training={**training, **asdict(lora), **report},
                        prompt=tuned_prompt(base))
        return base.model_copy(update={"name": name, "tuned": tuned, "span": None})
    from lmpc.compiler.finetune.hosted import FinetuneError, finetune_hosted

    try:
        result = finetune_hosted(base, records, lora, timeout_s=timeout,
                                 trust=getattr(ctx.run_ctx, "trust", None),
                                 progress=lambda text: ctx.emit("fine-tune", label=text))
    except FinetuneError as exc:
        raise PassError(f"bootstrap_finetune: {exc}") from None
    ctx.emit("fine-tune", 1, 1, label=f"job {result.job} done in {result.seconds:.0f}s",
             finished=True)
    tuned = TunedIR(base=base.model, method="hosted", job=result.job, predictors=pids,
                    training={**training, "epochs": lora.epochs, "batch_size": lora.batch_size,
                              "seed": lora.seed, "file": result.file},
                    prompt=tuned_prompt(base))
    return base.model_copy(update={"name": name, "model": result.model, "tuned": tuned,
                                   "span": None})


def _new_name(program: ProgramIR, name: str) -> str:
    out, n = name, 2
    while out in program.lms:
        out, n = f"{name}{n}", n + 1
    return out


def _train_local(ctx: PassContext, base: LMIR, records: list[TrainingRecord], lora: Any
                 ) -> tuple[WeightsFileIR, dict[str, Any]]:
    """Train (or reuse from the weights cache) the adapter of ``records``."""
    from lmpc.compiler.finetune.local import TrainingError, train_lora
    from lmpc.files import file_sha256
    from lmpc.runtime.local_model import LOCAL_MODELS

    short = base.model.removeprefix("local/")
    if short not in LOCAL_MODELS:
        raise PassError(f"bootstrap_finetune: unknown local model {base.model}")
    try:
        gguf = LOCAL_MODELS[short]()
    except Exception as exc:  # the weights package is missing: say so, no traceback
        raise PassError(f"bootstrap_finetune: {exc}") from None
    key = _cache_key(base.model, file_sha256(gguf), records, lora)
    folder = _weights_dir(ctx)
    path, meta = folder / f"{key}.gguf", folder / f"{key}.json"
    if path.is_file() and meta.is_file():
        stored = json.loads(meta.read_text(encoding="utf-8"))
        report = {k: stored[k] for k in REPRODUCED if k in stored}
        ctx.emit("train", 1, 1, label="adapter reused from the weights cache", finished=True)
    else:
        def on_step(event: dict[str, Any]) -> None:
            ctx.emit("train", event["step"], event["steps"],
                     label=f"loss {event['loss']:.3f}, ETA {event['eta_s']:.0f}s",
                     finished=False)

        try:
            result = train_lora(gguf, records, lora, path, on_step)
        except TrainingError as exc:
            raise PassError(f"bootstrap_finetune: {exc}") from None
        report = {"steps": result.steps, "tokens": result.tokens,
                  "first_loss": round(result.first_loss, 4),
                  "last_loss": round(result.last_loss, 4)}
        log.info("bootstrap_finetune: trained %d steps on %d records in %.1f s (%.1f s CPU)",
                 result.steps, len(records), result.seconds, result.cpu_seconds)
        ctx.emit("train", result.steps, result.steps, finished=True,
                 label=f"trained in {result.seconds:.0f}s ({result.cpu_seconds:.0f}s CPU)")
        tmp = meta.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, sort_keys=True), encoding="utf-8")
        tmp.replace(meta)
    pin = WeightsFileIR(path=str(path.resolve()), sha256=file_sha256(path),
                        size=path.stat().st_size)
    return pin, report


def _cache_key(model: str, weights_sha: str, records: list[TrainingRecord], lora: Any) -> str:
    payload = json.dumps({"model": model, "weights": weights_sha, "trainer": TRAINER_VERSION,
                          "params": asdict(lora), "records": [r.to_json() for r in records]},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _weights_dir(ctx: PassContext) -> Path:
    """Beside the LM cache (``$LMPC_CACHE_DIR/weights``); a build without a cache trains
    into a fresh temporary folder."""
    cache = getattr(getattr(ctx.run_ctx, "client", None), "cache", None)
    path = getattr(cache, "path", None)
    if path is not None:
        folder = Path(path).parent / "weights"
    else:
        folder = Path(tempfile.mkdtemp(prefix="lmpc-weights-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _summary(lm: LMIR) -> dict[str, Any]:
    tuned = lm.tuned
    if tuned is None:
        return {}
    if tuned.adapter is not None:
        return {"adapter_sha256": tuned.adapter.sha256, "adapter_bytes": tuned.adapter.size,
                **{k: tuned.training[k] for k in ("steps", "first_loss", "last_loss")
                   if k in tuned.training}}
    return {"model": lm.model, "job": tuned.job}


def estimate(work: Workload, **params: Any) -> Estimate:
    """The teacher runs once on every training example (no resampling rounds); training
    makes no LM call (a hosted job is billed by its provider, not counted here)."""
    steps = training_steps(work.n_train * max(len(_predictor_ids(work)), 1), **params)
    where = "a LoRA on this CPU" if _local(work) else "a hosted fine-tuning job"
    return Estimate.fixed(work.n_train * work.per_run(),
                          training=f"{where}, at most {steps} optimizer steps "
                          f"({params.get('epochs', 3)} epochs of at most one record per "
                          "training example and predictor)")


def _predictor_ids(work: Workload) -> list[str]:
    if work.program is None:
        return []
    return [p.id for p in work.program.predictors_of(work.module)]


def _local(work: Workload) -> bool:
    if work.program is None:
        return True
    task = next((o.lms.get("lm") for o in work.program.optimizes if o.program == work.module),
                None)
    lm = work.program.lms.get(task) if task else None
    return lm is None or lm.model.startswith("local/")


def training_steps(n_records: int, **params: Any) -> int:
    """Optimizer steps for ``n_records`` records (at most one per training example)."""
    return int(params.get("epochs", 3)) * math.ceil(n_records / int(params.get("batch_size", 4)))
