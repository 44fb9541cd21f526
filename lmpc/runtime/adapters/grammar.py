"""GBNF grammars for the completion layout: constrained decoding for base models.

A small base model asked for ``Category:`` often lists every allowed value, or writes a
sentence where an enum belongs. llama.cpp can restrict sampling to a grammar (GBNF), so
with one the reply *is* the declared type: an enum value, a number, a JSON object of the
class's fields, one of a union's members, a tuple's items in order. The grammar covers
the text after the first output label — each field's value, then ``\\nLabel: value`` for
the next — and stays close to what the layout already asks for, so the model's most
likely tokens are usually allowed anyway.

Under a grammar every value is one line: text is a line, lists and objects are compact
JSON (the layout renders demo outputs the same way).

>>> from lmpc.ir import FieldIR, TypeRef
>>> print(completion_grammar([FieldIR(name="stars", type=TypeRef(kind="int"))]))
root ::= " "? v0 "\\n"?
v0 ::= int
int ::= "-"? [0-9]{1,15}
"""

from __future__ import annotations

import json
from collections.abc import Callable

from lmpc.ir import FieldIR, ProgramIR, TypeRef

# Shared rules, added to a grammar when a value refers to them.
RULES = {
    "line": r"[^\n ] [^\n]*",
    "int": r'"-"? [0-9]{1,15}',
    "float": r'"-"? [0-9]{1,15} ("." [0-9]{1,15})?',
    "jws": r'" "?',
    "jstr": r'"\"" ( [^"\\\x00-\x1F] | "\\" ["\\/bfnrt] | "\\u" [0-9a-fA-F]{4} )* "\""',
    "jnum": r'"-"? [0-9]+ ("." [0-9]+)? ([eE] [-+]? [0-9]+)?',
    "jbool": r'"true" | "false"',
    "jval": r'jobj | jarr | jstr | jnum | jbool | "null"',
    "jobj": r'"{" jws ( jstr jws ":" jws jval ( jws "," jws jstr jws ":" jws jval )* )? jws "}"',
    "jarr": r'"[" jws ( jval ( jws "," jws jval )* )? jws "]"',
}
# Rules that use other rules.
_NEEDS = {"jval": ("jobj", "jarr", "jstr", "jnum", "jbool"), "jobj": ("jws", "jstr", "jval"),
          "jarr": ("jws", "jval")}


def completion_grammar(outputs: list[FieldIR], program: ProgramIR | None = None) -> str:
    """GBNF for the completion text that follows the first output's ``Label:``."""
    from lmpc.runtime.adapters.base import field_label  # base imports this module's users

    builder = _Builder(program)
    parts = ['" "?', "v0"]
    builder.define("v0", builder.line_value(outputs[0].type))
    for i, f in enumerate(outputs[1:], start=1):
        parts += [literal(f"\n{field_label(f)}: "), f"v{i}"]
        builder.define(f"v{i}", builder.line_value(f.type))
    parts.append('"\\n"?')  # the newline a stop sequence ends on
    return builder.render("root ::= " + " ".join(parts))


def react_step_grammar(outputs: list[FieldIR], tools: dict[str, list[FieldIR]],
                       program: ProgramIR | None = None) -> str:
    """GBNF for a ReAct step (thought, tool name, tool arguments), where the arguments
    must be a JSON object of the chosen tool's own parameters.

    ``outputs`` are the step's three fields; ``tools`` maps each tool name (``finish``
    included) to its parameters. A tool's arguments depend on its name, which one grammar
    over independent fields cannot say: a small base model then calls ``convert({})``.
    """
    from lmpc.runtime.adapters.base import field_label

    thought, name, args = outputs
    builder = _Builder(program)
    builder.define("v0", builder.line_value(thought.type))
    branches = []
    args_label = literal("\n" + field_label(args) + ": ")
    for i, (tool, params) in enumerate(tools.items()):
        builder.define(f"args{i}", builder.object_body(params))
        branches.append(f"{literal(tool)} {args_label} args{i}")
    label = literal("\n" + field_label(name) + ": ")
    return builder.render(f'root ::= " "? v0 {label} ( {" | ".join(branches)} ) "\\n"?')


def literal(text: str) -> str:
    """A GBNF string literal (quotes, backslashes and control characters escaped).

    >>> print(literal('say "hi"\\n'))
    "say \\"hi\\"\\n"
    """
    escaped = json.dumps(text, ensure_ascii=False)[1:-1]
    return f'"{escaped}"'


class _Builder:
    """Collects the rules a grammar needs, naming one per class and choice."""

    def __init__(self, program: ProgramIR | None) -> None:
        self.program = program
        self.rules: dict[str, str] = {}
        self.used: set[str] = set()

    def define(self, name: str, body: str) -> str:
        """A rule ``name ::= body``; a name already taken by another body (``float?`` and
        ``float`` slug alike) gets a number."""
        base, n = name, 1
        while name in self.rules and self.rules[name] != body:
            n += 1
            name = f"{base}-{n}"
        self.rules.setdefault(name, body)
        return name

    def use(self, name: str) -> str:
        if name not in self.used:
            self.used.add(name)
            for needed in _NEEDS.get(name, ()):
                self.use(needed)
        return name

    def render(self, root: str) -> str:
        lines = [root]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        lines += [f"{name} ::= {RULES[name]}" for name in RULES if name in self.used]
        return "\n".join(lines)

    # ------------------------------------------------------------ one-line values

    def line_value(self, t: TypeRef) -> str:
        """A value as the layout writes it after ``Label: `` (text bare, rest JSON)."""
        handler: Callable[[TypeRef], str] = {
            "str": lambda _: self.use("line"),
            "any": lambda _: self.use("line"),
            "int": lambda _: self.use("int"),
            "float": lambda _: self.use("float"),
            "bool": lambda _: '"true" | "false"',
            "enum": lambda t: _choice(self._enum_values(t), quoted=False),
            "literal": lambda t: _choice(t.values, quoted=False),
            "optional": lambda t: f'{self.line_value(t.args[0])} | "none"',
            "union": lambda t: self._alternatives(t, self.line_value, "line"),
        }.get(t.kind, self.json_value)
        return handler(t)

    def _alternatives(self, t: TypeRef, value: Callable[[TypeRef], str], hint: str) -> str:
        """One named rule per member of a union (a member may itself be alternatives)."""
        names = [self.define(f"{hint}-{_slug(str(m))}", value(m)) for m in t.args]
        return "( " + " | ".join(names) + " )"

    # ------------------------------------------------------------ JSON values

    def json_value(self, t: TypeRef) -> str:
        kind = t.kind
        if kind == "str":
            return self.use("jstr")
        if kind in ("int", "float"):
            return self.use("int" if kind == "int" else "jnum")
        if kind == "bool":
            return self.use("jbool")
        if kind in ("enum", "literal"):
            values = self._enum_values(t) if kind == "enum" else t.values
            return _choice(values, quoted=True)
        if kind == "optional":
            return f'( {self.json_value(t.args[0])} ) | "null"'
        if kind == "list":
            item = self.rule("item", t.args[0]) if t.args else self.use("jval")
            self.use("jws")
            return f'"[" jws ( {item} ( jws "," jws {item} )* )? jws "]"'
        if kind == "dict":
            value = self.rule("value", t.args[1]) if len(t.args) > 1 else self.use("jval")
            self.use("jws")
            self.use("jstr")
            pair = f'jstr jws ":" jws {value}'
            return f'"{{" jws ( {pair} ( jws "," jws {pair} )* )? jws "}}"'
        if kind == "tuple":
            self.use("jws")
            items = ' jws "," jws '.join(self.rule("item", a) for a in t.args)
            return f'"[" jws {items} jws "]"'
        if kind == "union":
            return self._alternatives(t, self.json_value, "json")
        if kind == "class":
            return self._class(t)
        return self.use("jval")

    def rule(self, hint: str, t: TypeRef) -> str:
        """A named rule for a nested value (a GBNF group cannot hold alternatives inline)."""
        body = self.json_value(t)
        name = f"{hint}-{_slug(str(t))}"
        return self.define(name, body)

    def _class(self, t: TypeRef) -> str:
        name = f"class-{_slug(str(t.name))}"
        if name in self.rules:
            return name
        cls = self.program.classes.get(str(t.name)) if self.program else None
        if cls is None:
            return self.use("jval")
        self.rules[name] = "jval"  # placeholder: a class that contains itself stays finite
        self.rules[name] = self.object_body(cls.fields)
        return name

    def object_body(self, fields: list[FieldIR]) -> str:
        """A JSON object with exactly ``fields`` as keys, in order, each of its type."""
        self.use("jws")
        pairs = [f'{literal(json.dumps(f.name))} jws ":" jws {self.rule("field", f.type)}'
                 for f in fields]
        body = ' jws "," jws '.join(pairs)
        return f'"{{" jws {body} jws "}}"' if pairs else '"{" jws "}"'

    def _enum_values(self, t: TypeRef) -> list[str]:
        if self.program is None or str(t.name) not in self.program.enums:
            return []
        return list(self.program.enums[str(t.name)].values)


def _choice(values: list[str | int | float | bool] | list[str], quoted: bool) -> str:
    if not values:
        return '"none"'  # unreachable for a checked program: enums have values
    texts = [json.dumps(v) if quoted or not isinstance(v, str) else v for v in values]
    return "( " + " | ".join(literal(v) for v in texts) + " )"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "t"
