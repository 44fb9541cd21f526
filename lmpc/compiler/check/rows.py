"""Every row of an optimized module's dataset against the module's declared types.

A label that is no value of its enum, or text where an int is declared, would otherwise
be accepted and quietly score as wrong on every row. Values are read as the build reads
them: a CSV cell is text, so ``"3"`` is an int there; JSON values keep their JSON type,
but a number written as a numeric string is accepted too. An enum label may differ from
its value in case only.

>>> from lmpc.ir import TypeRef
>>> why_not("urgent", TypeRef(kind="enum", name="P"), {"P": ["low", "high"]})
"'urgent' is not one of: low, high"
>>> why_not("3", TypeRef(kind="int"), {}) is None, why_not("three", TypeRef(kind="int"), {})
(True, "'three' is not an int")
"""

from __future__ import annotations

import json
from typing import Any

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.typecheck import literal_fits
from lmpc.ir import ModuleIR, Span, TypeRef

MAX_ERRORS = 5  # per dataset and optimize block; the rest are counted


def check_rows(dataset: str, module: ModuleIR, span: Span, ctx: Ctx) -> None:
    """E1404 at each row (file:line) whose input or label does not fit its type."""
    ds = ctx.program.datasets.get(dataset)
    records = ctx.records.get(dataset, [])
    if ds is None or not records:
        return
    fields = {f.name: f.type for f in (*module.inputs, *module.outputs)}
    problems = []
    for record in records:
        for name, type_ in fields.items():
            column = ds.mapping.get(name, name)
            if column not in record.values:
                continue
            why = why_not(record.values[column], type_, ctx.enums)
            if why is not None:
                role = "input" if any(f.name == name for f in module.inputs) else "label"
                problems.append((record, f"{role} '{name}': {why} ({type_})"))
    for record, message in problems[:MAX_ERRORS]:
        path = record.where.rsplit(":", 1)[0]
        ctx.scope.error("E1404", f"dataset '{dataset}': {message}",
                        Span(file=path, line=record.line, col=1))
    if len(problems) > MAX_ERRORS:
        ctx.scope.error("E1404", f"dataset '{dataset}': {len(problems) - MAX_ERRORS} more "
                        f"values do not fit the types of {module.name}", span)


def why_not(value: Any, t: TypeRef, enums: dict[str, list[str]]) -> str | None:
    """None when ``value`` (from a data file) is a value of ``t``, else why not."""
    shown = _shown(value)
    kind = t.kind
    if kind == "any":
        return None
    if value is None or value == "":
        return None if kind == "optional" or (value == "" and kind == "str") else \
            f"{shown} is empty"
    if kind == "optional":
        return why_not(value, t.args[0], enums) if t.args else None
    if kind == "str":
        return None if isinstance(value, str | int | float | bool) else f"{shown} is not text"
    if kind in ("int", "float"):
        number = _number(value)
        if number is None or (kind == "int" and number != int(number)):
            return f"{shown} is not {'an int' if kind == 'int' else 'a number'}"
        return None
    if kind == "bool":
        ok = isinstance(value, bool) or str(value).strip().lower() in ("true", "false")
        return None if ok else f"{shown} is not true or false"
    if kind == "enum":
        values = enums.get(t.name or "", [])
        text = str(value).strip()
        if text in values or text.lower() in {v.lower() for v in values}:
            return None
        return f"{shown} is not one of: {', '.join(values)}"
    structured = _json(value)
    if structured is _NOT_JSON or not literal_fits(structured, t, enums):
        return f"{shown} is not a value of this type"
    return None


_NOT_JSON = object()


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return _NOT_JSON if value.strip()[:1] in "[{" else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
