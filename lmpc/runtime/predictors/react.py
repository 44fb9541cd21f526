"""ReAct: a thought / tool / arguments loop over typed Python tools, then an extract step.

Each turn the model sees the inputs and the trajectory so far and picks the next tool
(or ``finish``) with JSON arguments. Tool errors become observations — the model can
recover, the run never crashes. When the prompt would outgrow the context budget the
oldest steps are dropped. After ``finish`` or ``max_iters`` turns, an extract step
(with reasoning) produces the signature's outputs from the trajectory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from lmpc.ir import FieldIR, SignatureIR, ToolIR, TypeRef
from lmpc.runtime.adapters.grammar import react_step_grammar
from lmpc.runtime.errors import ParseFailure, RuntimeFailure
from lmpc.runtime.predictors.call import DERIVED, StepCall, with_hints
from lmpc.runtime.predictors.simple import with_reasoning
from lmpc.runtime.tools import call_tool, describe_tool
from lmpc.runtime.types import render_value

log = logging.getLogger("lmpc")

FINISH = "finish"
STR = TypeRef(kind="str")
TRAJECTORY = FieldIR(name="trajectory", type=STR, desc="your thoughts, tool calls, observations")
# Prompt budgets (tokens) when the step sets no max_context_tokens; the embedded
# model has a 4096-token window that must also hold the generated tokens.
DEFAULT_CONTEXT_TOKENS = {"chat": 16000, "text": 3500}
MAX_OBSERVATION_CHARS = 4000


@dataclass
class Turn:
    thought: str
    tool: str
    args: dict[str, Any]
    observation: str


def react(
    call: StepCall, inputs: dict[str, Any], hints: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run the loop, then extract the outputs; ``trajectory`` is kept in the outputs."""
    options = call.predictor.options
    tools = _tools(call, options.get("tools", []))
    max_iters = int(options.get("max_iters", 5))
    sig = call.predictor.signature
    step_sig = DERIVED.get(sig, "react:" + ",".join(tools), lambda s: _step_signature(s, tools))
    params = {name: tool.params for name, tool in tools.items()} | {FINISH: []}
    grammar = react_step_grammar(step_sig.outputs, params, call.program)
    turns: list[Turn] = []
    for _ in range(max_iters):
        turn = _next_turn(call, step_sig, inputs, turns, tools, hints, grammar)
        turns.append(turn)
        if turn.tool == FINISH:
            break
    else:
        call.ctx.stats.incr("react_max_iters")
    extract_sig = DERIVED.get(sig, "react-extract", _extract_signature)
    text = _fit(call, extract_sig, inputs, turns, hints, demos=None)
    out = call.ask(extract_sig, {**inputs, "trajectory": text}, hints=hints)
    out["trajectory"] = render_trajectory(turns)
    return out


def _extract_signature(sig: SignatureIR) -> SignatureIR:
    with_r = with_reasoning(sig)
    return with_r.model_copy(update={"inputs": [*with_r.inputs, TRAJECTORY]})


def _tools(call: StepCall, names: list[str]) -> dict[str, ToolIR]:
    tools: dict[str, ToolIR] = {}
    for name in names:
        tool = call.program.tools.get(name)
        if tool is None:
            raise RuntimeFailure(f"react step {call.predictor.id}: unknown tool {name!r}")
        # fail now, not mid-loop, if it may not be imported (importing waits for a call)
        call.ctx.trust.require_code("tool", tool.name, tool.import_path)
        tools[name] = tool
    return tools


def _step_signature(sig: SignatureIR, tools: dict[str, ToolIR]) -> SignatureIR:
    listing = "\n".join(f"({i}) {describe_tool(t)}" for i, t in enumerate(tools.values(), 1))
    listing += f"\n({len(tools) + 1}) {FINISH}(): you have what you need to give the final answer"
    outs = ", ".join(f"`{f.name}`" for f in sig.outputs)
    instructions = (
        (sig.instructions.strip() + "\n\n" if sig.instructions.strip() else "")
        + f"You are an agent working towards {outs}. Each turn, given the inputs and your "
        "trajectory so far, write your next thought, pick the next tool, and give its "
        "arguments as a JSON object. You will see the tool's observation next turn.\n"
        f"Tools:\n{listing}"
    )
    names: list[str | int | float | bool] = [*tools, FINISH]
    return SignatureIR(
        name=f"{sig.name}_react",
        instructions=instructions,
        inputs=[*sig.inputs, TRAJECTORY],
        outputs=[
            FieldIR(name="next_thought", type=STR),
            FieldIR(name="next_tool_name", type=TypeRef(kind="literal", values=names)),
            FieldIR(
                name="next_tool_args",
                type=TypeRef(kind="dict", args=[STR, TypeRef(kind="any")]),
                desc="a JSON object of the tool's arguments",
            ),
        ],
    )


def _next_turn(
    call: StepCall,
    sig: SignatureIR,
    inputs: dict[str, Any],
    turns: list[Turn],
    tools: dict[str, ToolIR],
    hints: dict[str, str] | None,
    grammar: str,
) -> Turn:
    try:
        text = _fit(call, sig, inputs, turns, hints, demos=[])
        out = call.ask(sig, {**inputs, "trajectory": text}, demos=[], hints=hints,
                       grammar=grammar)
    except ParseFailure as exc:  # shown to the model next turn, like a tool error
        return Turn("", "(unreadable reply)", {}, f"Error: {exc}")
    tool, args = out["next_tool_name"], out["next_tool_args"] or {}
    if tool == FINISH:
        return Turn(out["next_thought"], FINISH, args, "Finished.")
    return Turn(out["next_thought"], tool, args, _observe(call, tools[tool], args))


def _observe(call: StepCall, tool: ToolIR, args: dict[str, Any]) -> str:
    try:
        result = call_tool(tool, call.ctx, args, call.program)
    except Exception as exc:  # any tool failure is an observation, never a crash
        call.ctx.stats.incr("tool_errors")
        return f"Error: {type(exc).__name__}: {exc}"
    text = render_value(result)
    if len(text) > MAX_OBSERVATION_CHARS:
        text = text[:MAX_OBSERVATION_CHARS] + " ...(truncated)"
    return text


def render_trajectory(turns: list[Turn], dropped: int = 0) -> str:
    lines = [f"(the first {dropped} steps were dropped to fit the context)"] if dropped else []
    for i, t in enumerate(turns, dropped + 1):
        lines.append(f"Thought {i}: {t.thought}")
        lines.append(f"Action {i}: {t.tool}({json.dumps(t.args, ensure_ascii=False)})")
        lines.append(f"Observation {i}: {t.observation}")
    return "\n".join(lines) if lines else "(nothing yet)"


def _fit(
    call: StepCall,
    sig: SignatureIR,
    inputs: dict[str, Any],
    turns: list[Turn],
    hints: dict[str, str] | None,
    demos: list[dict[str, Any]] | None,
) -> str:
    """The trajectory text, minus the oldest steps while the prompt is over budget."""
    budget = _context_tokens(call)
    shown = hints and with_hints(sig, inputs, hints)
    full_sig, full_inputs = shown if shown else (sig, inputs)
    demo_list = call.demos(inputs) if demos is None else demos
    for dropped in range(len(turns) + 1):
        text = render_trajectory(turns[dropped:], dropped)
        rendered = call.adapter.format(
            call.predictor, full_sig, demo_list, {**full_inputs, "trajectory": text}, call.program
        )
        if _estimate_tokens(rendered) <= budget or dropped >= len(turns) - 1:
            if dropped:
                call.ctx.stats.incr("react_trimmed_steps", dropped)
            return text
    return render_trajectory([], len(turns))  # pragma: no cover - loop always returns


def _context_tokens(call: StepCall) -> int:
    configured = call.predictor.options.get("max_context_tokens")
    if configured:
        return int(configured)
    return DEFAULT_CONTEXT_TOKENS[call.adapter.mode]


def _estimate_tokens(rendered: Any) -> int:
    """About four characters per token: enough to keep clear of the window."""
    if rendered.prompt is not None:
        return len(rendered.prompt) // 4
    return sum(len(m["content"]) for m in rendered.messages or ()) // 4

