"""Coercion of LM output (text or parsed JSON) to the declared ``TypeRef`` values.

Parsing is forgiving where a model is sloppy in a harmless way (quotes around an enum
value, a trailing period, a bullet list instead of a JSON array) and strict where
guessing would be wrong: anything else raises :class:`CoercionError` naming the field,
the expected type and the text that came back.

>>> from lmpc.ir import TypeRef
>>> coerce(" 42. ", TypeRef(kind="int"))
42
>>> coerce("- a\\n- b", TypeRef(kind="list", args=[TypeRef(kind="str")]))
['a', 'b']
>>> describe(TypeRef(kind="literal", values=["yes", "no"]))
'one of: yes, no'
"""

from __future__ import annotations

import json
import re
from typing import Any

from lmpc.ir import ProgramIR, TypeRef
from lmpc.runtime.errors import ParseFailure

_NONE_WORDS = frozenset({"", "none", "null", "n/a", "na", "nil", "-"})
_TRUE_WORDS = frozenset({"true", "yes", "y", "1", "correct", "t"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0", "incorrect", "f"})
_EDGE_JUNK = " \t\r\n\"'`*.,;:!?()[]{}<>«»"
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


class CoercionError(ParseFailure):
    """A value did not fit its declared type."""

    def __init__(self, field: str, expected: str, got: Any, why: str = "") -> None:
        self.field, self.expected, self.got = field, expected, got
        shown = got if isinstance(got, str) else json.dumps(got, default=str)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        where = f"field '{field}': " if field else ""
        tail = f" ({why})" if why else ""
        super().__init__(f"{where}expected {expected}, got {shown!r}{tail}")


def coerce(value: Any, t: TypeRef, program: ProgramIR | None = None, field: str = "") -> Any:
    """Convert ``value`` (LM text or a JSON value) to a Python value of type ``t``."""
    handler = _HANDLERS[t.kind]
    return handler(value, t, program, field)


# ---------------------------------------------------------------- scalars


def _str(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> str:
    if value is None:
        raise CoercionError(field, "a string", value)
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, ensure_ascii=False)


def _clean(text: str) -> str:
    return text.strip().strip(_EDGE_JUNK).strip()


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line
    return ""


def _number_text(value: Any, expected: str, field: str) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        raise CoercionError(field, expected, value)
    if not isinstance(value, str):
        return repr(value)
    text = _clean(value)
    if _NUMBER.fullmatch(text):
        return text
    found = _NUMBER.findall(_first_line(value))
    if len(found) == 1:  # "3 (three)", "Answer: 3" — one number, no ambiguity
        return found[0]
    why = "several numbers" if found else "no number"
    raise CoercionError(field, expected, value, why)


def _int(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> int:
    text = _number_text(value, "an integer", field).replace(",", "")
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if number.is_integer():
            return int(number)
        raise CoercionError(field, "an integer", value, "has a fraction") from None


def _float(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> float:
    return float(_number_text(value, "a number", field).replace(",", ""))


def _bool(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> bool:
    if isinstance(value, bool):
        return value
    word = _clean(str(value)).lower() if value is not None else ""
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    first = word.split()[0].strip(_EDGE_JUNK) if word.split() else ""
    if first in _TRUE_WORDS and first not in ("1", "t"):
        return True
    if first in _FALSE_WORDS and first not in ("0", "f"):
        return False
    raise CoercionError(field, "true or false", value)


def _any(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> Any:
    if isinstance(value, str):
        parsed = loads_lenient(value)
        return value.strip() if parsed is MISSING else parsed
    return value


# ---------------------------------------------------------------- choices


def _choose(value: Any, options: list[Any], expected: str, field: str) -> Any:
    """Pick the option the text names: exact, the only one named, or a unique prefix."""
    if value is None:
        raise CoercionError(field, expected, value)
    text = _clean(str(value)).lower()
    keys = [str(o).lower() for o in options]
    if text in keys:
        return options[keys.index(text)]
    line_words = {w.strip(_EDGE_JUNK) for w in _first_line(text).split()}
    named = [i for i, k in enumerate(keys) if k in line_words]
    if len(named) == 1:  # "Low priority", "so it is high" — but not "high or low"
        return options[named[0]]
    if text and not named:
        prefixed = [i for i, k in enumerate(keys) if k.startswith(text)]
        if len(prefixed) == 1:
            return options[prefixed[0]]
    raise CoercionError(field, expected, value)


def _enum(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> str:
    if program is None or t.name not in program.enums:
        raise ParseFailure(f"field '{field}': unknown enum {t.name!r}")
    values = program.enums[t.name].values
    return _choose(value, list(values), f"{t.name} ({describe(t, program)})", field)


def _literal(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> Any:
    if not isinstance(value, str) and value in t.values:
        return t.values[t.values.index(value)]
    return _choose(value, list(t.values), describe(t, program), field)


# ---------------------------------------------------------------- containers


class _Missing:
    """Marks "no JSON found" (None is a valid JSON value)."""

    pass


MISSING: Any = _Missing()


def loads_lenient(text: str) -> Any:
    """``json.loads`` of text that may be fenced or surrounded by prose; MISSING if none."""
    fenced = _FENCE.search(text)
    candidate = (fenced.group(1) if fenced else text).strip()
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = candidate.find(open_), candidate.rfind(close)
        if 0 <= start < end:
            try:
                return json.loads(candidate[start : end + 1])
            except ValueError:
                continue
    return MISSING


def _split_items(text: str) -> list[str]:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) > 1 or (lines and _BULLET.match(lines[0])):
        return [_BULLET.sub("", ln).strip() for ln in lines]
    if not lines:
        return []
    return [part.strip() for part in lines[0].split(",") if part.strip()]


def _list(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> list[Any]:
    item_type = t.args[0] if t.args else TypeRef(kind="any")
    if isinstance(value, str):
        parsed = loads_lenient(value) if value.lstrip()[:1] in "[`" else MISSING
        items = parsed if isinstance(parsed, list) else _split_items(value)
    elif isinstance(value, list):
        items = value
    else:
        raise CoercionError(field, f"a list of {describe(item_type, program)}", value)
    return [coerce(v, item_type, program, f"{field}[{i}]") for i, v in enumerate(items)]


def _dict(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> dict[Any, Any]:
    key_type = t.args[0] if t.args else TypeRef(kind="str")
    value_type = t.args[1] if len(t.args) > 1 else TypeRef(kind="any")
    if isinstance(value, str):
        parsed = loads_lenient(value)
        if parsed is MISSING:
            parsed = _key_value_lines(value)
        value = parsed
    if not isinstance(value, dict):
        raise CoercionError(field, "a JSON object", value)
    # JSON keys are text: a dict[int, T] key "3" becomes 3
    keyed = key_type.kind != "str"
    return {coerce(str(k), key_type, program, f"{field} key") if keyed else str(k):
            coerce(v, value_type, program, f"{field}.{k}") for k, v in value.items()}


def _tuple(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> list[Any]:
    """A fixed number of items, each of its own type (a JSON array, or ``a, b`` text)."""
    expected = describe(t, program)
    if isinstance(value, str):
        parsed = loads_lenient(value) if value.lstrip()[:1] in "[`(" else MISSING
        items = parsed if isinstance(parsed, list) else _split_items(value.strip().strip("()"))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise CoercionError(field, expected, value)
    if len(items) != len(t.args):
        raise CoercionError(field, expected, value, f"{len(items)} items, not {len(t.args)}")
    return [coerce(v, item, program, f"{field}[{i}]")
            for i, (v, item) in enumerate(zip(items, t.args, strict=True))]


# Python values whose JSON kind matches a member of a union exactly (tried first).
_EXACT: dict[str, tuple[type, ...]] = {
    "str": (str,), "enum": (str,), "literal": (str, int, float, bool), "bool": (bool,),
    "int": (int,), "float": (float, int), "list": (list,), "tuple": (list,),
    "dict": (dict,), "class": (dict,),
}


def _union(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> Any:
    """The first member the value fits, as DSPy (pydantic) picks one: text that is JSON
    is read as JSON first (``"42"`` for ``int | str`` is 42), and a member whose kind
    matches the value exactly is tried before the others, in the order declared."""
    candidates = [value]
    if isinstance(value, str):
        try:
            parsed = json.loads(value.strip())
        except ValueError:
            parsed = MISSING
        if parsed is not MISSING and not isinstance(parsed, str):
            candidates.insert(0, parsed)
    for candidate in candidates:
        exact = [m for m in t.args if _fits_kind(candidate, m)]
        for member in exact + [m for m in t.args if m not in exact]:
            try:
                return coerce(candidate, member, program, field)
            except ParseFailure:
                continue
    raise CoercionError(field, describe(t, program), value)


def _fits_kind(value: Any, member: TypeRef) -> bool:
    kinds = _EXACT.get(member.kind, ())
    if isinstance(value, bool):
        return member.kind in ("bool", "literal")
    return isinstance(value, kinds)


def _key_value_lines(text: str) -> Any:
    out: dict[str, str] = {}
    for line in text.strip().splitlines():
        key, sep, rest = _BULLET.sub("", line).partition(":")
        if not sep:
            return MISSING
        out[key.strip().strip("\"'")] = rest.strip()
    return out or MISSING


def _optional(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> Any:
    if value is None or (isinstance(value, str) and _clean(value).lower() in _NONE_WORDS):
        return None
    return coerce(value, t.args[0], program, field)


def _class(value: Any, t: TypeRef, program: ProgramIR | None, field: str) -> dict[str, Any]:
    if program is None or t.name not in program.classes:
        raise ParseFailure(f"field '{field}': unknown class {t.name!r}")
    cls = program.classes[t.name]
    if isinstance(value, str):
        value = loads_lenient(value)
    if not isinstance(value, dict):
        raise CoercionError(field, f"a JSON object for {t.name}", value)
    out: dict[str, Any] = {}
    for f in cls.fields:
        path = f"{field}.{f.name}" if field else f.name
        if f.name not in value:
            if f.type.kind == "optional":
                out[f.name] = None
                continue
            raise CoercionError(path, describe(f.type, program), None, f"missing in {t.name}")
        out[f.name] = coerce(value[f.name], f.type, program, path)
    return out


_HANDLERS = {
    "str": _str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "any": _any,
    "enum": _enum,
    "literal": _literal,
    "list": _list,
    "dict": _dict,
    "tuple": _tuple,
    "optional": _optional,
    "union": _union,
    "class": _class,
}


# ---------------------------------------------------------------- prompts and budgets


def describe(t: TypeRef, program: ProgramIR | None = None, detailed: bool = False) -> str:
    """A short phrase for prompts: ``"one of: low, medium, high"``, ``"an integer"``.

    ``detailed`` adds enum value descriptions: ``"one of: low (can wait), high (...)"``.
    """
    kind = t.kind
    if kind == "enum":
        enum = program.enums.get(str(t.name)) if program else None
        if enum is None or not enum.values:
            return str(t.name)
        descs = enum.descs if detailed else {}
        return "one of: " + ", ".join(
            f"{v} ({descs[v]})" if descs.get(v) else v for v in enum.values
        )
    if kind == "literal":
        return "one of: " + ", ".join(str(v) for v in t.values)
    if kind == "list":
        inner = t.args[0] if t.args else TypeRef(kind="any")
        return f"a JSON array of {describe(inner, program)}"
    if kind == "optional":
        return f"{describe(t.args[0], program, detailed)}, or none"
    if kind == "union":
        return " or ".join(describe(a, program, detailed) for a in t.args)
    if kind == "tuple":
        items = ", ".join(describe(a, program) for a in t.args)
        return f"a JSON array of {len(t.args)} item{'s' if len(t.args) != 1 else ''}: {items}"
    if kind == "class":
        return _describe_class(t, program)
    return _SCALAR_WORDS.get(kind, "a JSON object")


_SCALAR_WORDS = {
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "any": "any JSON value",
}


def _describe_class(t: TypeRef, program: ProgramIR | None) -> str:
    if program is None or t.name not in program.classes:
        return f"a JSON object ({t.name})"
    fields = ", ".join(f"{f.name}: {f.type}" for f in program.classes[t.name].fields)
    return f"a JSON object with keys {{{fields}}}"


def token_budget(t: TypeRef, program: ProgramIR | None = None) -> int:
    """A ``max_tokens`` estimate for one value of type ``t`` (an enum needs a handful)."""
    kind = t.kind
    if kind == "bool":
        return 4
    if kind in ("int", "float"):
        return 12
    if kind in ("enum", "literal"):
        values = t.values
        if kind == "enum":
            values = program.enums[t.name].values if program and t.name in program.enums else []
        longest = max((len(str(v)) for v in values), default=12)
        return 4 + longest // 2
    if kind == "optional":
        return token_budget(t.args[0], program)
    if kind == "union":
        return max(token_budget(a, program) for a in t.args)
    if kind == "tuple":
        return min(1024, 8 + sum(4 + token_budget(a, program) for a in t.args))
    if kind == "list":
        inner = t.args[0] if t.args else TypeRef(kind="any")
        return min(1024, 8 + 8 * token_budget(inner, program))
    if kind == "class" and program and t.name in program.classes:
        fields = program.classes[t.name].fields
        return min(1024, 8 + sum(6 + token_budget(f.type, program) for f in fields))
    return 256


def render_value(value: Any) -> str:
    """How a value appears in a prompt: text as is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
