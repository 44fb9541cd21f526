"""Values in module bodies: step arguments, returned values, and constraint expressions.

A constraint becomes a small JSON tree (``ConstraintIR.expr``). Every node is a JSON
scalar (a literal) or an object with exactly one of these keys:

- ``{"ref": ["t", "reason"]}`` — a step output or module input;
- ``{"call": "len", "args": [...]}`` — one of :data:`FUNCTIONS`;
- ``{"op": "<=", "args": [a, b]}`` — a comparison (``== != < <= > >= in contains
  matches``), ``and``/``or`` (two args) or ``not`` (one arg);
- a JSON list of literal values (``x in ["a", "b"]``).

An enum value written by name (``low``) becomes the string literal ``"low"``.
"""

from __future__ import annotations

from typing import Any

from lmpc.compiler.check.context import Ctx, Env
from lmpc.diagnostics import suggest
from lmpc.grammar import ast
from lmpc.ir import CONSTRAINT_FUNCTIONS, ExprIR, TypeRef

#: Functions a constraint may call (the IR's list; the runtime evaluates exactly these).
FUNCTIONS = CONSTRAINT_FUNCTIONS


class _Bad(Exception):
    """An error already reported; abandon this expression."""


# ---------------------------------------------------------------- step arguments, returns


def resolve_value(expr: ast.Node, dst: TypeRef | None, env: Env, ctx: Ctx,
                  what: str) -> ExprIR | None:
    """An argument or returned value; ``dst`` None checks names only."""
    try:
        if isinstance(expr, ast.Ref):
            return _ref_value(expr, dst, env, ctx, what)
        value = _literal(expr, dst, env, ctx)
    except _Bad:
        return None
    if dst is not None:
        ctx.check_literal(value, dst, expr.span, what)
    return ExprIR(kind="literal", value=value, span=expr.span)


def _ref_value(ref: ast.Ref, dst: TypeRef | None, env: Env, ctx: Ctx,
               what: str) -> ExprIR | None:
    member = _enum_member(ref, dst, env, ctx)
    if member is not None:
        return ExprIR(kind="literal", value=member, span=ref.span)
    type_ = ref_type(ref, env, ctx)
    if dst is not None:
        ctx.check_flow(type_, dst, ref.span, what)
    return ExprIR(kind="ref", path=list(ref.path), span=ref.span)


def _literal(expr: ast.Node, dst: TypeRef | None, env: Env, ctx: Ctx) -> Any:
    """A literal value; bare enum values inside lists are allowed."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.ListExpr):
        item = dst.args[0] if dst is not None and dst.kind == "list" else None
        return [_literal(i, item, env, ctx) for i in expr.items]
    if isinstance(expr, ast.DictExpr):
        item = dst.args[1] if dst is not None and dst.kind == "dict" else None
        return {i.key: _literal(i.value, item, env, ctx) for i in expr.items}
    if isinstance(expr, ast.Ref):
        member = _enum_member(expr, dst, env, ctx)
        if member is not None:
            return member
        if expr.path == ["none"]:
            return None
        ctx.scope.error("E1303", "a list or dict value must hold literals, not "
                        f"'{expr.name}'", expr.span, "pass the whole value through a step")
        raise _Bad
    ctx.scope.error("E1303", "expected a value here (a name, a literal or step.field)",
                    expr.span)
    raise _Bad


def _enum_member(ref: ast.Ref, dst: TypeRef | None, env: Env, ctx: Ctx) -> str | None:
    """``high`` or ``Priority.high`` when that is an enum value (and not a local name)."""
    path = ref.path
    if path[0] in env.inputs or path[0] in env.order:
        return None
    enums = ctx.enums
    if len(path) == 2 and path[0] in enums:
        if path[1] not in enums[path[0]]:
            ctx.scope.error("E1211", f"enum '{path[0]}' has no value '{path[1]}'",
                            ref.span, suggest(path[1], enums[path[0]]))
            raise _Bad
        return path[1]
    if len(path) != 1:
        return None
    while dst is not None and dst.kind == "optional":
        dst = dst.args[0]
    choices = dst.args if dst is not None and dst.kind == "union" else [dst]
    for choice in choices:
        if choice is not None and choice.kind == "enum" and path[0] in enums.get(
                choice.name or "", []):
            return path[0]
        if choice is not None and choice.kind == "literal" and path[0] in choice.values:
            return path[0]
        if (choice is None or choice.kind in ("str", "any")) and path[0] in ctx.enum_values:
            return path[0]
    return None


# ---------------------------------------------------------------- names and their types


def ref_type(ref: ast.Ref, env: Env, ctx: Ctx) -> TypeRef:
    """The type of a module input or an earlier step's output; reports what is wrong."""
    scope = ctx.scope
    head, rest = ref.path[0], ref.path[1:]
    if head in env.inputs:
        return _fields(env.inputs[head], rest, ref, ctx)
    if head in env.outputs:
        outputs = env.outputs[head]
        if not rest:
            shown = ", ".join(outputs) or "none"
            example = f"{head}.{next(iter(outputs))}" if outputs else head
            scope.error("E1211", f"'{head}' is a step; use one of its outputs ({shown})",
                        ref.span, f"write {example}")
            raise _Bad
        if rest[0] not in outputs:
            if outputs:  # else the step itself had errors, already reported
                scope.error("E1211", f"step '{head}' has no output '{rest[0]}'", ref.span,
                            suggest(rest[0], outputs) or f"its outputs are: "
                            f"{', '.join(outputs)}")
            raise _Bad
        return _fields(outputs[rest[0]], rest[1:], ref, ctx)
    if head in env.order:
        line = env.order[head].span.line
        scope.error("E1212", f"step '{head}' is used before it is defined (line {line})",
                    ref.span, "steps run in order; move this after the step")
        raise _Bad
    scope.error("E1210", f"unknown name '{head}'", scope.name_span(ref.span, head),
                suggest(head, [*env.inputs, *env.outputs]) or _visible(env))
    raise _Bad


def _visible(env: Env) -> str:
    names = [*env.inputs, *env.outputs]
    return "visible here: " + ", ".join(names) if names else "no input or step is visible here"


def _fields(type_: TypeRef, rest: list[str], ref: ast.Ref, ctx: Ctx) -> TypeRef:
    """Follow ``.field`` through class types."""
    for name in rest:
        while type_.kind == "optional":
            type_ = type_.args[0]
        cls = ctx.program.classes.get(type_.name or "") if type_.kind == "class" else None
        if cls is None:
            if type_.kind == "any":
                return type_
            ctx.scope.error("E1211", f"'{name}': a value of type {type_} has no fields",
                            ref.span)
            raise _Bad
        found = {f.name: f.type for f in cls.fields}
        if name not in found:
            ctx.scope.error("E1211", f"class '{cls.name}' has no field '{name}'", ref.span,
                            suggest(name, found))
            raise _Bad
        type_ = found[name]
    return type_


# ---------------------------------------------------------------- constraints


def constraint_expr(expr: ast.Node, env: Env, ctx: Ctx) -> tuple[dict[str, Any] | None,
                                                                  set[str]]:
    """The JSON tree of a constraint and the steps it reads (None after an error)."""
    read: set[str] = set()
    try:
        tree = _node(expr, env, ctx, read, None)
    except _Bad:
        return None, read
    if not isinstance(tree, dict):
        ctx.scope.error("E1306", "a constraint must be a condition, e.g. t.score >= 0.5",
                        expr.span)
        return None, read
    return tree, read


def _node(expr: ast.Node, env: Env, ctx: Ctx, read: set[str], hint: TypeRef | None) -> Any:
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Ref):
        return _constraint_ref(expr, env, ctx, read, hint)
    if isinstance(expr, ast.ListExpr):
        items = [_node(i, env, ctx, read, _item(hint)) for i in expr.items]
        if any(isinstance(i, dict) for i in items):
            ctx.scope.error("E1306", "a list in a constraint must hold literal values",
                            expr.span)
            raise _Bad
        return items
    if isinstance(expr, ast.FuncCall):
        if expr.name not in FUNCTIONS:
            ctx.scope.error("E1306", f"unknown function '{expr.name}' in a constraint",
                            ctx.scope.name_span(expr.span, expr.name),
                            suggest(expr.name, FUNCTIONS) or "available: " +
                            ", ".join(FUNCTIONS))
            raise _Bad
        return {"call": expr.name, "args": [_node(a, env, ctx, read, None) for a in expr.args]}
    if isinstance(expr, ast.UnaryOp):
        return {"op": expr.op, "args": [_node(expr.operand, env, ctx, read, None)]}
    if isinstance(expr, ast.BinaryOp):
        left_type = _static_type(expr.left, env, ctx)
        left = _node(expr.left, env, ctx, read, None)
        right_hint = left_type if expr.op != "in" else TypeRef(kind="list", args=[left_type]) \
            if left_type else None
        return {"op": expr.op, "args": [left, _node(expr.right, env, ctx, read, right_hint)]}
    ctx.scope.error("E1306", "this cannot appear in a constraint", expr.span)
    raise _Bad


def _item(hint: TypeRef | None) -> TypeRef | None:
    return hint.args[0] if hint is not None and hint.kind == "list" else None


def _constraint_ref(ref: ast.Ref, env: Env, ctx: Ctx, read: set[str],
                    hint: TypeRef | None) -> Any:
    local = ref.path[0] in env.inputs or ref.path[0] in env.order
    if not local and len(ref.path) == 1 and hint is not None and hint.kind == "enum":
        if ref.path[0] in ctx.enums.get(hint.name or "", []):
            return ref.path[0]
        _not_a_member(ref, hint, ctx)
    member = _enum_member(ref, None, env, ctx)
    if member is not None:
        return member
    ref_type(ref, env, ctx)
    if ref.path[0] in env.outputs:
        read.add(ref.path[0])
    return {"ref": list(ref.path)}


def _not_a_member(ref: ast.Ref, enum: TypeRef, ctx: Ctx) -> None:
    values = ctx.enums.get(enum.name or "", [])
    ctx.scope.error("E1211", f"'{ref.name}' is not a value of enum '{enum.name}'", ref.span,
                    suggest(ref.name, values) or "values: " + ", ".join(values))
    raise _Bad


def _static_type(expr: ast.Node, env: Env, ctx: Ctx) -> TypeRef | None:
    """The type of a ref on the left of a comparison, without reporting anything."""
    if not isinstance(expr, ast.Ref):
        return None
    head, rest = expr.path[0], expr.path[1:]
    if head in env.inputs and not rest:
        return env.inputs[head]
    if head in env.outputs and len(rest) == 1:
        return env.outputs[head].get(rest[0])
    return None
