"""What the reflective passes (``gepa``, ``simba``) share: runs with feedback, and the
reflection LM writing an instruction (or a rule of advice) from them.

A *rollout* is one run of the module on one example with its trace, its graded score
and the metric's feedback; a failed run keeps its error as the feedback. The reflection
LM is an ordinary lmpc program run (``_propose.ask``) with the reflection role's run
context, so the cache, retries, usage accounting and budget all apply; every text it
writes goes through the proposal guard (``_guard``), which drops degenerate ones and
asks again at a fresh rollout index.

>>> r = Rollout(Example({"text": "great"}, {"label": "positive"}), {"label": "negative"},
...             [], 0.0, "expected label = 'positive', got 'negative'")
>>> print(render_records([record_for(r, None)]))
Example 1:
Inputs:
  text: great
Generated outputs:
  label: negative
Score: 0.00
Feedback: expected label = 'positive', got 'negative'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmpc.compiler.passes._demos import attributed, check_budget
from lmpc.compiler.passes._guard import ProposalGuard, rollout_for
from lmpc.compiler.passes._propose import (
    Writer,
    ask,
    clean_instruction,
    clip,
    describe_task,
    shown_to,
    stop_if_exceeded,
)
from lmpc.compiler.passes.base import PassContext
from lmpc.ir import Example, ProgramIR

RECORDS_SHOWN = 6  # rollouts shown to the reflection LM per predictor
_VALUE_CAP = 400


@dataclass
class Rollout:
    """One run of the module on one example, scored, with the metric's feedback."""

    example: Example
    outputs: dict[str, Any] | None  # None: the run failed
    trace: list[Any]
    score: float
    feedback: str
    error: str = ""
    focus: dict[str, str] = field(default_factory=dict)  # predictor -> its own feedback


def run_rollouts(
    program: ProgramIR,
    ctx: PassContext,
    examples: list[Example],
    run_ctx: Any,
    focus: list[str] | None = None,
    stage: str = "evaluate",
) -> list[Rollout]:
    """Run ``ctx.module`` on ``examples`` (in parallel), score each with feedback.

    ``focus``: predictors to ask focused feedback for (a Python metric taking
    ``pred_name`` is told which one is being optimized). A failed run scores 0 and
    keeps its error; ``BudgetExceeded`` raised inside the batch is re-raised.
    """
    from lmpc.eval.evaluate import evaluate  # evaluation pulls in the runtime lazily

    result = evaluate(program, ctx.module, examples, ctx.metric, run_ctx, ctx.threads,
                      failure_score=0.0, progress=ctx.eval_progress(stage))
    stop_if_exceeded(ctx.budget)
    errors = iter(result.errors)
    out = []
    for example, prediction, score in zip(examples, result.predictions, result.scores,
                                          strict=True):
        if prediction is None:
            error = next(errors, "the run failed")
            out.append(Rollout(example, None, [], 0.0, f"the program failed: {error}", error))
            continue
        fb = _feedback(ctx, example, prediction, None)
        rollout = Rollout(example, dict(prediction.outputs), list(prediction.trace),
                          float(score), fb)
        for pid in focus or []:
            rollout.focus[pid] = _feedback(ctx, example, prediction, pid)
        out.append(rollout)
    return out


def _feedback(ctx: PassContext, example: Example, prediction: Any, pid: str | None) -> str:
    """The metric's explanation (a metric without one: its score, as DSPy words it)."""
    explain = getattr(ctx.metric, "with_feedback", None)
    if explain is None:
        return f"This trajectory got a score of {float(ctx.metric(example, prediction)):.2f}."
    try:
        return explain(example, prediction, predictor=pid).feedback or \
            "This trajectory got no feedback."
    except Exception as exc:  # a judge's LM failed: the score stands, the text is lost
        return f"(no feedback: {type(exc).__name__}: {exc})"


def record_for(rollout: Rollout, pid: str | None) -> dict[str, Any]:
    """A reflective-dataset record of one rollout for predictor ``pid`` (None: whole run).

    The predictor's own step (its inputs and what it generated) when it ran; the
    module's inputs and outputs otherwise.
    """
    steps = [s for s in rollout.trace if pid is None or s.predictor == pid]
    if steps:
        step = steps[-1]
        inputs, outputs = dict(step.inputs), dict(step.outputs)
    else:
        inputs = dict(rollout.example.inputs)
        outputs = dict(rollout.outputs) if rollout.outputs is not None else {
            "error": rollout.error or "the run failed"}
    feedback = rollout.focus.get(pid or "", rollout.feedback) if pid else rollout.feedback
    return {"Inputs": {k: clip(v, _VALUE_CAP) for k, v in inputs.items()},
            "Generated Outputs": {k: clip(v, _VALUE_CAP) for k, v in outputs.items()},
            "Score": round(rollout.score, 6), "Feedback": feedback}


def render_records(records: list[dict[str, Any]]) -> str:
    """Reflective records as numbered plain-text blocks (what the reflection LM reads)."""
    blocks = []
    for i, rec in enumerate(records[:RECORDS_SHOWN], start=1):
        lines = [f"Example {i}:", "Inputs:"]
        lines += [f"  {k}: {v}" for k, v in rec["Inputs"].items()]
        lines.append("Generated outputs:")
        lines += [f"  {k}: {v}" for k, v in rec["Generated Outputs"].items()]
        lines += [f"Score: {float(rec['Score']):.2f}", f"Feedback: {rec['Feedback']}"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------- the writers

REFLECT = Writer(
    "ReflectInstruction",
    "You improve the instruction of one step of a language-model program. You are given "
    "the step's current instruction and examples of its inputs, the outputs it generated, "
    "and feedback on each. Read the feedback carefully: work out what the step got "
    "wrong, which facts about the task the feedback reveals, and what a correct answer "
    "needs. Then write a new, complete instruction for the step that fixes these "
    "mistakes and keeps what worked. Write only the instruction.",
    (("task", "the step's input and output fields"),
     ("current_instruction", "the instruction the step ran with"),
     ("examples_with_feedback", "inputs, generated outputs and feedback")),
    ("new_instruction", "the improved instruction"),
)

ADVICE = Writer(
    "OfferAdvice",
    "Two runs of a language-model program on the same input are shown: one that scored "
    "well and one that scored badly, with the metric's feedback. Compare them and write "
    "one short rule of advice for the named step that would make it produce the better "
    "outcome on inputs like this one. Write only the advice.",
    (("task", "the step's input and output fields"),
     ("current_instruction", "the step's instruction now"),
     ("better_run", "the run that scored higher, with its feedback"),
     ("worse_run", "the run that scored lower, with its feedback")),
    ("advice", "one rule for the step, in a sentence or two"),
)


@dataclass
class Reflection:
    """What one reflection asked and what came back (for the artifact's record)."""

    predictor: str
    parent: str
    text: str | None
    shown: str
    asked: int


def reflect_instruction(
    program: ProgramIR,
    ctx: PassContext,
    reflection_ctx: Any,
    pid: str,
    current: str,
    records: list[dict[str, Any]],
    guard: ProposalGuard,
    earlier: list[str],
    rollout: int,
    temperature: float | None = None,
) -> Reflection:
    """A new instruction for ``pid`` written from ``records`` (None when every reply was
    dropped by the guard). ``earlier`` are the instructions already tried for it."""
    pred = program.predictors[pid]
    shown = render_records(records)
    values = {"task": describe_task(pred), "current_instruction": current or "(none)",
              "examples_with_feedback": shown}
    call_ctx = attributed(reflection_ctx, step="reflect", predictor=pid)
    before = guard.asked

    def one(attempt: int) -> str | None:
        check_budget(ctx.budget)
        return clean_instruction(ask(REFLECT, program, call_ctx, values, temperature,
                                     rollout_for(rollout, attempt)))

    text = guard.propose(one, [current, *earlier], shown_to(REFLECT, values))
    return Reflection(pid, current, text, shown, guard.asked - before)


def write_advice(
    program: ProgramIR,
    ctx: PassContext,
    writer_ctx: Any,
    pid: str,
    better: str,
    worse: str,
    guard: ProposalGuard,
    earlier: list[str],
    rollout: int,
) -> str | None:
    """One rule of advice for ``pid`` from a better and a worse run (SIMBA)."""
    pred = program.predictors[pid]
    values = {"task": describe_task(pred),
              "current_instruction": pred.signature.instructions or "(none)",
              "better_run": better, "worse_run": worse}
    call_ctx = attributed(writer_ctx, step="advice", predictor=pid)

    def one(attempt: int) -> str | None:
        check_budget(ctx.budget)
        return clean_instruction(ask(ADVICE, program, call_ctx, values, None,
                                     rollout_for(rollout, attempt)))

    return guard.propose(one, earlier, shown_to(ADVICE, values))
