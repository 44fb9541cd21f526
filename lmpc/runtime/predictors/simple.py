"""``predict`` and ``chain_of_thought``: one LM call each."""

from __future__ import annotations

from typing import Any

from lmpc.ir import FieldIR, SignatureIR, TypeRef
from lmpc.runtime.predictors.call import DERIVED, StepCall

REASONING = FieldIR(
    name="reasoning", type=TypeRef(kind="str"), desc="think step by step to reach the answer"
)


def predict(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """Outputs of the declared signature."""
    return call.ask(call.predictor.signature, inputs, hints=hints)


def with_reasoning(sig: SignatureIR) -> SignatureIR:
    """The signature with a ``reasoning`` output before the declared outputs."""
    if any(f.name == "reasoning" for f in sig.outputs):
        return sig
    return DERIVED.get(sig, "reasoning", _add_reasoning)


def _add_reasoning(sig: SignatureIR) -> SignatureIR:
    return sig.model_copy(update={"outputs": [REASONING, *sig.outputs]})


def chain_of_thought(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """Outputs with ``reasoning`` first (kept, so a trace can become a demo as is)."""
    return call.ask(with_reasoning(call.predictor.signature), inputs, hints=hints)
