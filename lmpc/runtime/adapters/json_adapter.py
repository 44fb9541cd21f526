"""The JSON format: the reply is one JSON object keyed by the output field names.

Used on its own when a predictor asks for it, and as the fallback when a chat reply
cannot be parsed (the caller counts every fallback).
"""

from __future__ import annotations

import json
from typing import Any

from lmpc.compiler.ir import ProgramIR, SignatureIR
from lmpc.runtime.adapters.base import (
    ENV,
    Adapter,
    Rendered,
    excerpt,
    field_view,
    instructions_of,
    sections,
    usable_demo,
)
from lmpc.runtime.errors import ParseFailure
from lmpc.runtime.types import MISSING, coerce, loads_lenient

SYSTEM = ENV.from_string(
    """\
Your input fields are:
{% for f in inputs %}
{{ loop.index }}. `{{ f.name }}` ({{ f.type }}){% if f.desc %}: {{ f.desc }}{% endif %}

{% endfor %}
Your output fields are:
{% for f in outputs %}
{{ loop.index }}. `{{ f.name }}` ({{ f.type }}){% if f.desc %}: {{ f.desc }}{% endif %}

{% endfor %}

Reply with one JSON object and nothing else. Its keys:
{% for f in outputs %}
- "{{ f.name }}": {{ f.describe }}
{% endfor %}

Your objective: {{ instructions }}"""
)

ASK = ENV.from_string(
    """\
Respond with a JSON object with the keys \
{% for f in outputs %}"{{ f.name }}"{% if not loop.last %}, {% endif %}{% endfor %}."""
)


class JSONAdapter(Adapter):
    """One JSON object per reply."""

    name = "json"
    mode = "chat"

    def prepare(self, signature: SignatureIR, demos: list[dict[str, Any]], program: ProgramIR
                ) -> tuple[tuple[dict[str, str], ...], str]:
        """The system message and demo turns, and the request line after the inputs."""
        outputs = [field_view(f, program) for f in signature.outputs]
        system = SYSTEM.render(
            inputs=[field_view(f, program) for f in signature.inputs],
            outputs=outputs,
            instructions=instructions_of(signature),
        )
        ask = ASK.render(outputs=outputs)
        messages = [{"role": "system", "content": system}]
        for demo in demos:
            if usable_demo(demo, signature):
                messages.append({"role": "user", "content": sections(signature.inputs, demo) + ask})
                answer = {f.name: demo[f.name] for f in signature.outputs if f.name in demo}
                messages.append({"role": "assistant", "content": json.dumps(answer)})
        return tuple(messages), ask

    def finish(self, static: tuple[tuple[dict[str, str], ...], str], signature: SignatureIR,
               inputs: dict[str, Any]) -> Rendered:
        prefix, ask = static
        current = {"role": "user", "content": sections(signature.inputs, inputs) + ask}
        return Rendered(mode="chat", messages=(*prefix, current))

    def parse(self, text: str, signature: SignatureIR, program: ProgramIR) -> dict[str, Any]:
        data = loads_lenient(text)
        if data is MISSING or not isinstance(data, dict):
            raise ParseFailure(f"reply is not a JSON object: {excerpt(text)!r}")
        missing = [f.name for f in signature.outputs if f.name not in data]
        if missing:
            raise ParseFailure(f"JSON reply lacks key(s) {', '.join(missing)}: {excerpt(text)!r}")
        return {f.name: coerce(data[f.name], f.type, program, f.name) for f in signature.outputs}
