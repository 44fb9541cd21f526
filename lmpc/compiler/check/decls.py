"""Declarations that stand alone: LMs, enums, classes, signatures and tools."""

from __future__ import annotations

import re

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.scope import NotLiteral, duplicates, plain_value
from lmpc.credentials import credential_problems
from lmpc.diagnostics import suggest
from lmpc.grammar import ast
from lmpc.ir import (
    LMIR,
    ClassIR,
    EnumIR,
    FieldIR,
    SignatureIR,
    ToolIR,
)

# ---------------------------------------------------------------- LMs

# lmpc's own limits of how fast it calls a model (lmpc/runtime/limits.py)
RATE_SETTINGS = {
    "max_concurrency": "the most calls to this model in flight at once",
    "rpm": "requests per minute",
    "tpm": "tokens per minute (prompt and completion)",
}


def check_lm(decl: ast.LMDecl, ctx: Ctx) -> LMIR:
    """``lm fast = "openai/gpt-4o-mini" { ... }`` -> LMIR (secrets as ``{"env": NAME}``)."""
    scope = ctx.scope
    duplicates(decl.options, scope, "setting")
    lm = LMIR(name=decl.name, model=decl.model, span=decl.span)
    if not decl.model.strip():
        scope.error("E1307", "an LM needs a model string, e.g. \"openai/gpt-4o-mini\"",
                    decl.span)
    for opt in decl.options:
        try:
            value = plain_value(opt.value)
        except NotLiteral as exc:
            scope.error("E1307", f"setting '{opt.key}' must be a plain value", exc.node.span)
            continue
        if opt.key == "fallbacks":
            lm.fallbacks = _fallbacks(opt, value, ctx)
        elif opt.key == "model_type":
            if value in ("chat", "text"):
                lm.model_type = value
            else:
                scope.error("E1307", f"model_type must be chat or text, got {value!r}",
                            opt.value.span, suggest(str(value), ["chat", "text"]))
        elif opt.key == "grammar":
            if isinstance(value, bool):
                lm.grammar = value
            else:
                scope.error("E1307", f"grammar must be true or false, got {value!r}",
                            opt.value.span)
        elif opt.key in RATE_SETTINGS and (isinstance(value, bool) or not isinstance(
                value, int) or value < 1):
            scope.error("E1307", f"{opt.key} must be a whole number >= 1, got {value!r}",
                        opt.value.span, RATE_SETTINGS[opt.key])
        else:
            for where, why in credential_problems({opt.key: value}):
                scope.warn("W1901", f"setting '{where}' holds {why} written in the source; "
                           "an artifact refuses it", opt.value.span,
                           f"write {where.split('.')[-1]}: env.NAME and set NAME in the "
                           "environment")
            lm.settings[opt.key] = value
    return lm


def _fallbacks(opt: ast.Option, value: object, ctx: Ctx) -> list[str]:
    """Fallback model strings; a bare name may refer to another declared LM."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item, node in zip(items, _item_nodes(opt.value), strict=False):
        if isinstance(node, ast.Ref):
            other = ctx.scope.lookup("lm", node.name, node.span)
            if other is not None:
                out.append(other.model)
        elif isinstance(item, str):
            out.append(item)
        else:
            ctx.scope.error("E1307", "fallbacks must be model strings or LM names",
                            node.span)
    return out


def _item_nodes(expr: ast.Node) -> list[ast.Node]:
    return list(expr.items) if isinstance(expr, ast.ListExpr) else [expr]


# ---------------------------------------------------------------- types


def check_enum(decl: ast.EnumDecl, ctx: Ctx) -> EnumIR:
    duplicates(decl.members, ctx.scope, f"value of enum {decl.name}")
    values = list(dict.fromkeys(m.name for m in decl.members))
    descs = {m.name: m.desc for m in decl.members if m.desc}
    return EnumIR(name=decl.name, values=values, desc=decl.doc, descs=descs, span=decl.span)


def check_class(decl: ast.ClassDecl, ctx: Ctx) -> ClassIR:
    duplicates(decl.fields, ctx.scope, f"field of class {decl.name}")
    fields = [FieldIR(name=f.name, type=ctx.types.resolve(f.type), desc=f.desc, span=f.span)
              for f in decl.fields]
    return ClassIR(name=decl.name, fields=fields, desc=decl.doc, span=decl.span)


# ---------------------------------------------------------------- signatures, tools


def check_signature(decl: ast.SignatureDecl, ctx: Ctx) -> SignatureIR:
    """Block or string form; an input and an output may not share a name."""
    duplicates(decl.fields, ctx.scope, f"field of signature {decl.name}")
    if not decl.outputs:
        ctx.scope.error("E1304", f"signature '{decl.name}' has no output field",
                        ctx.scope.name_span(decl.span, decl.name),
                        "add a field such as: out answer: str")

    def field_ir(f: ast.SigField) -> FieldIR:
        return FieldIR(name=f.name, type=ctx.types.resolve(f.type), desc=f.desc,
                       prefix=_prefix(f, ctx), span=f.span)

    sig = SignatureIR(name=decl.name, instructions=decl.doc or "",
                      inputs=[field_ir(f) for f in decl.inputs],
                      outputs=[field_ir(f) for f in decl.outputs], span=decl.span)
    if not sig.instructions.strip():  # DSPy's default sentence, as DSPy writes it
        sig.instructions = sig.default_instructions()
    return sig


def _prefix(f: ast.SigField, ctx: Ctx) -> str | None:
    """DSPy's ``prefix``: the field's label for base models, ``Label:`` on a line of its
    own, so one line with no colon but a trailing one."""
    if f.prefix is None:
        return None
    label = f.prefix.rstrip().removesuffix(":").strip()
    if not label or "\n" in label or ":" in label:
        ctx.scope.error("E1307", f"prefix of '{f.name}' must be a short label on one line, "
                        "with no colon but at the end, as in prefix \"Question:\"",
                        ctx.scope.name_span(f.span, "prefix"))
        return None
    return f.prefix


def param_fields(params: list[ast.Param], ctx: Ctx, owner: str) -> list[FieldIR]:
    """Typed parameters (tool parameters, module inputs/outputs) with checked defaults."""
    duplicates(params, ctx.scope, f"parameter of {owner}")
    out = []
    for p in params:
        type_ = ctx.types.resolve(p.type)
        default = None
        if p.default is not None:
            try:
                default = plain_value(p.default)
            except NotLiteral as exc:
                ctx.scope.error("E1307", "a default must be a plain value", exc.node.span)
            else:
                ctx.check_literal(default, type_, p.default.span, f"default of '{p.name}'")
        out.append(FieldIR(name=p.name, type=type_, default=default, span=p.span))
    return out


def check_tool(decl: ast.ToolDecl, ctx: Ctx) -> ToolIR:
    if not re.fullmatch(r"[\w.]+:[\w.]+", decl.import_path):
        ctx.scope.error("E1307", f"tool '{decl.name}': import path must look like "
                        f"\"package.module:function\", got {decl.import_path!r}", decl.span)
    return ToolIR(name=decl.name, import_path=decl.import_path,
                  params=param_fields(decl.params, ctx, f"tool {decl.name}"),
                  returns=ctx.types.resolve(decl.returns) if decl.returns else
                  ctx.types.resolve(ast.NamedType(name="any")),
                  desc=decl.desc, span=decl.span)
