"""Module bodies: steps, the dataflow between them, constraints and the return.

Each step's arguments are matched against what the step takes (a signature's inputs,
a module's inputs, a tool's parameters, a retrieve's query) and each value's type is
checked against the field it flows into. A name in a value is a module input, an
earlier step's output (``t.reason``), or an enum value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from lmpc.compiler.check.context import Ctx, Env
from lmpc.compiler.check.exprs import constraint_expr, resolve_value
from lmpc.compiler.check.options import predictor_options, retrieve_options
from lmpc.compiler.check.scope import duplicates
from lmpc.diagnostics import suggest
from lmpc.grammar import ast
from lmpc.ir import (
    ConstraintIR,
    ExprIR,
    FieldIR,
    ModuleIR,
    PredictorIR,
    RetrieveIR,
    SignatureIR,
    Span,
    StepIR,
    TypeRef,
)

STR = TypeRef(kind="str")
PASSAGES = TypeRef(kind="list", args=[STR])
# Extra outputs some predictor kinds add to the signature's own.
EXTRA_OUTPUTS = {"chain_of_thought": {"reasoning": STR},
                 "multi_chain_comparison": {"reasoning": STR}}


@dataclass
class CallEdge:
    """A module calling another, kept to find recursion after all bodies are checked."""

    caller: str
    callee: str
    span: Span


def module_header(decl: ast.ModuleDecl, ctx: Ctx) -> ModuleIR:
    """Inputs and outputs only, so that bodies can call modules declared later."""
    from lmpc.compiler.check.decls import param_fields

    outputs = param_fields(decl.outputs, ctx, f"module {decl.name} outputs")
    for p, out in zip(decl.outputs, outputs, strict=True):
        if p.default is not None:
            ctx.scope.error("E1307", "a module output cannot have a default", p.default.span)
            out.default = None
    return ModuleIR(name=decl.name, inputs=param_fields(decl.inputs, ctx,
                                                         f"module {decl.name}"),
                    outputs=outputs, desc=decl.doc, span=decl.span)


def check_body(decl: ast.ModuleDecl, module: ModuleIR, ctx: Ctx,
               edges: list[CallEdge]) -> None:
    """Fill ``module.steps`` and ``module.returns``; register predictors in the program."""
    steps = [s for s in decl.body if isinstance(s, ast.Step)]
    _duplicate_steps(steps, module, ctx)
    env = Env(module.name, {f.name: f.type for f in module.inputs},
              {s.name: s for s in steps})
    by_name: dict[str, StepIR] = {}
    returned: ast.Return | None = None
    for stmt in decl.body:
        if returned is not None:
            ctx.scope.error("E1304", "statement after return", stmt.span,
                            "return must be the last statement of a module")
            break
        if isinstance(stmt, ast.Step):
            step = _step(stmt, env, ctx, edges)
            if step is not None and step.name not in by_name:
                by_name[step.name] = step
                module.steps.append(step)
        elif isinstance(stmt, ast.Constraint):
            _constraint(stmt, env, ctx, by_name)
        else:
            returned = stmt
            module.returns = _returns(stmt, module, env, ctx)
    if returned is None and module.outputs:
        ctx.scope.error("E1304", f"module '{module.name}' declares outputs but has no "
                        "return", ctx.scope.name_span(decl.span, decl.name),
                        "end the body with: return (" + ", ".join(
                            f"{f.name} = ..." for f in module.outputs) + ")")


def _duplicate_steps(steps: list[ast.Step], module: ModuleIR, ctx: Ctx) -> None:
    seen: set[str] = set()
    inputs = {f.name for f in module.inputs}
    for s in steps:
        if s.name in seen or s.name in inputs:
            what = "an input" if s.name in inputs else "a step"
            ctx.scope.error("E1101", f"'{s.name}' is already {what} of module "
                            f"'{module.name}'", ctx.scope.name_span(s.span, s.name))
        seen.add(s.name)


# ---------------------------------------------------------------- steps


def _step(stmt: ast.Step, env: Env, ctx: Ctx, edges: list[CallEdge]) -> StepIR | None:
    value = stmt.value
    if isinstance(value, ast.PredictorCall):
        step, outputs = _predictor_step(stmt, value, env, ctx)
    elif isinstance(value, ast.Retrieve):
        step, outputs = _retrieve_step(stmt, value, env, ctx)
    else:
        step, outputs = _call_step(stmt, value, env, ctx, edges)
    if stmt.name not in env.outputs:
        env.outputs[stmt.name] = outputs
        env.index[stmt.name] = len(env.index)
    return step


def _predictor_step(stmt: ast.Step, call: ast.PredictorCall, env: Env,
                    ctx: Ctx) -> tuple[StepIR | None, dict[str, TypeRef]]:
    after = call.options[-1].span if call.options else None
    lm, adapter, options = predictor_options(call, ctx)
    sig = ctx.program.signatures.get(call.signature)
    if sig is None:
        ctx.scope.error("E1202", f"unknown signature '{call.signature}'",
                        ctx.scope.name_span(call.span, call.signature, after),
                        suggest(call.signature, ctx.program.signatures))
        _check_args_loosely(call.args, env, ctx)
        return None, {}
    args = _bind_args(call.args, sig.inputs, env, ctx, f"signature '{sig.name}'", call.span)
    pid = f"{env.module}.{stmt.name}"
    ctx.program.predictors[pid] = PredictorIR(
        id=pid, kind=call.kind, signature=_own_copy(sig), lm=lm,
        adapter=adapter, options=options, span=call.span)
    outputs = {f.name: f.type for f in sig.outputs}
    outputs.update(EXTRA_OUTPUTS.get(call.kind, {}))
    return StepIR(name=stmt.name, kind="predictor", predictor=pid, args=args,
                  span=stmt.span), outputs


def _own_copy(sig: SignatureIR) -> SignatureIR:
    """A predictor's own signature: optimizers edit it without touching the declaration.

    Fields are copied (their descriptions may be tuned); types and spans are shared,
    as nothing edits them. Ten times faster than a deep copy on big programs.
    """
    return _copy(sig, {"inputs": [_copy(f) for f in sig.inputs],
                       "outputs": [_copy(f) for f in sig.outputs]})


_M = TypeVar("_M", bound=BaseModel)


def _copy(model: _M, update: dict[str, Any] | None = None) -> _M:
    """``model.model_copy(update=update)`` without pydantic's generic path (a third of
    the time of a big check went to it). Same result for IR models, which have no
    extra or private attributes; any other model takes pydantic's path."""
    if model.__pydantic_extra__ is not None or \
            getattr(model, "__pydantic_private__", None) is not None:
        return model.model_copy(update=update)
    copied = object.__new__(type(model))
    values, fields_set = model.__dict__.copy(), set(model.__pydantic_fields_set__)
    if update:
        values.update(update)
        fields_set.update(update)
    object.__setattr__(copied, "__dict__", values)
    object.__setattr__(copied, "__pydantic_extra__", None)
    object.__setattr__(copied, "__pydantic_fields_set__", fields_set)
    object.__setattr__(copied, "__pydantic_private__", None)
    return copied


def _retrieve_step(stmt: ast.Step, call: ast.Retrieve, env: Env,
                   ctx: Ctx) -> tuple[StepIR, dict[str, TypeRef]]:
    spec = retrieve_options(call, ctx) or RetrieveIR()
    query = [FieldIR(name="query", type=STR)]
    args = _bind_args(call.args, query, env, ctx, "retrieve", call.span)
    return StepIR(name=stmt.name, kind="retrieve", retrieve=spec, args=args,
                  span=stmt.span), {"passages": PASSAGES}


def _call_step(stmt: ast.Step, call: ast.Call, env: Env, ctx: Ctx,
               edges: list[CallEdge]) -> tuple[StepIR | None, dict[str, TypeRef]]:
    target = ctx.scope.decls["callable"].get(call.target)
    if target is None:
        hint = suggest(call.target, [*ctx.scope.decls["callable"], *ast.PREDICTOR_KINDS])
        ctx.scope.error("E1203", f"unknown module or tool '{call.target}'",
                        ctx.scope.name_span(call.span, call.target), hint)
        _check_args_loosely(call.args, env, ctx)
        return None, {}
    if isinstance(target, ast.ToolDecl):
        tool = ctx.program.tools[call.target]
        args = _bind_args(call.args, tool.params, env, ctx, f"tool '{tool.name}'", call.span)
        return StepIR(name=stmt.name, kind="tool", tool=tool.name, args=args,
                      span=stmt.span), {"result": tool.returns}
    callee = ctx.program.modules[call.target]
    edges.append(CallEdge(env.module, callee.name, ctx.scope.name_span(call.span, call.target)))
    args = _bind_args(call.args, callee.inputs, env, ctx, f"module '{callee.name}'", call.span)
    return StepIR(name=stmt.name, kind="call", module=callee.name, args=args,
                  span=stmt.span), {f.name: f.type for f in callee.outputs}


# ---------------------------------------------------------------- arguments


def _bind_args(args: list[ast.Arg], params: list[FieldIR], env: Env, ctx: Ctx, what: str,
               span: Span) -> dict[str, ExprIR]:
    """Match arguments to parameters by name (positional ones in order); check types."""
    scope = ctx.scope
    by_name = {p.name: p for p in params}
    bound: dict[str, ExprIR] = {}
    for i, arg in enumerate(args):
        name = arg.name
        if name is None:
            if i >= len(params):
                scope.error("E1302", f"too many arguments for {what} (it takes "
                            f"{len(params)})", arg.span)
                continue
            name = params[i].name
        param = by_name.get(name)
        if param is None:
            scope.error("E1302", f"{what} has no input '{name}'",
                        scope.name_span(arg.span, name),
                        suggest(name, by_name) or _takes(params))
            resolve_value(arg.value, None, env, ctx, "")
            continue
        if name in bound:
            scope.error("E1102", f"argument '{name}' given twice", arg.span)
            continue
        expr = resolve_value(arg.value, param.type, env, ctx, f"input '{name}' of {what}")
        if expr is not None:
            bound[name] = expr
    missing = [p.name for p in params if p.name not in bound and _required(p)
               and not _named_in(p.name, args)]
    if missing:
        scope.error("E1301", f"missing input{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(repr(m) for m in missing)} of {what}", span,
                    "pass " + ", ".join(f"{m} = ..." for m in missing))
    return bound


def _named_in(name: str, args: list[ast.Arg]) -> bool:
    """Given (perhaps with a bad value, already reported): not also 'missing'."""
    return any(a.name == name for a in args)


def _required(p: FieldIR) -> bool:
    return p.default is None and p.type.kind != "optional"


def _takes(params: list[FieldIR]) -> str:
    return "it takes: " + ", ".join(p.name for p in params) if params else "it takes no input"


def _check_args_loosely(args: list[ast.Arg], env: Env, ctx: Ctx) -> None:
    """Names in the arguments of an unknown callee are still checked."""
    for arg in args:
        resolve_value(arg.value, None, env, ctx, "")


# ---------------------------------------------------------------- constraints, return


def _constraint(stmt: ast.Constraint, env: Env, ctx: Ctx, steps: dict[str, StepIR]) -> None:
    """Attach ``assert``/``suggest`` to the latest step it reads (the one to retry)."""
    expr, read = constraint_expr(stmt.expr, env, ctx)
    if expr is None:
        return
    if not read:
        ctx.scope.error("E1306", f"{stmt.kind} must check a step's output, e.g. "
                        "len(t.answer) <= 100", stmt.expr.span)
        return
    latest = max(read, key=lambda name: env.index.get(name, -1))
    target = steps.get(latest)
    if target is None:
        return  # the step itself had errors
    message = stmt.message or f"{stmt.kind} failed: {ctx.scope.text_of(stmt.expr.span)}"
    target.constraints.append(ConstraintIR(kind=stmt.kind, expr=expr, message=message,
                                           span=stmt.span))


def _returns(stmt: ast.Return, module: ModuleIR, env: Env, ctx: Ctx) -> dict[str, ExprIR]:
    scope = ctx.scope
    outputs = {f.name: f for f in module.outputs}
    duplicates([a for a in stmt.values if a.name], scope, "returned field")
    out: dict[str, ExprIR] = {}
    for i, arg in enumerate(stmt.values):
        name = arg.name or (module.outputs[i].name if i < len(module.outputs) else None)
        if name is None or name not in outputs:
            shown = name or f"value {i + 1}"
            scope.error("E1304", f"module '{module.name}' declares no output '{shown}'",
                        scope.name_span(arg.span, shown),
                        suggest(shown, outputs) or _takes(module.outputs).replace(
                            "it takes", "its outputs are"))
            resolve_value(arg.value, None, env, ctx, "")
            continue
        expr = resolve_value(arg.value, outputs[name].type, env, ctx, f"output '{name}'")
        if expr is not None and name not in out:
            out[name] = expr
    missing = [n for n in outputs if n not in out and not _named_in(n, stmt.values)]
    if missing:
        scope.error("E1304", f"return is missing output{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(repr(m) for m in missing)} of module '{module.name}'",
                    stmt.span)
    return out


# ---------------------------------------------------------------- recursion


def check_recursion(edges: list[CallEdge], ctx: Ctx) -> None:
    """Report each call that closes a cycle of module calls (E1305)."""
    graph: dict[str, list[CallEdge]] = {}
    for e in edges:
        graph.setdefault(e.caller, []).append(e)
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for e in graph.get(name, []):
            if state.get(e.callee) == 1:
                cycle = path[path.index(e.callee):] + [e.callee]
                ctx.scope.error("E1305", "module recursion: " + " -> ".join(cycle), e.span,
                                "modules cannot call themselves, directly or indirectly")
            elif e.callee not in state:
                visit(e.callee)
        path.pop()
        state[name] = 2

    for name in list(graph):
        if name not in state:
            visit(name)
