"""The exact request a predictor sends, rendered without sending it.

A step is run for an input of placeholders (``<ticket>``) with a client that stops it
at its first LM request, so what is shown is what the model gets, rendered by the
runtime's own adapter and LM settings — not a re-creation of it. ``lmpc show``, ``lmpc
diff`` and ``lmpc report`` print it.
"""

from __future__ import annotations

import json
from typing import Any

from lmpc.ir import PredictorIR, ProgramIR


class _Captured(Exception):
    """Stops a step at its first LM request (which it carries)."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


class CaptureClient:
    """An LM client that records the request instead of sending it."""

    def complete(self, request: Any, attribution: Any = None) -> Any:
        raise _Captured(request)


def render_predictor(program: ProgramIR, module: str, predictor: PredictorIR, ctx: Any) -> str:
    """A heading and the exact request of ``predictor`` for a placeholder input."""
    from lmpc.runtime.predictors import StepCall, run_predictor

    call = StepCall(program, predictor, ctx, module)
    inputs = {f.name: f"<{f.name}>" for f in predictor.signature.inputs}
    labeled = sum(d.kind == "labeled" for d in predictor.demos)
    demos = (f"{len(predictor.demos)} demos: {labeled} labeled, "
             f"{len(predictor.demos) - labeled} bootstrapped")
    knn = predictor.options.get("knn")
    if isinstance(knn, dict):  # demos are picked per input: show them for a placeholder
        demos = (f"{knn.get('k')} demos picked per input from "
                 f"{len(knn.get('examples', []))} stored examples (shown for a placeholder)")
    head = (f"=== {predictor.id} ({predictor.kind}, {call.lm.model}, adapter "
            f"{call.adapter.name}) — {demos} ===\n--- weights: {describe_weights(call.lm)}")
    try:
        run_predictor(call, inputs)
    except _Captured as captured:
        return f"{head}\n{_request_text(captured.request)}{_left_out(call, program)}\n"
    except Exception as exc:  # a kind that cannot render without real outputs
        return f"{head}\n(cannot render this step without running it: {exc})\n"
    return f"{head}\n(this step sends no LM request)\n"


def _left_out(call: Any, program: ProgramIR) -> str:
    """What the base-model layout leaves out of this prompt, said rather than hidden."""
    if call.adapter.name == "completion-tuned":
        return ("\n--- not in this prompt: the instructions and the lines saying what each "
                "output is (the tuned weights were trained on this compact prompt)")
    if call.adapter.name != "completion":
        return ""
    from lmpc.runtime.adapters.completion import left_out

    notes = left_out(call.predictor.signature, program)
    if not notes:
        return ""
    return ("\n--- not in this base-model prompt (measured not to help the embedded model; "
            "chat prompts have them): " + "; ".join(notes))


def _request_text(request: Any) -> str:
    settings = {k: v for k, v in request.settings.items() if k not in ("api_key", "grammar")}
    lines = [f"--- {request.mode} request, settings {json.dumps(settings, sort_keys=True)}"]
    if request.mode == "text":
        lines.append(request.prompt or "")
    else:
        for message in request.messages or ():
            lines.append(f"--- {message.get('role', '')}")
            lines.append(str(message.get("content", "")))
    if request.settings.get("grammar"):  # its own block: escaped in JSON it is unreadable
        lines += ["--- grammar (GBNF): what the reply may be", request.settings["grammar"]]
    return "\n".join(lines)


def describe_weights(lm: Any) -> str:
    """Which weights an LM runs on: its base model, or how it was tuned."""
    tuned = lm.tuned
    if tuned is None:
        return f"{lm.model} (not tuned)"
    how = tuned.training
    facts = [f"{k} {how[k]}" for k in ("records", "epochs", "learning_rate", "batch_size",
                                       "rank", "alpha", "seed", "steps", "last_loss")
             if k in how]
    trained = f"by {how.get('pass', 'a pass')}" + (f" ({', '.join(facts)})" if facts else "")
    if tuned.adapter is not None:
        return (f"tuned: base {tuned.base} + LoRA adapter sha256 {tuned.adapter.sha256[:16]}..."
                f" ({tuned.adapter.size} bytes), trained locally {trained}")
    return f"tuned: {lm.model}, fine-tuned from {tuned.base} by job {tuned.job}, {trained}"
