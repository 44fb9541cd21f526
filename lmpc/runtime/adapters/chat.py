"""The field-header format for chat models.

Each field sits under a ``[[ ## name ## ]]`` header and the reply ends with
``[[ ## completed ## ]]``. The system message states the instructions and the fields;
demos are prior user/assistant turns.
"""

from __future__ import annotations

import re
from typing import Any

from lmpc.ir import ProgramIR, SignatureIR
from lmpc.runtime.adapters.base import (
    ENV,
    FIELD_LIST,
    Adapter,
    Rendered,
    excerpt,
    field_view,
    instructions_of,
    sections,
    usable_demo,
)
from lmpc.runtime.errors import ParseFailure
from lmpc.runtime.types import coerce

HEADER = re.compile(r"^\s*\[\[ ## (\w+) ## \]\]\s*$", re.M)

SYSTEM = ENV.from_string(
    FIELD_LIST + """\

Every reply is structured like this, with the values filled in:

{% for f in inputs %}
[[ ## {{ f.name }} ## ]]
{{ '{' }}{{ f.name }}{{ '}' }}

{% endfor %}
{% for f in outputs %}
[[ ## {{ f.name }} ## ]]
{{ '{' }}{{ f.name }}{{ '}' }}{% if f.type != 'str' %}        # {{ f.describe }}{% endif %}


{% endfor %}
[[ ## completed ## ]]

Your objective: {{ instructions }}"""
)

ASK = ENV.from_string(
    """\
Respond with the output fields, in order: \
{% for f in outputs %}`[[ ## {{ f.name }} ## ]]`\
{% if f.type != 'str' %} ({{ f.describe }}){% endif %}, {% endfor %}\
then end with `[[ ## completed ## ]]`."""
)


class ChatAdapter(Adapter):
    """Field headers; the default for chat models.

    Subclasses that keep the turn structure but change the reply format (the JSON
    adapter) override ``system``, ``ask``, ``answer`` and ``parse``.
    """

    name = "chat"
    mode = "chat"
    system = SYSTEM
    ask = ASK

    def prepare(self, signature: SignatureIR, demos: list[dict[str, Any]], program: ProgramIR
                ) -> tuple[tuple[dict[str, str], ...], str]:
        """The system message and demo turns, and the request line after the inputs."""
        outputs = [field_view(f, program) for f in signature.outputs]
        system = self.system.render(
            inputs=[field_view(f, program) for f in signature.inputs],
            outputs=outputs,
            instructions=instructions_of(signature),
        )
        ask = self.ask.render(outputs=outputs)
        messages = [{"role": "system", "content": system}]
        for demo in demos:
            if usable_demo(demo, signature):
                messages.append({"role": "user", "content": sections(signature.inputs, demo) + ask})
                messages.append({"role": "assistant", "content": self.answer(signature, demo)})
        return tuple(messages), ask

    def finish(self, static: tuple[tuple[dict[str, str], ...], str], signature: SignatureIR,
               inputs: dict[str, Any]) -> Rendered:
        prefix, ask = static
        current = {"role": "user", "content": sections(signature.inputs, inputs) + ask}
        return Rendered(mode="chat", messages=(*prefix, current))

    def answer(self, sig: SignatureIR, values: dict[str, Any]) -> str:
        """The assistant turn for given output values (demos)."""
        return sections(sig.outputs, values) + "[[ ## completed ## ]]"

    def parse(self, text: str, signature: SignatureIR, program: ProgramIR) -> dict[str, Any]:
        sections = split_sections(text)
        missing = [f.name for f in signature.outputs if f.name not in sections]
        if missing:
            raise ParseFailure(
                f"reply lacks field header(s) {', '.join(missing)}: {excerpt(text)!r}"
            )
        return {
            f.name: coerce(sections[f.name], f.type, program, f.name) for f in signature.outputs
        }


def split_sections(text: str) -> dict[str, str]:
    """``{field name: text under its header}``; the first occurrence of a header wins."""
    sections: dict[str, str] = {}
    marks = list(HEADER.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        sections.setdefault(mark.group(1), text[mark.end() : end].strip())
    return sections
