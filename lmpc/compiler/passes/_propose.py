"""Writing instructions with the prompt model: the grounded proposer and COPRO's writers.

Every LM call here is an ordinary lmpc program run: a small internal signature built
as IR, executed by the runtime with the ``prompt_model`` role's run context (so the
cache, retries, adapters, usage accounting and budget all apply, attributed to the
calling pass). Nothing here is a hand-written prompt string sent around the runtime.

The grounded proposer (MIPROv2, OPTIMIZERS.md "Instructions") shows the prompt model:
- a summary of the dataset, written from batches of training rows then condensed
  (``data_aware``);
- a summary of the program's structure and of the step the predictor sits in
  (``program_aware``);
- a few demos from the candidate's demo set (``fewshot_aware``);
- the instructions proposed so far for the predictor;
- a tip drawn with the seed (``tip_aware``).

>>> sorted(TIPS)
['creative', 'descriptive', 'high_stakes', 'none', 'persona', 'simple']
>>> clean_instruction('  "Classify the ticket."  ')
'Classify the ticket.'
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from lmpc.compiler.passes._demos import attributed, check_budget, rng_for
from lmpc.compiler.passes._guard import ProposalGuard, Shown, rollout_for
from lmpc.compiler.passes.base import BudgetExceeded, PassContext
from lmpc.ir import (
    Demo,
    ExprIR,
    FieldIR,
    ModuleIR,
    PredictorIR,
    ProgramIR,
    SignatureIR,
    StepIR,
    TypeRef,
)

log = logging.getLogger("lmpc")

#: Tips the proposer may be given, one drawn per candidate (our own wording).
TIPS: dict[str, str] = {
    "none": "",
    "creative": "Try an unexpected angle; an unusual framing of the task may beat the "
                "obvious one.",
    "simple": "Keep the instruction short, plain and direct.",
    "descriptive": "Be thorough: spell out what the task needs and how to handle the "
                   "hard cases.",
    "high_stakes": "Make clear that the answer matters a great deal and that mistakes "
                   "are costly.",
    "persona": "Open the instruction by giving the model a fitting role or persona.",
}

DATA_BATCH = 10  # training rows shown per dataset observation
DATA_BATCHES = 3  # observations before the condensing call
DEMOS_SHOWN = 3  # demos shown to the proposer per candidate
WRITER_MAX_TOKENS = 150  # least room the prompt model gets to write an instruction
_TEXT_CAP = 600  # characters of one field value shown to the prompt model

_STR = TypeRef(kind="str")


# ---------------------------------------------------------------- internal programs


@dataclass(frozen=True)
class Writer:
    """A small internal signature: instructions, input names, one text output."""

    name: str
    instructions: str
    inputs: tuple[tuple[str, str], ...]  # (field name, description)
    output: tuple[str, str]


def internal_program(user: ProgramIR, writer: Writer) -> ProgramIR:
    """A one-step program running ``writer`` (the user's LMs kept, so role names resolve)."""
    sig = SignatureIR(
        name=writer.name,
        instructions=writer.instructions,
        inputs=[FieldIR(name=n, type=_STR, desc=d) for n, d in writer.inputs],
        outputs=[FieldIR(name=writer.output[0], type=_STR, desc=writer.output[1])],
    )
    pid = f"{writer.name}.write"
    fields = [FieldIR(name=n, type=_STR) for n, _ in writer.inputs]
    module = ModuleIR(
        name=writer.name,
        inputs=fields,
        outputs=[FieldIR(name=writer.output[0], type=_STR)],
        steps=[StepIR(name="write", kind="predictor", predictor=pid,
                      args={n: ExprIR(kind="ref", path=[n]) for n, _ in writer.inputs})],
        returns={writer.output[0]: ExprIR(kind="ref", path=["write", writer.output[0]])},
    )
    return ProgramIR(lms=user.lms, signatures={sig.name: sig},
                     predictors={pid: PredictorIR(id=pid, signature=sig)},
                     modules={module.name: module})


def ask(
    writer: Writer,
    user: ProgramIR,
    run_ctx: Any,
    inputs: dict[str, str],
    temperature: float | None = None,
    rollout: int = 0,
) -> str | None:
    """Run ``writer`` once; its text output, or None when the call or parse failed.

    A failed proposal is logged and skipped: one bad reply from the prompt model must not
    end the optimization. ``BudgetExceeded`` always propagates.
    """
    from lmpc.runtime.execute import run_module  # the runtime imports the LM layer lazily

    changes: dict[str, Any] = {"rollout": rollout, **_room_to_write(run_ctx)}
    if temperature is not None:
        changes["temperature"] = temperature
    try:
        pred = run_module(internal_program(user, writer), writer.name, inputs,
                          run_ctx.derive(**changes))
    except BudgetExceeded:
        raise
    except Exception as exc:  # LM outage or unparsable reply: skip this one proposal
        log.info("%s: the prompt model's reply was unusable: %s", writer.name, exc)
        return None
    text = str(pred.outputs.get(writer.output[0]) or "").strip()
    return text or None


def _room_to_write(run_ctx: Any) -> dict[str, Any]:
    """Raise a tiny ``max_tokens`` (set for short labels, e.g. 8) to ``WRITER_MAX_TOKENS``
    for the prompt model: an instruction or a summary needs room. Never lowers it."""
    lm = getattr(run_ctx, "task_lm", None)
    limit = getattr(lm, "settings", {}).get("max_tokens") if lm is not None else None
    if not isinstance(limit, int) or limit >= WRITER_MAX_TOKENS:
        return {}
    settings = {**lm.settings, "max_tokens": WRITER_MAX_TOKENS}
    return {"task_lm": lm.model_copy(update={"settings": settings})}


def stop_if_exceeded(budget: Any) -> None:
    """Re-raise a cap hit during a batch run (where it was counted as a failed row).

    The runtime returns every row's exception, so a ``BudgetExceeded`` raised inside an
    evaluation would otherwise look like a low score instead of a stop.
    """
    reason = getattr(budget, "exceeded", None)
    if reason:
        raise BudgetExceeded(str(reason))


def clean_instruction(text: str | None) -> str | None:
    """Strip whitespace and wrapping quotes; None for an empty proposal."""
    if text is None:
        return None
    text = text.strip().strip('"').strip("'").strip()
    return text or None


# ---------------------------------------------------------------- rendering


def clip(value: Any, cap: int = _TEXT_CAP) -> str:
    """A value as text, cut to ``cap`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= cap else text[: cap - 3] + "..."


def describe_task(pred: PredictorIR) -> str:
    """The predictor's signature as text: its fields with types and descriptions."""
    def one(f: FieldIR) -> str:
        return f"- {f.name} ({f.type})" + (f": {f.desc}" if f.desc else "")

    sig = pred.signature
    return "\n".join(["Inputs:", *map(one, sig.inputs), "Outputs:", *map(one, sig.outputs)])


def render_program(program: ProgramIR, module: str) -> str:
    """The module graph as pseudo-code, with each predictor's current instruction."""
    lines: list[str] = []
    seen: set[str] = set()

    def walk(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        mod = program.modules[name]
        ins = ", ".join(f"{f.name}: {f.type}" for f in mod.inputs)
        outs = ", ".join(f"{f.name}: {f.type}" for f in mod.outputs)
        lines.append(f"module {name}({ins}) -> ({outs})")
        for step in mod.steps:
            lines.append("  " + _step_line(program, step))
        lines.append("  return " + ", ".join(f"{k} = {_expr(e)}" for k, e in mod.returns.items()))
        for step in mod.steps:
            if step.kind == "call" and step.module:
                walk(step.module)

    walk(module)
    return "\n".join(lines)


def _step_line(program: ProgramIR, step: StepIR) -> str:
    args = ", ".join(f"{k} = {_expr(e)}" for k, e in step.args.items())
    if step.kind == "predictor" and step.predictor:
        pred = program.predictors[step.predictor]
        sig = pred.signature
        outs = ", ".join(f.name for f in sig.outputs)
        doc = f'   # "{clip(sig.instructions, 200)}"' if sig.instructions else ""
        return f"{step.name} = {pred.kind} {sig.name}({args}) -> ({outs}){doc}"
    target = step.module or step.tool or "retrieve"
    return f"{step.name} = {target}({args})"


def _expr(expr: ExprIR) -> str:
    return ".".join(expr.path) if expr.kind == "ref" else repr(expr.value)


def render_rows(rows: list[dict[str, Any]], title: str = "Example") -> str:
    """Rows of field values as numbered blocks of ``field: value`` lines."""
    blocks = []
    for i, row in enumerate(rows, start=1):
        body = "\n".join(f"{k}: {clip(v)}" for k, v in row.items())
        blocks.append(f"{title} {i}:\n{body}")
    return "\n\n".join(blocks)


def render_demos(demos: list[Demo]) -> str:
    return render_rows([d.values for d in demos[:DEMOS_SHOWN]], "Demo")


# ---------------------------------------------------------------- the grounded proposer

_OBSERVE = Writer(
    "ObserveData",
    "You are studying the data of a machine-learning task. Given some of its examples "
    "(and any earlier notes), write short notes on what you observe: topics, formats, "
    "label distribution, style, anything unusual. Do not repeat earlier notes.",
    (("examples", "rows of the dataset"), ("earlier_notes", "notes made so far")),
    ("notes", "new observations, a few sentences"),
)
_SUMMARIZE = Writer(
    "SummarizeData",
    "Condense these notes about a dataset into a brief description of it, in a few "
    "sentences.",
    (("notes", "observations about the dataset"),),
    ("summary", "a brief description of the dataset"),
)
_DESCRIBE_PROGRAM = Writer(
    "DescribeProgram",
    "Below is a language-model program written as pseudo-code, and one example of its "
    "data. Describe in a few sentences what task the program solves and how it goes "
    "about it.",
    (("program", "the program's modules and steps"), ("example", "one data example")),
    ("description", "what the program does"),
)
_DESCRIBE_STEP = Writer(
    "DescribeStep",
    "Below is a language-model program and a description of it. Describe in one or two "
    "sentences the role of the named step within the program.",
    (("program", "the program's modules and steps"),
     ("program_description", "what the program does"),
     ("step", "the step to describe")),
    ("role", "what the step contributes"),
)
_PROPOSE_INSTRUCTIONS = (
    "Write a new instruction for one step of a language-model program. The instruction "
    "tells the model what to do with the step's inputs to produce its outputs well. "
    "Use the context you are given; write only the instruction."
)


@dataclass
class ProposerSwitches:
    """Which grounding the proposer sees (MIPROv2's ``*_aware`` parameters)."""

    program_aware: bool = True
    data_aware: bool = True
    tip_aware: bool = True
    fewshot_aware: bool = True


@dataclass
class Proposals:
    """Instruction candidates per predictor (slot 0 is the original) and what grounded them."""

    instructions: dict[str, list[str]]
    report: dict[str, Any] = field(default_factory=dict)


def propose_instructions(
    program: ProgramIR,
    ctx: PassContext,
    n: int,
    demo_sets: dict[str, list[list[Demo]]],
    switches: ProposerSwitches,
    temperature: float,
    seed: int,
    attribution: dict[str, Any],
) -> Proposals:
    """``n`` instruction candidates for every predictor of ``ctx.module``.

    Candidate ``i`` (1 ≤ i < n) of a predictor is written with demo set ``i`` of that
    predictor (when fewshot-aware), a tip drawn with ``seed``, and the candidates already
    written for it; each call uses rollout ``i`` so the cache keeps them distinct.
    """
    run_ctx = attributed(ctx.prompt_ctx, **attribution)
    report: dict[str, Any] = {"switches": vars(switches).copy(), "tips": {}, "skipped": 0}
    guard = ProposalGuard()
    data_summary = ""
    if switches.data_aware and ctx.trainset:
        data_summary = dataset_summary(program, ctx, run_ctx.derive(
            attribution={**(run_ctx.attribution or {}), "step": "data_summary"}))
        report["dataset_summary"] = data_summary
    program_text = render_program(program, ctx.module)
    program_summary, step_roles = "", {}
    if switches.program_aware:
        program_summary, step_roles = _program_context(program, ctx, run_ctx, program_text)
        report["program_summary"] = program_summary
        report["step_roles"] = step_roles
    out: dict[str, list[str]] = {}
    for pred in program.predictors_of(ctx.module):
        grounding = _Grounding(data_summary, program_text, program_summary,
                               step_roles.get(pred.id, ""))
        out[pred.id] = _propose_for(program, ctx, run_ctx, pred, n, demo_sets.get(pred.id, []),
                                    switches, grounding, temperature, seed, report, guard)
    report["guard"] = guard.report()
    return Proposals(out, report)


def dataset_summary(program: ProgramIR, ctx: PassContext, run_ctx: Any) -> str:
    """Observe up to ``DATA_BATCHES`` batches of training rows, then condense the notes."""
    rows = [ex.values for ex in ctx.trainset]
    notes: list[str] = []
    for start in range(0, min(len(rows), DATA_BATCH * DATA_BATCHES), DATA_BATCH):
        check_budget(ctx.budget)
        batch = render_rows(rows[start : start + DATA_BATCH])
        note = ask(_OBSERVE, program, run_ctx,
                   {"examples": batch, "earlier_notes": "\n".join(notes) or "(none yet)"})
        if note:
            notes.append(clip(note, 1200))
    if not notes:
        return ""
    check_budget(ctx.budget)
    return ask(_SUMMARIZE, program, run_ctx, {"notes": "\n".join(notes)}) or notes[-1]


def data_summary_calls(n_train: int) -> int:
    """LM calls ``dataset_summary`` makes for a trainset of ``n_train`` rows."""
    if n_train <= 0:
        return 0
    return min(math.ceil(n_train / DATA_BATCH), DATA_BATCHES) + 1


def _program_context(
    program: ProgramIR, ctx: PassContext, run_ctx: Any, program_text: str
) -> tuple[str, dict[str, str]]:
    """A description of the program, then of each predictor's step in it."""
    example = render_rows([ctx.trainset[0].values]) if ctx.trainset else "(no data)"
    step_ctx = run_ctx.derive(attribution={**(run_ctx.attribution or {}), "step": "program"})
    check_budget(ctx.budget)
    summary = ask(_DESCRIBE_PROGRAM, program, step_ctx,
                  {"program": program_text, "example": example}) or ""
    roles: dict[str, str] = {}
    for pred in program.predictors_of(ctx.module):
        check_budget(ctx.budget)
        roles[pred.id] = ask(_DESCRIBE_STEP, program, step_ctx, {
            "program": program_text,
            "program_description": summary or "(none)",
            "step": f"{pred.id}: {pred.kind} {pred.signature.name}",
        }) or ""
    return summary, roles


@dataclass(frozen=True)
class _Grounding:
    data_summary: str
    program_text: str
    program_summary: str
    step_role: str


def _proposal_writer(switches: ProposerSwitches) -> Writer:
    """The proposing signature with exactly the inputs the switches allow."""
    inputs: list[tuple[str, str]] = [("task", "the step's input and output fields"),
                                     ("current_instruction", "the step's instruction now")]
    if switches.data_aware:
        inputs.append(("dataset_description", "what the task's data looks like"))
    if switches.program_aware:
        inputs += [("program", "the whole program as pseudo-code"),
                   ("program_description", "what the program does"),
                   ("step_role", "the role of this step in the program")]
    if switches.fewshot_aware:
        inputs.append(("demos", "examples of the step's inputs and outputs"))
    inputs.append(("previous_instructions", "instructions already proposed for this step"))
    if switches.tip_aware:
        inputs.append(("tip", "a suggestion for this instruction"))
    return Writer("ProposeInstruction", _PROPOSE_INSTRUCTIONS, tuple(inputs),
                  ("proposed_instruction", "the new instruction"))


def _propose_for(
    program: ProgramIR,
    ctx: PassContext,
    run_ctx: Any,
    pred: PredictorIR,
    n: int,
    demo_sets: list[list[Demo]],
    switches: ProposerSwitches,
    grounding: _Grounding,
    temperature: float,
    seed: int,
    report: dict[str, Any],
    guard: ProposalGuard,
) -> list[str]:
    """Candidate ``i`` is asked at rollout ``i``; a dropped one is re-asked (the guard)."""
    writer = _proposal_writer(switches)
    original = pred.signature.instructions
    found = [original]
    tip_rng = rng_for(seed, f"tips:{pred.id}")
    tips: list[str] = []
    for i in range(1, n):
        tip = tip_rng.choice(sorted(TIPS))
        values = _proposal_inputs(pred, switches, grounding, demo_sets, i, found, tip)
        call_ctx = run_ctx.derive(attribution={**(run_ctx.attribution or {}),
                                               "step": "propose", "predictor": pred.id,
                                               "candidate": i})
        ctx.emit("propose", i, n - 1, label=pred.id)

        def one(attempt: int, values: dict[str, str] = values, i: int = i,
                call_ctx: Any = call_ctx) -> str | None:
            check_budget(ctx.budget)
            return clean_instruction(ask(writer, program, call_ctx, values, temperature,
                                         rollout_for(i, attempt)))

        text = guard.propose(one, found, shown_to(writer, values))
        if switches.tip_aware:
            tips.append(tip)
        if text is None:
            report["skipped"] += 1
            continue
        found.append(text)
    report["tips"][pred.id] = tips
    return found


def _proposal_inputs(
    pred: PredictorIR,
    switches: ProposerSwitches,
    g: _Grounding,
    demo_sets: list[list[Demo]],
    i: int,
    found: list[str],
    tip: str,
) -> dict[str, str]:
    values = {"task": describe_task(pred),
              "current_instruction": pred.signature.instructions or "(none)"}
    if switches.data_aware:
        values["dataset_description"] = g.data_summary or "(unknown)"
    if switches.program_aware:
        values.update(program=g.program_text, program_description=g.program_summary or "(none)",
                      step_role=g.step_role or "(none)")
    if switches.fewshot_aware:
        demos = demo_sets[i % len(demo_sets)] if demo_sets else []
        values["demos"] = render_demos(demos) or "(no demos)"
    values["previous_instructions"] = "\n".join(f"- {clip(t, 300)}" for t in found if t) \
        or "(none)"
    if switches.tip_aware:
        values["tip"] = TIPS[tip] or "(no tip)"
    return values


#: Writer inputs that hold earlier candidates (checked as duplicates, not echoes) or the
#: program's pseudo-code (which quotes the current instruction).
_NOT_CONTEXT = ("current_instruction", "previous_instructions", "attempts", "program")
_TOPIC = ("task", "current_instruction", "dataset_description", "program_description",
          "step_role", "demos")


def shown_to(writer: Writer, values: dict[str, str]) -> Shown:
    """What the prompt model sees for one proposal, for the guard's echo and topic tests."""
    meta = [writer.instructions, writer.output[1], *(d for _, d in writer.inputs),
            *(v for k, v in values.items() if k not in _NOT_CONTEXT)]
    topic = [v for k, v in values.items() if k in _TOPIC]
    return Shown(context="\n".join(meta), topic="\n".join(topic))


def proposal_calls(n_train: int, n_predictors: int, n: int, switches: ProposerSwitches) -> int:
    """LM calls ``propose_instructions`` makes (for projections)."""
    calls = n_predictors * max(n - 1, 0)
    if switches.data_aware:
        calls += data_summary_calls(n_train)
    if switches.program_aware:
        calls += 1 + n_predictors
    return calls


# ---------------------------------------------------------------- COPRO's writers

_ALTERNATIVE = Writer(
    "AlternativeInstruction",
    "You improve instructions for language models. Given a task's fields and its current "
    "instruction, write a better instruction for the same task. Write only the "
    "instruction.",
    (("task", "the step's input and output fields"),
     ("current_instruction", "the instruction to improve")),
    ("proposed_instruction", "the improved instruction"),
)
_FROM_ATTEMPTS = Writer(
    "RefineInstruction",
    "You improve instructions for language models. Below are instructions tried for a "
    "task, each with its score on the data, from worst to best. Study what the better "
    "ones do and write a new instruction that should score higher than all of them. "
    "Write only the instruction.",
    (("task", "the step's input and output fields"),
     ("attempts", "instructions tried so far with their scores, ascending")),
    ("proposed_instruction", "the new instruction"),
)


def alternative_instruction(
    program: ProgramIR, pred: PredictorIR, run_ctx: Any, temperature: float, rollout: int,
    guard: ProposalGuard, earlier: list[str], budget: Any = None,
) -> str | None:
    """One LM-written alternative to ``pred``'s instruction (COPRO's first round).

    Degenerate replies (see ``_guard``) are dropped and re-asked at fresh rollouts;
    None when every attempt was dropped.
    """
    values = {"task": describe_task(pred),
              "current_instruction": pred.signature.instructions or "(none)"}
    return _guarded(_ALTERNATIVE, program, run_ctx, values, temperature, rollout, guard,
                    earlier, budget)


def instruction_from_attempts(
    program: ProgramIR,
    pred: PredictorIR,
    attempts: list[tuple[str, float]],
    run_ctx: Any,
    temperature: float,
    rollout: int,
    guard: ProposalGuard,
    earlier: list[str],
    budget: Any = None,
) -> str | None:
    """A new instruction written from ``attempts`` (instruction, score), shown ascending."""
    ordered = sorted(attempts, key=lambda a: a[1])
    text = "\n\n".join(f"Instruction #{k}: {clip(ins, 800)}\nScore: {score:.3f}"
                       for k, (ins, score) in enumerate(ordered, start=1))
    values = {"task": describe_task(pred), "attempts": text,
              "current_instruction": pred.signature.instructions or ""}
    return _guarded(_FROM_ATTEMPTS, program, run_ctx,
                    {k: v for k, v in values.items() if k != "current_instruction"},
                    temperature, rollout, guard, earlier, budget,
                    shown=shown_to(_FROM_ATTEMPTS, values))


def _guarded(writer: Writer, program: ProgramIR, run_ctx: Any, values: dict[str, str],
             temperature: float, rollout: int, guard: ProposalGuard, earlier: list[str],
             budget: Any, shown: Shown | None = None) -> str | None:
    def one(attempt: int) -> str | None:
        if attempt:
            check_budget(budget)
        return clean_instruction(ask(writer, program, run_ctx, values, temperature,
                                     rollout_for(rollout, attempt)))

    return guard.propose(one, earlier, shown or shown_to(writer, values))
