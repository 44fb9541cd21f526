"""Types: AST type expressions -> ``TypeRef``, and what may flow into what.

The rules are pragmatic, for values that end up in prompts:

- ``str`` and ``any`` accept anything (every value prints);
- ``float`` accepts ``int``; nothing else converts silently (a ``str`` into an
  ``int`` field is an error: the model's text would have to be parsed);
- an enum accepts the same enum, or literals/enums whose values are all members;
- ``T?`` accepts ``T`` and ``none``; a ``T?`` may flow into a ``T`` (checked at run time);
- ``list``/``dict`` compare element types; classes compare by name;
- a union accepts what fits one of its members, and flows where every member fits;
  a ``tuple`` accepts a tuple of as many fitting items (and flows into a fitting list).

>>> s, i, f = TypeRef(kind="str"), TypeRef(kind="int"), TypeRef(kind="float")
>>> assignable(i, f, {}), assignable(f, i, {}), assignable(i, s, {}), assignable(s, i, {})
(True, False, True, False)
"""

from __future__ import annotations

from typing import Any

from lmpc.compiler.check.scope import Scope
from lmpc.grammar import ast
from lmpc.ir import TypeRef

SCALARS = ("str", "int", "float", "bool", "any")
GENERICS = {"list": 1, "dict": 2}
ANY = TypeRef(kind="any")
STR = TypeRef(kind="str")

# Every spelling of a built-in type: lmpc's own, Python's and typing's (as DSPy's string
# signatures write them). ``typing.X`` means X. These names are reserved (E1101).
SPELLINGS = {
    **{name: name for name in SCALARS}, "Any": "any",
    "list": "list", "List": "list", "dict": "dict", "Dict": "dict",
    "tuple": "tuple", "Tuple": "tuple",
    "Optional": "Optional", "Union": "Union", "Literal": "Literal",
    "None": "None", "NoneType": "None",
}
BUILTIN_NAMES = tuple(SPELLINGS)
DICT_KEYS = ("str", "int", "float", "bool", "enum", "literal")

_TEXT_ONLY = "lmpc's adapters and models take text only"
#: Types DSPy or Python accept that lmpc does not, with what to write instead (E1213).
#: A user's own declaration of the same name wins (``class Tool { ... }``).
UNSUPPORTED = {
    "Image": f"images (dspy.Image) cannot be sent to a model: {_TEXT_ONLY}",
    "Audio": f"audio (dspy.Audio) cannot be sent to a model: {_TEXT_ONLY}",
    "File": f"files (dspy.File) cannot be sent to a model: {_TEXT_ONLY}; read the file "
            "into a str input",
    "History": "conversation history (dspy.History) is not a field type in lmpc; pass "
               "earlier turns as an input, e.g. history: list[str]",
    "Tool": "DSPy's Tool is not a field type in lmpc; declare the callable with `tool` and "
            "give it to react(tools = [...])",
    "ToolCalls": "DSPy's ToolCalls is not a field type in lmpc; declare tools with `tool` "
                 "and use react(tools = [...])",
    "ToolCallResults": "DSPy's ToolCallResults is not a field type in lmpc; react(...) "
                       "feeds tool results back itself",
    "Code": "DSPy's Code type is not supported; use str (name the language in the field's "
            "description)",
    "Reasoning": "DSPy's Reasoning type is not a field type in lmpc; chain_of_thought adds "
                 "a reasoning output",
    "Citations": "DSPy's Citations type is not supported; use a class, e.g. "
                 "list[Citation] with class Citation { text: str  source: str }",
    "Document": "DSPy's Document type is not supported; pass documents as str or list[str]",
    "Type": "a custom dspy.Type is Python code; declare a class or use a built-in type",
    "set": "sets are not supported; use list[T]",
    "Set": "sets are not supported; use list[T]",
    "frozenset": "sets are not supported; use list[T]",
    "FrozenSet": "sets are not supported; use list[T]",
    "Sequence": "use list[T]", "Iterable": "use list[T]", "Mapping": "use dict[K, V]",
    "bytes": f"bytes cannot be sent to a model: {_TEXT_ONLY}; use str",
    "bytearray": f"bytes cannot be sent to a model: {_TEXT_ONLY}; use str",
    "complex": "complex numbers are not supported; use float or a class",
    "Callable": "a callable is not a value a model can produce; declare a `tool`",
    "Path": "Python's Path is not an lmpc type; use str",
    "datetime": "Python's datetime is not an lmpc type; use str (an ISO 8601 date)",
    "date": "Python's date is not an lmpc type; use str (an ISO 8601 date)",
}
_DSPY_PREFIX, _TYPING_PREFIX = "dspy.", "typing."


class TypeResolver:
    """Turns type expressions into ``TypeRef``s, reporting unknown names (E1205) and
    types lmpc does not support (E1213).

    Every spelling of a type gives the same TypeRef: ``Optional[int]``, ``int | None``,
    ``Union[int, None]`` and ``int?`` are one optional; ``List[str]`` is ``list[str]``;
    ``Literal['a', 'b']`` is ``"a" | "b"``; ``tuple[int, ...]`` is ``list[int]``.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._aliases: dict[str, TypeRef] = {}
        self._open: set[str] = set()
        # Types without arguments are built once and shared (nothing edits a TypeRef).
        self._simple: dict[str, TypeRef] = {}

    def resolve(self, node: ast.TypeExpr | None) -> TypeRef:
        """The TypeRef of ``node``; None (an untyped field) is ``str``."""
        if node is None:
            return STR
        resolved = self._member(node)
        if resolved is None:
            self.scope.error("E1205", "None alone is not a type of a value; write T | None "
                             "(or T?) for an optional T", node.span)
            return ANY
        return resolved

    def _member(self, node: ast.TypeExpr) -> TypeRef | None:
        """Like ``resolve``, but ``None`` (the type of none) comes back as None, for the
        union it is part of to turn optional."""
        if isinstance(node, ast.OptionalType):
            inner = self.resolve(node.inner)
            return inner if inner.kind == "optional" else TypeRef(kind="optional", args=[inner])
        if isinstance(node, ast.LiteralType):
            return TypeRef(kind="literal", values=list(node.values))
        if isinstance(node, ast.UnionType):
            return self._union([self._member(m) for m in node.members], node)
        return self._named(node)

    def _named(self, node: ast.NamedType) -> TypeRef | None:
        name = node.name.removeprefix(_TYPING_PREFIX)
        if not node.args and name in self._simple:
            return self._simple[name]
        decl = self.scope.decls["type"].get(name)
        if decl is not None:
            if node.args:
                self.scope.error("E1205", f"type '{name}' takes no arguments", node.span)
            if isinstance(decl, ast.EnumDecl):
                return self._remember(name, TypeRef(kind="enum", name=name))
            if isinstance(decl, ast.ClassDecl):
                return self._remember(name, TypeRef(kind="class", name=name))
            return self.alias(decl)
        spelled = SPELLINGS.get(name)
        if spelled is None:
            return self._unknown(node)
        if spelled == "None":
            return None
        if spelled in SCALARS:
            if node.args:
                self.scope.error("E1205", f"type '{name}' takes no arguments", node.span)
            return self._remember(name, TypeRef(kind=spelled))
        if spelled == "Optional":
            if len(node.args) != 1:
                self.scope.error("E1205", "Optional takes one type argument, as in "
                                 "Optional[str]", node.span)
                return ANY
            return self._union([self._member(node.args[0]), None], node)
        if spelled == "Union":
            if not node.args:
                self.scope.error("E1205", "Union needs type arguments, as in Union[int, str]",
                                 node.span)
                return ANY
            return self._union([self._member(a) for a in node.args], node)
        if spelled == "Literal":
            return self._literal(node)
        if spelled == "tuple":
            return self._tuple(node)
        return self._generic(node, spelled)

    def _remember(self, name: str, type_: TypeRef) -> TypeRef:
        self._simple[name] = type_
        return type_

    def _unknown(self, node: ast.NamedType) -> TypeRef:
        name = node.name
        base = name.removeprefix(_DSPY_PREFIX)
        if name == "...":
            self.scope.error("E1205", "'...' only ends a tuple, as in tuple[int, ...]",
                             node.span)
        elif base in UNSUPPORTED and (name.startswith(_DSPY_PREFIX) or "." not in name):
            self.scope.error("E1213", f"type '{name}' is not supported by lmpc",
                             node.span, UNSUPPORTED[base])
        elif name.startswith(_DSPY_PREFIX):
            self.scope.error("E1213", f"type '{name}' is not supported by lmpc", node.span,
                             "DSPy's own types are Python classes; use an lmpc type")
        elif "." in name:
            self.scope.error("E1205", f"unknown type '{name}'", node.span,
                             f"lmpc types are not nested: declare `class {name.rsplit('.')[-1]}"
                             f" {{ ... }}` and write {name.rsplit('.')[-1]}")
        else:
            self.scope.lookup("type", name, node.span, extra=BUILTIN_NAMES)
        return ANY

    def _union(self, members: list[TypeRef | None], node: ast.Node) -> TypeRef:
        """``A | B | None``: flattened, duplicates dropped, literals joined; a ``None``
        member (or an optional one) makes the whole union optional."""
        optional, flat = False, []
        for m in members:
            if m is not None and m.kind == "optional":
                optional, m = True, m.args[0]
            if m is None:
                optional = True
            elif m.kind == "union":
                flat.extend(m.args)
            else:
                flat.append(m)
        if any(m.kind == "any" for m in flat):
            return ANY  # any already holds every value, none included
        joined: list[TypeRef] = []
        for m in flat:
            literal = next((j for j in joined if j.kind == "literal"), None)
            if m.kind == "literal" and literal is not None:
                index = joined.index(literal)
                values = [*literal.values, *(v for v in m.values if v not in literal.values)]
                joined[index] = TypeRef(kind="literal", values=values)
            elif m not in joined:
                joined.append(m)
        if not joined:
            self.scope.error("E1205", "a union of None alone is not a type of a value",
                             node.span)  # type: ignore[attr-defined]
            return ANY
        result = joined[0] if len(joined) == 1 else TypeRef(kind="union", args=joined)
        return TypeRef(kind="optional", args=[result]) if optional else result

    def _literal(self, node: ast.NamedType) -> TypeRef:
        """``Literal['a', 'b']`` (and ``Literal[True]``, ``Literal[None]``, nested)."""
        values: list[str | int | float | bool] = []
        optional = False
        for arg in node.args:
            if isinstance(arg, ast.LiteralType):
                values += [v for v in arg.values if v not in values]
            elif isinstance(arg, ast.NamedType) and not arg.args and arg.name in (
                    "True", "False"):
                values.append(arg.name == "True")
            elif isinstance(arg, ast.NamedType) and arg.name in ("None", "Literal"):
                if arg.name == "None":
                    optional = True
                else:
                    inner = self._literal(arg)
                    optional = optional or inner.kind == "optional"
                    inner = inner.args[0] if inner.kind == "optional" else inner
                    values += [v for v in inner.values if v not in values]
            else:
                self.scope.error("E1205", "Literal takes values, as in Literal['a', 'b'] or "
                                 "Literal[1, 2]", arg.span)
        if not values:
            if not node.args:
                self.scope.error("E1205", "Literal needs values, as in Literal['a', 'b']",
                                 node.span)
            return ANY
        literal = TypeRef(kind="literal", values=values)
        return TypeRef(kind="optional", args=[literal]) if optional else literal

    def _tuple(self, node: ast.NamedType) -> TypeRef:
        """``tuple[A, B]`` (fixed length); ``tuple[T, ...]`` and bare ``tuple`` are lists."""
        args = node.args
        if not args:
            return TypeRef(kind="list", args=[ANY])
        dots = [i for i, a in enumerate(args) if isinstance(a, ast.NamedType)
                and a.name == "..."]
        if dots:
            if dots != [1] or len(args) != 2:
                self.scope.error("E1205", "'...' goes only in tuple[T, ...] (any number of "
                                 "T)", args[dots[0]].span)
                return ANY
            return TypeRef(kind="list", args=[self.resolve(args[0])])
        return TypeRef(kind="tuple", args=[self.resolve(a) for a in args])

    def _generic(self, node: ast.NamedType, kind: str) -> TypeRef:
        want = GENERICS[kind]
        args = [self.resolve(a) for a in node.args]
        if not args:  # bare `list` / `dict`
            args = [ANY] if want == 1 else [STR, ANY]
        elif len(args) != want:
            shape = "list[T]" if want == 1 else "dict[str, T]"
            self.scope.error("E1205", f"'{node.name}' takes {want} type argument"
                             f"{'s' if want > 1 else ''}, as in {shape}", node.span)
            args = (args + [ANY, ANY])[:want]
        if kind == "dict" and args[0].kind not in DICT_KEYS:
            self.scope.error("E1205", f"a dict key must be text, a number, a bool, an enum "
                             f"or literals (JSON keys are strings), not {args[0]}",
                             node.args[0].span)
            args[0] = STR
        return TypeRef(kind=kind, args=args)

    def alias(self, decl: ast.TypeAlias) -> TypeRef:
        """The type an alias stands for (aliases are inlined into the IR)."""
        if decl.name in self._aliases:
            return self._aliases[decl.name]
        if decl.name in self._open:
            self.scope.error("E1104", f"type alias '{decl.name}' refers to itself",
                             decl.span)
            return ANY
        self._open.add(decl.name)
        resolved = self.resolve(decl.type)
        self._open.discard(decl.name)
        self._aliases[decl.name] = resolved
        return resolved


# ---------------------------------------------------------------- compatibility


def assignable(src: TypeRef, dst: TypeRef, enums: dict[str, list[str]]) -> bool:
    """Whether a value of type ``src`` may flow into a field of type ``dst``."""
    if dst.kind in ("any", "str") or src.kind == "any":
        return True
    if dst.kind == "optional":
        return src.kind == "optional" and assignable(src.args[0], dst.args[0], enums) or \
            assignable(src, dst.args[0], enums)
    if src.kind == "optional":
        return assignable(src.args[0], dst, enums)
    if src.kind == "union":  # every value it may hold must fit
        return all(assignable(m, dst, enums) for m in src.args)
    if dst.kind == "union":  # fits one of the members
        return any(assignable(src, m, enums) for m in dst.args)
    if dst.kind == "tuple":
        return src.kind == "tuple" and len(src.args) == len(dst.args) and all(
            assignable(a, b, enums) for a, b in zip(src.args, dst.args, strict=True))
    if dst.kind == "list" and src.kind == "tuple":
        return all(assignable(a, dst.args[0], enums) for a in src.args)
    if dst.kind == "float":
        return src.kind in ("int", "float") or _literal_all(src, (int, float))
    if dst.kind == "int":
        return src.kind == "int" or _literal_all(src, (int,))
    if dst.kind == "bool":
        return src.kind == "bool" or _literal_all(src, (bool,))
    if dst.kind in ("enum", "literal"):
        allowed = _values_of(dst, enums)
        given = _values_of(src, enums)
        return given is not None and allowed is not None and set(given) <= set(allowed)
    if dst.kind in ("list", "dict"):
        return src.kind == dst.kind and all(
            assignable(a, b, enums) for a, b in zip(src.args, dst.args, strict=False))
    if dst.kind == "class":
        return src.kind == "class" and src.name == dst.name
    return False


def _literal_all(src: TypeRef, kinds: tuple[type, ...]) -> bool:
    """A literal type whose values are all of ``kinds`` (bools are not ints here)."""
    if src.kind != "literal":
        return False
    return all(isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool))
               for v in src.values)


def _values_of(t: TypeRef, enums: dict[str, list[str]]) -> list[Any] | None:
    if t.kind == "enum":
        return enums.get(t.name or "")
    if t.kind == "literal":
        return list(t.values)
    return None


def value_type(value: Any) -> TypeRef:
    """The type of a literal value written in source."""
    if value is None:
        return TypeRef(kind="optional", args=[ANY])
    if isinstance(value, bool | str | int | float):
        return TypeRef(kind="literal", values=[value])
    if isinstance(value, list):
        return TypeRef(kind="list", args=[_join([value_type(v) for v in value])])
    if isinstance(value, dict):
        return TypeRef(kind="dict", args=[STR, _join([value_type(v) for v in value.values()])])
    return ANY


def _join(types: list[TypeRef]) -> TypeRef:
    """One type for the items of a list literal (literal values are merged)."""
    if not types:
        return ANY
    if all(t.kind == "literal" for t in types):
        return TypeRef(kind="literal", values=[v for t in types for v in t.values])
    first = types[0]
    return first if all(t == first for t in types) else ANY


def literal_fits(value: Any, dst: TypeRef, enums: dict[str, list[str]]) -> bool:
    """Whether a literal value written in source is a valid value of ``dst``."""
    if value is None:
        return dst.kind in ("optional", "any")
    if dst.kind == "optional":
        return literal_fits(value, dst.args[0], enums)
    if dst.kind == "union":
        return any(literal_fits(value, m, enums) for m in dst.args)
    if dst.kind == "tuple":
        return isinstance(value, list) and len(value) == len(dst.args) and all(
            literal_fits(v, t, enums) for v, t in zip(value, dst.args, strict=True))
    if dst.kind == "list" and isinstance(value, list):
        return all(literal_fits(v, dst.args[0], enums) for v in value)
    if dst.kind == "dict" and isinstance(value, dict):
        return all(literal_fits(v, dst.args[1], enums) for v in value.values())
    if dst.kind == "class":
        return isinstance(value, dict)
    return assignable(value_type(value), dst, enums)
