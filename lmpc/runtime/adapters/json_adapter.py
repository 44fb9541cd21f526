"""The JSON format: the reply is one JSON object keyed by the output field names.

Used on its own when a predictor asks for it, and as the fallback when a chat reply
cannot be parsed (the caller counts every fallback).
"""

from __future__ import annotations

import json
from typing import Any

from lmpc.ir import ProgramIR, SignatureIR
from lmpc.runtime.adapters.base import ENV, FIELD_LIST, excerpt
from lmpc.runtime.adapters.chat import ChatAdapter
from lmpc.runtime.errors import ParseFailure
from lmpc.runtime.types import MISSING, coerce, loads_lenient

SYSTEM = ENV.from_string(
    FIELD_LIST + """\

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


class JSONAdapter(ChatAdapter):
    """One JSON object per reply (same turns as the field-header format)."""

    name = "json"
    system = SYSTEM
    ask = ASK

    def answer(self, sig: SignatureIR, values: dict[str, Any]) -> str:
        return json.dumps({f.name: values[f.name] for f in sig.outputs if f.name in values})

    def parse(self, text: str, signature: SignatureIR, program: ProgramIR) -> dict[str, Any]:
        data = loads_lenient(text)
        if data is MISSING or not isinstance(data, dict):
            raise ParseFailure(f"reply is not a JSON object: {excerpt(text)!r}")
        missing = [f.name for f in signature.outputs if f.name not in data]
        if missing:
            raise ParseFailure(f"JSON reply lacks key(s) {', '.join(missing)}: {excerpt(text)!r}")
        return {f.name: coerce(data[f.name], f.type, program, f.name) for f in signature.outputs}
