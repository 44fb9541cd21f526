"""Evaluate a program: run it on examples in parallel and score every prediction.

A failed example (any exception from the run: an LM error, a parse failure, a broken
assertion) scores ``failure_score`` and is counted in ``failures`` — never dropped, so
``n`` is always the number of examples given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lmpc.eval.metrics import MetricError
from lmpc.ir import Example, ProgramIR

log = logging.getLogger("lmpc")

# examples handed to run_batch at once; between chunks a progress event is sent
CHUNK_PER_THREAD = 8


@dataclass
class EvalResult:
    """Mean score, per-example scores (in input order), failure count and predictions."""

    score: float
    scores: list[float]
    failures: int
    n: int
    predictions: list[Any] = field(default_factory=list)  # Prediction, or None on failure
    errors: list[str] = field(default_factory=list)  # one line per failed example


def evaluate(
    program: ProgramIR,
    module: str,
    examples: list[Example],
    metric: Callable[..., float],
    run_ctx: Any,
    threads: int = 4,
    failure_score: float = 0.0,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> EvalResult:
    """Run ``module`` of ``program`` on every example and score it with ``metric``."""
    from lmpc.runtime.execute import run_batch

    scores: list[float] = []
    predictions: list[Any] = []
    errors: list[str] = []
    chunk = max(1, threads) * CHUNK_PER_THREAD
    for start in range(0, len(examples), chunk):
        batch = examples[start : start + chunk]
        results = run_batch(program, module, [ex.inputs for ex in batch], run_ctx, threads)
        for example, result in zip(batch, results, strict=True):
            score, error = _score_one(example, result, metric, failure_score)
            scores.append(score)
            predictions.append(None if error else result)
            if error:
                errors.append(error)
        if progress is not None:
            progress({"done": len(scores), "total": len(examples),
                      "score": sum(scores) / len(scores)})
    n = len(examples)
    mean = sum(scores) / n if n else 0.0
    return EvalResult(mean, scores, len(errors), n, predictions, errors)


def _score_one(
    example: Example, result: Any, metric: Callable[..., float], failure_score: float
) -> tuple[float, str]:
    """(score, "") for a scored prediction; (failure_score, reason) for a failure."""
    where = example.source or f"example {example.index}"
    if isinstance(result, BaseException):
        log.info("%s: failed: %s", where, result)
        return failure_score, f"{where}: {type(result).__name__}: {result}"
    try:
        return float(metric(example, result)), ""
    except MetricError:
        raise  # a misconfigured metric is the user's error, not this example's
    except Exception as exc:  # the judge's LM failed, or user metric code raised
        log.info("%s: metric failed: %s", where, exc)
        return failure_score, f"{where}: metric: {type(exc).__name__}: {exc}"
