"""DSPy 3.4.1's side of the few-shot benchmark: the same task, splits and optimizer settings.

This module only *drives* DSPy (measurement, no DSPy code is copied into lmpc). It knows
nothing about lmpc: the caller hands it a ``Task`` (signature and split rows) built from
lmpc's IR, so both sides see the very same examples.

DSPy talks to the embedded model through a llama.cpp server on loopback, as a
text-completion model with the ChatAdapter (its JSON fallback is off: it breaks on
text-completion servers). LM calls and tokens are read from DSPy's own history.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("lmpc.bench")

# litellm otherwise tries to download its price map (no network here: ~7 s of retries)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass(frozen=True)
class FieldSpec:
    """One signature field; ``choices`` makes it a Literal (an lmpc enum)."""

    name: str
    desc: str | None = None
    choices: tuple[str, ...] = ()


@dataclass
class Task:
    """What both sides share: one predictor's signature and the split rows.

    A row is a dict of every field (inputs and the label), in lmpc's split order.
    ``score(row, predicted)`` is the metric on the output field (0..1): the caller passes
    lmpc's own metric, so both sides are scored identically.
    """

    instructions: str
    inputs: list[FieldSpec]
    output: FieldSpec
    splits: dict[str, list[dict[str, Any]]]
    score: Callable[[dict[str, Any], Any], float]


@dataclass(frozen=True)
class DSPySettings:
    """How DSPy reaches the model and how parallel it may be."""

    api_base: str
    model: str
    max_tokens: int
    temperature: float
    threads: int
    num_candidates: int


@dataclass
class Usage:
    """LM calls, tokens and wall time of one phase (compile or evaluate)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "tokens": self.tokens, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 2)}


@dataclass
class Phase:
    """A measured phase: its result and usage."""

    value: Any
    usage: Usage = field(default_factory=Usage)


def measure(fn: Callable[[], Any]) -> Phase:
    """Run ``fn`` and count the LM calls it made from DSPy's global history."""
    from dspy.clients import base_lm

    start_len = len(base_lm.GLOBAL_HISTORY)
    started = time.monotonic()
    value = fn()
    seconds = time.monotonic() - started
    entries = base_lm.GLOBAL_HISTORY[start_len:]
    if len(base_lm.GLOBAL_HISTORY) >= base_lm.MAX_HISTORY_SIZE:
        log.warning("DSPy's global history is full: call counts may be short")
    usage = Usage(calls=len(entries), seconds=seconds)
    for entry in entries:
        counts = entry.get("usage") or {}
        usage.prompt_tokens += int(counts.get("prompt_tokens") or 0)
        usage.completion_tokens += int(counts.get("completion_tokens") or 0)
    return Phase(value, usage)


def make_signature(task: Task) -> Any:
    """The DSPy signature of the task: inputs as str, the output a Literal of its choices."""
    import dspy

    fields: dict[str, tuple[Any, Any]] = {}
    for spec in task.inputs:
        fields[spec.name] = (str, dspy.InputField(desc=spec.desc or ""))
    out = task.output
    out_type: Any = Literal[out.choices] if out.choices else str
    fields[out.name] = (out_type, dspy.OutputField(desc=out.desc or ""))
    return dspy.Signature(fields, task.instructions or "")


def to_examples(task: Task, rows: list[dict[str, Any]]) -> list[Any]:
    import dspy

    names = [spec.name for spec in task.inputs]
    return [dspy.Example(**row).with_inputs(*names) for row in rows]


def make_metric(task: Task) -> Callable[..., float]:
    """The task's metric in DSPy's calling convention; a missing output scores 0."""
    name, score = task.output.name, task.score

    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        got = getattr(prediction, name, None)
        return 0.0 if got is None else score(example.toDict(), got)

    return metric


def configure(settings: DSPySettings) -> Any:
    """Point DSPy at the server as a text-completion model; return the LM."""
    import dspy

    lm = dspy.LM(f"openai/{settings.model}", api_base=settings.api_base, api_key="none",
                 model_type="text", cache=False, max_tokens=settings.max_tokens,
                 temperature=settings.temperature)
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False))
    return lm


def make_optimizer(name: str, metric: Callable[..., float], settings: DSPySettings) -> Any:
    """The DSPy optimizer matching an lmpc pass, with the same settings."""
    import dspy

    if name == "labeled_fewshot":
        return dspy.LabeledFewShot(k=4)
    if name == "bootstrap_fewshot":
        return dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=4,
                                     max_labeled_demos=4, max_errors=10000)
    if name == "bootstrap_random_search":
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=metric, max_bootstrapped_demos=4, max_labeled_demos=4,
            num_candidate_programs=settings.num_candidates, num_threads=settings.threads,
            max_errors=10000)
    raise ValueError(f"no DSPy optimizer for {name!r}")


def compile_program(name: str, optimizer: Any, student: Any, train: list[Any],
                    val: list[Any]) -> Any:
    """Compile with the data each optimizer takes (random search scores on val)."""
    if name == "bootstrap_random_search":
        return optimizer.compile(student, trainset=train, valset=val)
    return optimizer.compile(student, trainset=train)


def evaluate(program: Any, rows: list[Any], metric: Callable[..., float],
             threads: int) -> Phase:
    """Accuracy (0..1) of ``program`` on ``rows``; a failed example scores 0."""
    import dspy

    evaluator = dspy.Evaluate(devset=rows, metric=metric, num_threads=threads,
                              display_progress=False, max_errors=10000, failure_score=0.0)
    phase = measure(lambda: evaluator(program))
    phase.value = float(phase.value.score) / 100.0
    return phase


def demo_count(program: Any) -> int:
    return sum(len(p.demos) for p in program.predictors())


def run_dspy(task: Task, settings: DSPySettings, optimizers: list[str]) -> dict[str, Any]:
    """Zero-shot once, then for each optimizer: compile, evaluate on test; all measured."""
    import dspy

    configure(settings)
    metric = make_metric(task)
    train, val, test = (to_examples(task, task.splits[s]) for s in ("train", "val", "test"))
    student = dspy.Predict(make_signature(task))
    log.info("DSPy: zero-shot on %d test examples", len(test))
    before = evaluate(student, test, metric, settings.threads)
    results: dict[str, Any] = {"zero_shot": {"test": before.value, **before.usage.as_dict()},
                               "optimizers": {}}
    for name in optimizers:
        log.info("DSPy: compiling with %s", name)
        optimizer = make_optimizer(name, metric, settings)
        built = measure(lambda opt=optimizer, n=name: compile_program(
            n, opt, student.deepcopy(), train, val))
        log.info("DSPy: %s compiled (%d calls, %.0fs); evaluating", name,
                 built.usage.calls, built.usage.seconds)
        after = evaluate(built.value, test, metric, settings.threads)
        results["optimizers"][name] = {
            "test_before": before.value, "test_after": after.value,
            "demos": demo_count(built.value),
            "compile": built.usage.as_dict(), "evaluate_test": after.usage.as_dict(),
        }
    return results
