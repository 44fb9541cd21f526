"""What every adapter shares: the rendered request parts and field helpers.

An adapter turns (signature, demos, inputs) into the parts of an LM request and parses
the reply back into typed values. Templates are Jinja2, compiled once per process in
one environment (immutable after import, so it is not mutable global state).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import jinja2

from lmpc.ir import FieldIR, PredictorIR, ProgramIR, SignatureIR
from lmpc.runtime.types import describe, render_value

ENV = jinja2.Environment(
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    autoescape=False,
    undefined=jinja2.StrictUndefined,
)

#: The opening of every chat-format system message: the fields, numbered and typed.
FIELD_LIST = """\
Your input fields are:
{% for f in inputs %}
{{ loop.index }}. `{{ f.name }}` ({{ f.type }}){% if f.desc %}: {{ f.desc }}{% endif %}

{% endfor %}
Your output fields are:
{% for f in outputs %}
{{ loop.index }}. `{{ f.name }}` ({{ f.type }}){% if f.desc %}: {{ f.desc }}{% endif %}

{% endfor %}
"""


@dataclass(frozen=True)
class Rendered:
    """An adapter's output: messages (chat) or a prompt (text), plus sampling hints.

    ``grammar`` (GBNF) constrains the reply to the declared types; it is sent only to
    models that take one (see ``StepCall.settings``).
    """

    mode: Literal["chat", "text"]
    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    grammar: str | None = None


class Adapter(ABC):
    """Base class: ``format`` renders a request, ``parse`` reads a reply into typed fields.

    A prompt splits into a static part (instructions, field descriptions, demos) that
    depends only on the signature and demos, and the current inputs. Subclasses build
    the static part in ``prepare`` (with Jinja2; memoized) and add the inputs in
    ``finish`` (plain string joins: this runs on every call).
    """

    name = "base"
    mode: Literal["chat", "text"] = "chat"

    def format(
        self,
        predictor: PredictorIR,
        signature: SignatureIR,
        demos: list[dict[str, Any]],
        inputs: dict[str, Any],
        program: ProgramIR,
    ) -> Rendered:
        static = MEMO.get(self, signature, demos, program)
        return self.finish(static, signature, inputs)

    @abstractmethod
    def prepare(self, signature: SignatureIR, demos: list[dict[str, Any]], program: ProgramIR
                ) -> Any:
        """The static part of the prompt (memoized per signature and demos)."""

    @abstractmethod
    def finish(self, static: Any, signature: SignatureIR, inputs: dict[str, Any]) -> Rendered:
        """The request for these inputs, from the static part."""

    @abstractmethod
    def parse(self, text: str, signature: SignatureIR, program: ProgramIR) -> dict[str, Any]:
        """Typed outputs from a reply, or ``ParseFailure``."""


def instructions_of(sig: SignatureIR) -> str:
    """The signature's instructions, or DSPy's default sentence naming the fields (the
    checker fills it in already; this covers IR built without it)."""
    if sig.instructions.strip():
        return sig.instructions.strip()
    return sig.default_instructions()


def field_view(f: FieldIR, program: ProgramIR, detailed: bool = True) -> dict[str, str]:
    """What templates need of a field: name, label, type words, description.

    ``detailed`` includes enum value descriptions (helps chat models; measured on the
    embedded base model, they did not help and pulled answers to the first value).
    """
    return {
        "name": f.name,
        "label": field_label(f),
        "type": str(f.type),
        "describe": describe(f.type, program, detailed),
        "desc": (f.desc or "").strip(),
        "choice": f.type.kind in ("enum", "literal"),
    }


def label_of(name: str) -> str:
    """``support_reply`` -> ``Support Reply`` (the completion layout's field labels)."""
    return " ".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def field_label(f: FieldIR) -> str:
    """A field's label in the completion layout: its ``prefix`` (DSPy's ``prefix=``,
    without the colon) when it has one, else one made from its name."""
    return f.prefix.rstrip().removesuffix(":").strip() if f.prefix else label_of(f.name)


def usable_demo(demo: dict[str, Any], sig: SignatureIR) -> bool:
    """A demo is shown only if it has at least one input and one output of the signature."""
    return any(f.name in demo for f in sig.inputs) and any(f.name in demo for f in sig.outputs)


def excerpt(text: str, n: int = 160) -> str:
    """The start of an LM reply, for error messages."""
    text = text.strip()
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class _Static:
    signature: SignatureIR
    program: ProgramIR
    instructions: str
    inputs: list[FieldIR]
    outputs: list[FieldIR]
    sizes: tuple[int, int]
    demos: list[dict[str, Any]]
    value: Any


class PromptMemo:
    """The static part of each (adapter, signature, demos) prompt, built once.

    Keyed by object identity (the entry keeps the objects alive, so ids are not reused)
    and checked on every hit against the instructions, field lists and demos, so an
    in-place edit by an optimizer is seen. Bounded (least recently used are dropped).
    """

    def __init__(self, size: int = 512) -> None:
        self._entries: OrderedDict[tuple[str, int, int], _Static] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, adapter: Adapter, sig: SignatureIR, demos: list[dict[str, Any]],
            program: ProgramIR) -> Any:
        key = (adapter.name, id(sig), id(program))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and _fresh(entry, sig, demos):
                self._entries.move_to_end(key)
                return entry.value
        value = adapter.prepare(sig, demos, program)
        entry = _Static(sig, program, sig.instructions, sig.inputs, sig.outputs,
                        (len(sig.inputs), len(sig.outputs)), list(demos), value)
        with self._lock:
            self._entries[key] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


def _fresh(entry: _Static, sig: SignatureIR, demos: list[dict[str, Any]]) -> bool:
    return (
        entry.signature is sig
        and entry.inputs is sig.inputs
        and entry.outputs is sig.outputs
        and entry.sizes == (len(sig.inputs), len(sig.outputs))
        and entry.instructions == sig.instructions
        and entry.demos == demos
    )


# Process-wide memo of rendered text: results never depend on it, only speed does.
MEMO = PromptMemo()


def sections(fields: list[FieldIR], values: dict[str, Any]) -> str:
    """``[[ ## name ## ]]`` blocks of the fields present in ``values``."""
    return "".join(
        f"[[ ## {f.name} ## ]]\n{render_value(values[f.name])}\n\n"
        for f in fields
        if f.name in values
    )
