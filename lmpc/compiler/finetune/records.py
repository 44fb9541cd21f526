"""Training records from a teacher's successful traces (``bootstrap_finetune``).

Each step of an accepted trace becomes one record in exactly the form the student's
predictor is prompted with on its tuned model: the completion layout for a base (text)
model — the prompt ``CompletionAdapter.finish`` renders and the completion a demo block
would show, ending with the stop — or, for a chat model, the adapter's messages and the
assistant turn its parser reads. The signature is the one the predictor kind really
sends: ``chain_of_thought`` and ``multi_chain_comparison`` with their ``reasoning``,
``react`` its extract step (inputs plus the trajectory, reasoning, outputs); ``predict``,
``best_of_n`` and ``refine`` the declared one.

>>> from lmpc.ir import FieldIR, LMIR, ModuleIR, PredictorIR, SignatureIR, StepIR, TypeRef
>>> sig = SignatureIR(name="S", instructions="Answer.", inputs=[FieldIR(name="q",
...     type=TypeRef(kind="str"))], outputs=[FieldIR(name="a", type=TypeRef(kind="int"))])
>>> prog = ProgramIR(signatures={"S": sig}, predictors={"M.p": PredictorIR(id="M.p",
...     signature=sig)}, modules={"M": ModuleIR(name="M", steps=[StepIR(name="p",
...     kind="predictor", predictor="M.p")])})
>>> rec = records_for(prog, "M", [("M.p", {"q": "1+1", "a": 2})],
...                   {"M.p": LMIR(name="l", model="local/gemma-3-270m")})[0]
>>> print(rec.prompt + rec.completion, end="")
Answer.
A — an integer.
<BLANKLINE>
Q: 1+1
A: 2
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from lmpc.ir import LMIR, PredictorIR, ProgramIR, SignatureIR


class RecordError(Exception):
    """A trace step that cannot become a training record (named in the message)."""


@dataclass(frozen=True)
class TrainingRecord:
    """One fine-tuning example: a prompt (or messages) and what the model should write."""

    predictor: str
    mode: Literal["text", "chat"]
    prompt: str | None = None
    completion: str | None = None
    messages: tuple[dict[str, str], ...] = ()
    example: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as one line of a fine-tuning JSONL file (OpenAI's formats: chat
        ``{"messages": [...]}``, completion ``{"prompt", "completion"}``)."""
        if self.mode == "chat":
            return {"messages": [dict(m) for m in self.messages]}
        return {"prompt": self.prompt, "completion": self.completion}


def effective_step(pred: PredictorIR, values: dict[str, Any]
                   ) -> tuple[SignatureIR, dict[str, Any], dict[str, Any]]:
    """The signature a predictor of this kind sends, and a step's values split into its
    inputs and outputs."""
    from lmpc.runtime.predictors.react import _extract_signature
    from lmpc.runtime.predictors.simple import with_reasoning

    sig = pred.signature
    if pred.kind == "react":
        sig = _extract_signature(sig)
    elif pred.kind in ("chain_of_thought", "multi_chain_comparison") and "reasoning" in values:
        sig = with_reasoning(sig)
    missing = [f.name for f in sig.inputs + sig.outputs if f.name not in values]
    if missing:
        raise RecordError(f"predictor {pred.id}: the trace step lacks {', '.join(missing)}")
    inputs = {f.name: values[f.name] for f in sig.inputs}
    outputs = {f.name: values[f.name] for f in sig.outputs}
    return sig, inputs, outputs


def record_for(program: ProgramIR, pred: PredictorIR, values: dict[str, Any], lm: LMIR,
               example: int | None = None) -> TrainingRecord:
    """One record for ``pred`` on ``lm`` from a trace step's ``values``."""
    from lmpc.runtime.adapters import choose

    sig, inputs, outputs = effective_step(pred, values)
    adapter = choose(pred.adapter, lm)
    demos = [d.values for d in pred.demos]  # the student's own (none, normally)
    rendered = adapter.format(pred, sig, demos, inputs, program)
    answer = adapter.answer(sig, outputs)  # type: ignore[attr-defined]
    if rendered.mode == "text":
        return TrainingRecord(pred.id, "text", prompt=rendered.prompt, completion=answer,
                              example=example)
    messages = (*(dict(m) for m in rendered.messages or ()),
                {"role": "assistant", "content": answer})
    return TrainingRecord(pred.id, "chat", messages=messages, example=example)


def records_for(program: ProgramIR, module: str,
                steps: Iterable[tuple[str, dict[str, Any]]] | Iterable[tuple[str, dict[str, Any],
                                                                            int]],
                lms: dict[str, LMIR]) -> list[TrainingRecord]:
    """Records for ``steps`` — (student predictor id, step values[, example index]) —
    each rendered for the LM its predictor will be tuned on (``lms`` by predictor id)."""
    preds = {p.id: p for p in program.predictors_of(module)}
    out = []
    for step in steps:
        pid, values = step[0], step[1]
        example = step[2] if len(step) > 2 else None  # type: ignore[misc]
        if pid not in preds:
            raise RecordError(f"trace step of unknown predictor {pid}")
        out.append(record_for(program, preds[pid], values, lms[pid], example))
    return out


def group_records(records: list[TrainingRecord], multitask: bool
                  ) -> dict[str, list[TrainingRecord]]:
    """The training sets: one (key ``"*"``) for every predictor when ``multitask``,
    else one per predictor id.

    >>> recs = [TrainingRecord("M.a", "text", "p", "c"), TrainingRecord("M.b", "text", "p", "c")]
    >>> {k: len(v) for k, v in group_records(recs, True).items()}
    {'*': 2}
    >>> sorted(group_records(recs, False))
    ['M.a', 'M.b']
    """
    if multitask:
        return {"*": list(records)} if records else {}
    groups: dict[str, list[TrainingRecord]] = {}
    for rec in records:
        groups.setdefault(rec.predictor, []).append(rec)
    return groups
