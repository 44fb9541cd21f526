"""Types: AST type expressions -> ``TypeRef``, and what may flow into what.

The rules are pragmatic, for values that end up in prompts:

- ``str`` and ``any`` accept anything (every value prints);
- ``float`` accepts ``int``; nothing else converts silently (a ``str`` into an
  ``int`` field is an error: the model's text would have to be parsed);
- an enum accepts the same enum, or literals/enums whose values are all members;
- ``T?`` accepts ``T`` and ``none``; a ``T?`` may flow into a ``T`` (checked at run time);
- ``list``/``dict`` compare element types; classes compare by name.

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


class TypeResolver:
    """Turns type expressions into ``TypeRef``s, reporting unknown names (E1205)."""

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
        if isinstance(node, ast.OptionalType):
            inner = self.resolve(node.inner)
            return inner if inner.kind == "optional" else TypeRef(kind="optional", args=[inner])
        if isinstance(node, ast.LiteralType):
            return TypeRef(kind="literal", values=list(node.values))
        return self._named(node)

    def _named(self, node: ast.NamedType) -> TypeRef:
        name = node.name
        if not node.args and name in self._simple:
            return self._simple[name]
        if name in SCALARS:
            if node.args:
                self.scope.error("E1205", f"type '{name}' takes no arguments", node.span)
            return self._remember(name, TypeRef(kind=name))
        if name in GENERICS:
            return self._generic(node)
        decl = self.scope.decls["type"].get(name)
        if decl is None:
            self.scope.lookup("type", name, node.span, extra=(*SCALARS, *GENERICS))
            return ANY
        if node.args:
            self.scope.error("E1205", f"type '{name}' takes no arguments", node.span)
        if isinstance(decl, ast.EnumDecl):
            return self._remember(name, TypeRef(kind="enum", name=name))
        if isinstance(decl, ast.ClassDecl):
            return self._remember(name, TypeRef(kind="class", name=name))
        return self.alias(decl)

    def _remember(self, name: str, type_: TypeRef) -> TypeRef:
        self._simple[name] = type_
        return type_

    def _generic(self, node: ast.NamedType) -> TypeRef:
        want = GENERICS[node.name]
        args = [self.resolve(a) for a in node.args]
        if not args:  # bare `list` / `dict`
            args = [ANY] if want == 1 else [STR, ANY]
        elif len(args) != want:
            shape = "list[T]" if want == 1 else "dict[str, T]"
            self.scope.error("E1205", f"'{node.name}' takes {want} type argument"
                             f"{'s' if want > 1 else ''}, as in {shape}", node.span)
            args = (args + [ANY, ANY])[:want]
        return TypeRef(kind=node.name, args=args)

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
    if dst.kind == "list" and isinstance(value, list):
        return all(literal_fits(v, dst.args[0], enums) for v in value)
    if dst.kind == "dict" and isinstance(value, dict):
        return all(literal_fits(v, dst.args[1], enums) for v in value.values())
    if dst.kind == "class":
        return isinstance(value, dict)
    return assignable(value_type(value), dst, enums)
