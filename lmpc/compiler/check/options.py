"""Options in parentheses after a predictor kind or ``retrieve``.

``predict(lm = fast, adapter = json)``, ``react(tools = [search], max_iters = 5)``,
``best_of_n(n = 3, reward = acc, threshold = 1.0)``, ``refine(...)``,
``multi_chain_comparison(m = 3)``, ``retrieve(corpus = "c.txt", k = 3)``.
Kind-specific options land in ``PredictorIR.options`` with their defaults filled in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.scope import duplicates
from lmpc.diagnostics import suggest
from lmpc.grammar import ast
from lmpc.ir import RetrieveIR

ADAPTERS = ("auto", "chat", "json", "completion")


@dataclass(frozen=True)
class Opt:
    """One option: what its value names or is, its default, and whether it is needed."""

    kind: str  # "lm" | "adapter" | "tools" | "metric" | "int" | "float" | "str" | "tool"
    default: Any = None
    minimum: float | None = None
    required: bool = False


COMMON = {"lm": Opt("lm"), "adapter": Opt("adapter", "auto")}
BY_KIND: dict[str, dict[str, Opt]] = {
    "predict": {},
    "chain_of_thought": {},
    "react": {"tools": Opt("tools", required=True), "max_iters": Opt("int", 5, 1)},
    "best_of_n": {"n": Opt("int", 3, 1), "reward": Opt("metric"),
                  "threshold": Opt("float", 1.0)},
    "refine": {"n": Opt("int", 3, 1), "reward": Opt("metric"), "threshold": Opt("float", 1.0)},
    "multi_chain_comparison": {"m": Opt("int", 3, 1)},
}
RETRIEVE = {"corpus": Opt("str"), "tool": Opt("tool"), "k": Opt("int", 3, 1)}


def predictor_options(call: ast.PredictorCall,
                      ctx: Ctx) -> tuple[str | None, str, dict[str, Any]]:
    """(lm, adapter, kind-specific options) of a predictor step."""
    specs = {**COMMON, **BY_KIND[call.kind]}
    values = _read(call.options, specs, ctx, call.kind, call.span)
    lm, adapter = values.pop("lm"), values.pop("adapter")
    return lm, adapter, values


def retrieve_options(call: ast.Retrieve, ctx: Ctx) -> RetrieveIR | None:
    """The retrieve configuration; exactly one of ``corpus`` and ``tool``."""
    values = _read(call.options, RETRIEVE, ctx, "retrieve", call.span)
    corpus, tool = values["corpus"], values["tool"]
    if (corpus is None) == (tool is None):
        ctx.scope.error("E1301", "retrieve needs exactly one of corpus = \"file\" or "
                        "tool = name", call.span)
        return None
    if corpus is not None:
        node = next(o for o in call.options if o.name == "corpus")
        on_disk, corpus = ctx.data_path(call.span.file, corpus)
        if not os.path.isfile(on_disk):
            ctx.scope.error("E1401", f"corpus file '{on_disk}' not found", node.value.span,
                            "the path is relative to the file that declares it")
    return RetrieveIR(corpus=corpus, tool=tool, k=values["k"])


def _read(args: list[ast.Arg], specs: dict[str, Opt], ctx: Ctx, owner: str,
          span: Any) -> dict[str, Any]:
    duplicates([a for a in args if a.name], ctx.scope, f"option of {owner}")
    values = {name: spec.default for name, spec in specs.items()}
    for arg in args:
        if arg.name is None:
            ctx.scope.error("E1307", f"options of {owner} are named, as in "
                            f"{owner}({next(iter(specs))} = ...)", arg.span)
            continue
        spec = specs.get(arg.name)
        if spec is None:
            ctx.scope.error("E1209", f"unknown option '{arg.name}' of {owner}",
                            ctx.scope.name_span(arg.span, arg.name),
                            suggest(arg.name, specs) or f"options: {', '.join(specs)}")
            continue
        value = _value(arg, spec, ctx, owner)
        if value is not None:
            values[arg.name] = value
    for name, spec in specs.items():
        if spec.required and not any(a.name == name for a in args):
            ctx.scope.error("E1301", f"{owner} needs the option '{name}'", span,
                            f"write {owner}({name} = ...)")
    return values


def _value(arg: ast.Arg, spec: Opt, ctx: Ctx, owner: str) -> Any:
    """The checked value of one option, or None after reporting it."""
    node, scope = arg.value, ctx.scope
    where = f"{owner} option '{arg.name}'"
    if spec.kind in ("lm", "metric", "tool", "adapter"):
        if not isinstance(node, ast.Ref) or len(node.path) != 1:
            scope.error("E1307", f"{where} expects a name", node.span)
            return None
        name = node.path[0]
        if spec.kind == "adapter":
            if name not in ADAPTERS:
                scope.error("E1307", f"{where} must be one of {', '.join(ADAPTERS)}",
                            node.span, suggest(name, ADAPTERS))
                return None
            return name
        namespace = "callable" if spec.kind == "tool" else spec.kind
        kind = "tool" if spec.kind == "tool" else None
        return name if scope.lookup(namespace, name, node.span, kind=kind) else None
    if spec.kind == "tools":
        items = node.items if isinstance(node, ast.ListExpr) else [node]
        names = []
        for item in items:
            if not isinstance(item, ast.Ref) or len(item.path) != 1:
                scope.error("E1307", f"{where} expects a list of tool names", item.span)
            elif scope.lookup("callable", item.path[0], item.span, kind="tool"):
                names.append(item.path[0])
        return names
    return _scalar(node, spec, ctx, where)


def _scalar(node: ast.Node, spec: Opt, ctx: Ctx, where: str) -> Any:
    value = node.value if isinstance(node, ast.Literal) else None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }[spec.kind]
    if not ok:
        wanted = {"int": "an int", "float": "a number", "str": "a string"}[spec.kind]
        ctx.scope.error("E1307", f"{where} expects {wanted}", node.span)
        return None
    if spec.minimum is not None and value < spec.minimum:
        ctx.scope.error("E1307", f"{where} must be at least {spec.minimum:g}", node.span)
        return None
    return float(value) if spec.kind == "float" else value
