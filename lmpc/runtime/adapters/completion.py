"""The compact text layout for base (non-chat) models, sent as a text completion.

A base model continues a document; it does not follow a reply format. Measured on the
embedded Gemma 3 270M: a header-style prompt never closes its format, while plain
``Field: value`` few-shot blocks with a newline stop classify reliably. So the prompt is

    <instructions>
    <one line per constrained output: "Priority is one of: low, medium, high.">

    Ticket: <demo input>
    Priority: <demo output>

    Ticket: <current input>
    Priority:

and generation stops at the end of the last output field. Several output fields are
asked for in order in one completion, each ``Label: value`` on its own line.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import jinja2

from lmpc.ir import FieldIR, ProgramIR, SignatureIR
from lmpc.runtime.adapters.base import (
    Adapter,
    Rendered,
    excerpt,
    field_label,
    field_view,
    instructions_of,
    usable_demo,
)
from lmpc.runtime.adapters.grammar import completion_grammar
from lmpc.runtime.errors import ParseFailure
from lmpc.runtime.types import coerce, render_value, token_budget

# Whitespace is exact here (a base model continues it), so no block trimming.
PROMPT = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined).from_string(
    "{{ instructions }}\n"
    "{% for f in guide %}{{ f.label }} — {{ f.desc or f.describe }}"
    "{% if f.desc and f.describe != 'text' and f.describe not in f.desc %} ({{ f.describe }})"
    "{% endif %}.\n{% endfor %}"
    "{% for block in blocks %}\n{% for line in block %}{{ line }}\n{% endfor %}{% endfor %}"
)

# Types whose value fits on one line: a newline ends the last field.
ONE_LINE = frozenset({"int", "float", "bool", "enum", "literal"})


class CompletionAdapter(Adapter):
    """``Field: value`` blocks for base models (text completion)."""

    name = "completion"
    mode = "text"

    def prepare(self, signature: SignatureIR, demos: list[dict[str, Any]], program: ProgramIR
                ) -> tuple[str, str, tuple[str, ...], int, str]:
        """Instructions, guide and demo blocks; the first output label; stops; budget;
        the grammar of the outputs."""
        blocks = [
            _lines(signature.inputs, demo) + _lines(signature.outputs, demo, as_output=True)
            for demo in demos
            if usable_demo(demo, signature)
        ]
        prefix = self.header(signature, program, blocks)
        first = field_label(signature.outputs[0]) + ":"
        grammar = completion_grammar(signature.outputs, program)
        return prefix, first, stops_for(signature), budget_for(signature, program), grammar

    def header(self, signature: SignatureIR, program: ProgramIR, blocks: list[list[str]]
               ) -> str:
        """Everything before the current input's block (which ``finish`` adds after a
        blank line): instructions, guide, demo blocks."""
        return PROMPT.render(instructions=instructions_of(signature),
                             guide=self.guide(signature, program), blocks=blocks)

    def guide(self, signature: SignatureIR, program: ProgramIR) -> list[dict[str, str]]:
        """The lines under the instructions that say what each output is: its description
        and its type in words. Input and enum value descriptions stay out (``left_out``)."""
        return [field_view(f, program, detailed=False) for f in signature.outputs
                if f.type.kind not in ("str", "any") or f.desc]

    def finish(self, static: tuple[str, str, tuple[str, ...], int, str],
               signature: SignatureIR, inputs: dict[str, Any]) -> Rendered:
        prefix, first, stops, budget, grammar = static
        current = "".join(line + "\n" for line in _lines(signature.inputs, inputs))
        head = f"{prefix}\n" if prefix else ""  # the tuned layout may have nothing before
        return Rendered(mode="text", prompt=f"{head}{current}{first}", stop=stops,
                        max_tokens=budget, grammar=grammar)

    def answer(self, signature: SignatureIR, values: dict[str, Any]) -> str:
        """The completion that answers a prompt of ``finish`` with output ``values``: the
        text after the first output's label, as a demo block writes it, and the stop that
        ends it (what fine-tuning teaches a base model to write).

        >>> from lmpc.ir import FieldIR, TypeRef
        >>> sig = SignatureIR(name="S", inputs=[FieldIR(name="q", type=TypeRef(kind="str"))],
        ...     outputs=[FieldIR(name="n", type=TypeRef(kind="int"))])
        >>> CompletionAdapter().answer(sig, {"n": 3})
        ' 3\\n'
        """
        text = "\n".join(_lines(signature.outputs, values, as_output=True))
        first = field_label(signature.outputs[0]) + ":"
        if not text.startswith(first):
            raise ParseFailure(f"no value for output '{signature.outputs[0].name}'")
        return text[len(first):] + stops_for(signature)[0]

    def parse(self, text: str, signature: SignatureIR, program: ProgramIR) -> dict[str, Any]:
        values = split_fields(text, signature)
        missing = [f for f in signature.outputs if f.name not in values]
        if missing:
            labels = ", ".join(field_label(m) for m in missing)
            raise ParseFailure(f"completion lacks line(s) for {labels}: {excerpt(text)!r}")
        return {f.name: coerce(values[f.name], f.type, program, f.name) for f in signature.outputs}


    def continuation(self, rendered: Rendered, text: str, signature: SignatureIR,
                     program: ProgramIR) -> tuple[Rendered, str] | None:
        """A request that continues ``text`` at the first missing output's label.

        A base model often writes a first field (a reasoning, say) and stops or drifts
        before the next label; prompting again with what it wrote plus ``Answer:`` gets
        the rest. Returns the request and the text it continues (``text`` + label), or
        None when no output is missing.
        """
        values = split_fields(text, signature)
        missing = [f for f in signature.outputs if f.name not in values]
        if not missing or rendered.prompt is None:
            return None
        so_far = _before_new_block(text, signature).rstrip()
        tail = f"{so_far}\n{field_label(missing[0])}:"
        rest = signature.outputs[signature.outputs.index(missing[0]):]
        grammar = completion_grammar(rest, program) if rendered.grammar else None
        return replace(rendered, prompt=rendered.prompt + tail, grammar=grammar), tail


class TunedCompletionAdapter(CompletionAdapter):
    """The completion layout of a predictor on weights tuned to answer it (an LM whose
    ``tuned.prompt`` is "compact"): the demo blocks and the current input only, without
    the instructions and the guide lines. The tuned weights learned what those say —
    their training records were rendered by this same adapter (``records.record_for``
    goes through ``choose`` with the LM as it will be tuned) — so the prompt sends only
    what varies::

        Ticket: <current input>
        Category:

    >>> from lmpc.ir import FieldIR, PredictorIR, TypeRef
    >>> sig = SignatureIR(name="S", instructions="Add.", inputs=[FieldIR(name="q",
    ...     type=TypeRef(kind="str"))], outputs=[FieldIR(name="n", type=TypeRef(kind="int"))])
    >>> pred = PredictorIR(id="M.p", signature=sig)
    >>> TunedCompletionAdapter().format(pred, sig, [], {"q": "1+1"}, ProgramIR()).prompt
    'Q: 1+1\\nN:'
    """

    name = "completion-tuned"

    def header(self, signature: SignatureIR, program: ProgramIR, blocks: list[list[str]]
               ) -> str:
        return "\n".join("".join(line + "\n" for line in block) for block in blocks)


def left_out(sig: SignatureIR, program: ProgramIR) -> list[str]:
    """The descriptions this layout does not write, for ``lmpc show`` to say so.

    Input field descriptions and enum value descriptions are left out on purpose:
    measured on the embedded Gemma 3 270M (bench/descriptions_in_prompt.py), neither
    helped both tasks tried — input descriptions took one task's zero-shot accuracy up
    and another's down by more, value descriptions never raised it — and with demos the
    differences were within a row or two.
    """
    notes = [f"the description of input '{f.name}'" for f in sig.inputs if f.desc]
    for f in sig.outputs:
        inner = f.type.args[0] if f.type.kind == "optional" else f.type
        enum = program.enums.get(inner.name or "") if inner.kind == "enum" else None
        if enum is not None and enum.descs:
            notes.append(f"the value descriptions of enum {enum.name} (output '{f.name}')")
    return notes


def _before_new_block(text: str, sig: SignatureIR) -> str:
    """``text`` up to a blank line, ``---`` or a line that starts a new example."""
    text = re.split(r"\n\s*\n|\n---", text, maxsplit=1)[0]
    in_labels = {field_label(f).lower() for f in sig.inputs}
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        head, sep, _ = line.partition(":")
        if sep and head.strip().lower() in in_labels:
            return "\n".join(lines[:i])
    return text


def _lines(fields: list[FieldIR], values: dict[str, Any], as_output: bool = False
           ) -> list[str]:
    """``Label: value`` lines; blank lines inside a value would end the block early.

    Outputs other than text are compact JSON on one line: the form the grammar asks for.
    """
    lines = []
    for f in fields:
        if f.name in values:
            value = values[f.name]
            text = render_value(value) if as_output and not isinstance(value, str) else (
                _text(value))
            lines.append(f"{field_label(f)}:{'' if text.startswith(chr(10)) else ' '}{text}")
    return lines


def _text(value: Any) -> str:
    # Passages and other lists of text read better as numbered lines than as JSON.
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "".join(f"\n[{i}] {_squeeze(v)}" for i, v in enumerate(value, 1))
    text = _squeeze(render_value(value))
    return "\n" + text if "\n" in text else text  # a multi-line value starts on its own line


def _squeeze(text: str) -> str:
    return re.sub(r"\n\s*\n+", "\n", text.strip())


def stops_for(sig: SignatureIR) -> tuple[str, ...]:
    """Stop at the end of the last output field, or when a new block starts."""
    stops = ["\n\n", "\n---"]
    # a new block starts with any input label (APIs take at most four stops)
    stops += [f"\n{field_label(f)}:" for f in sig.inputs]
    if len(sig.outputs) == 1 and sig.outputs[0].type.kind in ONE_LINE:
        stops = ["\n", *stops[1:]]
    return tuple(stops[:4])


def budget_for(sig: SignatureIR, program: ProgramIR) -> int:
    """max_tokens for all output fields, each with room for its label."""
    return sum(token_budget(f.type, program) + 4 for f in sig.outputs)


def split_fields(text: str, sig: SignatureIR) -> dict[str, str]:
    """Read ``Label: value`` lines; the text starts right after the first output label."""
    text = re.split(r"\n\s*\n|\n---", text, maxsplit=1)[0]  # a server may ignore stops
    out_labels = {field_label(f).lower(): f.name for f in sig.outputs}
    in_labels = {field_label(f).lower() for f in sig.inputs}
    current = sig.outputs[0].name
    parts: dict[str, list[str]] = {current: []}
    for i, line in enumerate(text.split("\n")):
        head, sep, rest = line.partition(":")
        key = head.strip().lower()
        if i > 0 and sep and key in in_labels:
            break  # the model started a new example
        if i > 0 and sep and key in out_labels and out_labels[key] not in parts:
            current = out_labels[key]
            parts[current] = [rest]
            continue
        parts[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in parts.items()}
