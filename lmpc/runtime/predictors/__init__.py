"""Predictors: how each ``PredictorIR.kind`` turns inputs into outputs.

Every kind is a function ``kind(call, inputs, hints) -> outputs`` where ``call`` is the
:class:`StepCall` (LM, adapter, attribution, call ids) of one step. ``outputs`` holds
the signature's fields plus extras the kind produced (``reasoning``, ``trajectory``),
so a trace step can become a demo as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmpc.runtime.predictors.call import StepCall
from lmpc.runtime.predictors.react import react
from lmpc.runtime.predictors.sampling import best_of_n, multi_chain_comparison, refine
from lmpc.runtime.predictors.simple import chain_of_thought, predict

Kind = Callable[[StepCall, dict[str, Any], "dict[str, str] | None"], dict[str, Any]]

KINDS: dict[str, Kind] = {
    "predict": predict,
    "chain_of_thought": chain_of_thought,
    "react": react,
    "best_of_n": best_of_n,
    "refine": refine,
    "multi_chain_comparison": multi_chain_comparison,
}


def run_predictor(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``call.predictor`` on ``inputs`` (hints: feedback from a failed constraint)."""
    return KINDS[call.predictor.kind](call, inputs, hints)


__all__ = ["KINDS", "StepCall", "run_predictor"]
