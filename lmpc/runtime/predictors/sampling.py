"""Predictors that sample several answers: best_of_n, refine, multi_chain_comparison.

Attempts run at temperature 1.0 with fresh rollout indexes, so the cache does not hand
back the same answer n times.
"""

from __future__ import annotations

import logging
from typing import Any

from lmpc.ir import FieldIR, TypeRef
from lmpc.runtime.errors import RuntimeFailure
from lmpc.runtime.predictors.call import StepCall
from lmpc.runtime.predictors.simple import REASONING, with_reasoning
from lmpc.runtime.types import render_value

log = logging.getLogger("lmpc")

ROLLOUT_STRIDE = 1000  # attempt i of run rollout r uses r * STRIDE + i


def _rollout(call: StepCall, i: int) -> int:
    return call.ctx.rollout * ROLLOUT_STRIDE + i


def _reward(call: StepCall) -> Any:
    name = call.predictor.options.get("reward")
    fn = call.ctx.reward_fns.get(name) if name else None
    if fn is None:
        kind = call.predictor.kind
        raise RuntimeFailure(
            f"{kind} step {call.predictor.id} needs a reward function "
            f"(option reward = {name!r}); the caller provides it in RunContext.reward_fns"
        )
    return fn


def _score(fn: Any, inputs: dict[str, Any], outputs: dict[str, Any], call: StepCall) -> float:
    try:
        return float(fn(inputs, outputs))
    except Exception as exc:  # a broken reward must not crash the run; it scores 0
        log.warning("reward for %s failed: %s: %s", call.predictor.id, type(exc).__name__, exc)
        return 0.0


def _outputs_text(outputs: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {render_value(v)}" for k, v in outputs.items())


def best_of_n(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """The best of ``n`` independent attempts; stops early at ``threshold``."""
    return _attempts(call, inputs, hints, refine=False)


def refine(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """Like best_of_n, but each attempt sees the previous one and its score."""
    return _attempts(call, inputs, hints, refine=True)


def _attempts(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None, refine: bool
) -> dict[str, Any]:
    options = call.predictor.options
    n = int(options.get("n", 3))
    threshold = float(options.get("threshold", 1.0))
    fn = _reward(call)
    best: tuple[float, dict[str, Any]] | None = None
    last_error: Exception | None = None
    feedback = dict(hints or {})
    for i in range(n):
        try:
            out = call.ask(
                call.predictor.signature, inputs, temperature=1.0,
                rollout=_rollout(call, i), hints=feedback or None,
            )
        except RuntimeFailure as exc:  # one bad sample does not sink the step
            last_error = exc
            continue
        score = _score(fn, inputs, out, call)
        if best is None or score > best[0]:
            best = (score, out)
        if score >= threshold:
            break
        if refine:
            feedback = {
                "previous_attempt": _outputs_text(out),
                "feedback": f"That answer scored {score:.2f}; it must reach {threshold:.2f}. "
                "Improve it.",
            }
    if best is None:
        raise last_error or RuntimeFailure(f"{call.predictor.id}: no attempt succeeded")
    return best[1]


ATTEMPTS = FieldIR(
    name="attempts", type=TypeRef(kind="str"), desc="independent attempts at this task"
)
RATIONALE = FieldIR(
    name="rationale", type=TypeRef(kind="str"),
    desc="compare the attempts: which reasoning holds up, and why",
)


def multi_chain_comparison(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """``m`` reasoning attempts, then one call that compares them and answers."""
    sig = call.predictor.signature
    m = int(call.predictor.options.get("m", 3))
    chains = []
    for i in range(m):
        try:
            out = call.ask(
                with_reasoning(sig), inputs, temperature=1.0, rollout=_rollout(call, i),
                hints=hints,
            )
        except RuntimeFailure as exc:
            log.info("%s: attempt %d failed: %s", call.predictor.id, i + 1, exc)
            continue
        chains.append(f"Attempt {len(chains) + 1}:\n{_outputs_text(out)}")
    if not chains:
        raise RuntimeFailure(f"{call.predictor.id}: none of the {m} attempts succeeded")
    compare = sig.model_copy(
        update={
            "inputs": [*sig.inputs, ATTEMPTS],
            "outputs": [RATIONALE, *sig.outputs],
            "instructions": (sig.instructions + "\n\n" if sig.instructions else "")
            + "Several attempts at this task are given. Compare them and give the best final "
            "answer.",
        }
    )
    out = call.ask(compare, {**inputs, "attempts": "\n\n".join(chains)}, demos=[])
    out[REASONING.name] = out.pop(RATIONALE.name)
    return out
