"""``optimize`` blocks (roles, budget, seed, the pass pipeline) and ``test`` blocks."""

from __future__ import annotations

import importlib.util
from typing import Any

from lmpc.compiler.check.context import Ctx
from lmpc.compiler.check.data import dataset_fields, metric_cycle, metric_fields
from lmpc.compiler.check.optimizer_specs import (
    LM_ROLES,
    OPTIMIZERS,
    all_names,
    canonical_name,
    validate_params,
)
from lmpc.compiler.check.prompt_model import CODE as CODE_WEAK_WRITER
from lmpc.compiler.check.prompt_model import message, weak_writers
from lmpc.compiler.check.rows import check_rows
from lmpc.compiler.check.scope import NotLiteral, duplicates, plain_value
from lmpc.diagnostics import suggest
from lmpc.grammar import ast
from lmpc.ir import BudgetIR, ExpectIR, ModuleIR, OptimizeIR, PassIR, TestIR

OPTIONS = (*LM_ROLES, "budget", "seed", "threads")
PROBLEM_CODES = {"unknown": "E1209", "type": "E1601", "range": "E1602", "conflict": "E1603"}
# DSPy optimizer arguments that are settings of the whole optimize block in lmpc: a pass
# given one gets a pointer to the setting instead of a bare "unknown parameter".
DSPY_BLOCK_SETTINGS = {
    "num_threads": "parallel runs are set for the whole block: write `threads: N` in the "
                   "optimize block",
    "metric": "the metric is named by the block: optimize PROGRAM with METRIC on DATASET",
    "trainset": "the data comes from the block's `on DATASET` and its split",
    "valset": "the data comes from the block's `on DATASET` and its split",
    "devset": "the data comes from the block's `on DATASET` and its split",
    "task_model": "the task model is the block's `lm: NAME` setting",
    "prompt_model": "the prompt model is the block's `prompt_model: NAME` setting",
    "student": "the student is the optimized program itself",
    "display_progress": "progress is shown on stderr (lmpc build --quiet hides it)",
    "display_table": "progress is shown on stderr (lmpc build --quiet hides it)",
    "verbose": "progress is shown on stderr (lmpc build --quiet hides it)",
}
EXPECT_OPS = ("==", "!=", "contains", "matches", "<", "<=", ">", ">=")


# ---------------------------------------------------------------- optimize


def check_optimize(decl: ast.OptimizeDecl, ctx: Ctx) -> OptimizeIR | None:
    scope = ctx.scope
    module = scope.lookup("callable", decl.program, decl.span, kind="module")
    metric_ok = scope.lookup("metric", decl.metric, _after_with(decl, ctx))
    dataset_ok = scope.lookup("dataset", decl.dataset, _after_on(decl, ctx))
    opt = OptimizeIR(name=decl.name, program=decl.program, metric=decl.metric,
                     dataset=decl.dataset, span=decl.span)
    _options(decl, opt, ctx)
    opt.passes = [p for p in (_pass(call, ctx) for call in decl.passes) if p is not None]
    if module is None:
        return None
    mod = ctx.program.modules[decl.program]
    if metric_ok:
        _check_metric_fields(decl, mod, ctx)
    if dataset_ok:
        _check_dataset_inputs(decl, mod, ctx)
        check_rows(decl.dataset, mod, decl.span, ctx)
    for pass_ir, role, model in weak_writers(ctx.program, opt):
        text, hint = message(pass_ir, role, model)
        span = ctx.scope.name_span(pass_ir.span, pass_ir.name) if pass_ir.span else decl.span
        ctx.scope.warn(CODE_WEAK_WRITER, text, span, hint)
    return opt


def check_optimize_names(decls: list[ast.OptimizeDecl], ctx: Ctx) -> None:
    """Optimize block names are unique (E1101): they pick a block and name its artifact."""
    seen: dict[str, ast.OptimizeDecl] = {}
    for decl in decls:
        if decl.name is None:
            continue
        first = seen.setdefault(decl.name, decl)
        if first is not decl:
            where = first.span
            ctx.scope.error("E1101", f"optimize block '{decl.name}' is already defined at "
                            f"{where.file}:{where.line}:{where.col}",
                            ctx.scope.name_span(decl.span, decl.name), "rename one of them")


def _after_with(decl: ast.OptimizeDecl, ctx: Ctx) -> Any:
    """The span of the metric name (the word after ``with``)."""
    at_with = ctx.scope.name_span(decl.span, "with")
    return ctx.scope.name_span(decl.span, decl.metric, at_with)


def _after_on(decl: ast.OptimizeDecl, ctx: Ctx) -> Any:
    at_on = ctx.scope.name_span(decl.span, "on", _after_with(decl, ctx))
    return ctx.scope.name_span(decl.span, decl.dataset, at_on)


def _options(decl: ast.OptimizeDecl, opt: OptimizeIR, ctx: Ctx) -> None:
    scope = ctx.scope
    duplicates(decl.options, scope, "option of optimize")
    for option in decl.options:
        key, node = option.key, option.value
        if key in LM_ROLES:
            if isinstance(node, ast.Ref) and len(node.path) == 1:
                if scope.lookup("lm", node.path[0], node.span):
                    opt.lms[key] = node.path[0]
            else:
                scope.error("E1604", f"{key} expects an LM name", node.span)
        elif key == "budget":
            opt.budget = _budget(node, ctx)
        elif key in ("seed", "threads"):
            value = node.value if isinstance(node, ast.Literal) else None
            if not isinstance(value, int) or isinstance(value, bool) or (
                    key == "threads" and value < 1):
                scope.error("E1604", f"{key} expects an int"
                            f"{' >= 1' if key == 'threads' else ''}", node.span)
            else:
                setattr(opt, key, value)
        else:
            scope.error("E1209", f"unknown option '{key}' of optimize",
                        scope.name_span(option.span, key),
                        _pass_hint(key) or suggest(key, OPTIONS) or
                        "options: " + ", ".join(OPTIONS))


def _pass_hint(key: str) -> str | None:
    if canonical_name(key):
        return f"'{key}' is an optimizer: write it as a pass, {key}(...)"
    return None


def _budget(node: ast.Node, ctx: Ctx) -> BudgetIR:
    budget = BudgetIR()
    if not isinstance(node, ast.Pairs):
        ctx.scope.error("E1604", "budget must look like: calls 2000, usd 1.50", node.span)
        return budget
    duplicates(node.items, ctx.scope, "budget part")
    for pair in node.items:
        value = pair.value.value
        if pair.name == "calls":
            if isinstance(value, int) and value >= 1:
                budget.calls = value
            else:
                ctx.scope.error("E1604", "budget calls must be an int >= 1", pair.value.span)
        elif pair.name == "usd":
            if isinstance(value, int | float) and value > 0:
                budget.usd = float(value)
            else:
                ctx.scope.error("E1604", "budget usd must be a number > 0", pair.value.span)
        else:
            ctx.scope.error("E1209", f"unknown budget part '{pair.name}'",
                            ctx.scope.name_span(pair.span, pair.name),
                            suggest(pair.name, ("calls", "usd")) or "parts: calls, usd")
    return budget


def _pass(call: ast.PassCall, ctx: Ctx) -> PassIR | None:
    scope = ctx.scope
    name = canonical_name(call.name)
    if name is None:
        scope.error("E1208", f"unknown optimizer '{call.name}'",
                    scope.name_span(call.span, call.name),
                    suggest(call.name, all_names()) or "optimizers: " + ", ".join(OPTIMIZERS))
        return None
    if not pass_available(name):
        ready = ", ".join(n for n in OPTIMIZERS if pass_available(n))
        scope.error("E1605", f"optimizer '{name}' is specified but not implemented in this "
                    "version of lmpc", scope.name_span(call.span, call.name),
                    "available: " + ready)
        return None
    duplicates([a for a in call.args if a.name], scope, f"parameter of {name}")
    raw: dict[str, Any] = {}
    spans = {}
    for arg in call.args:
        if arg.name is None:
            scope.error("E1601", f"parameters of {name} are named, as in {name}("
                        f"{OPTIMIZERS[name].params[0].name} = ...)", arg.span)
            continue
        try:
            raw[arg.name] = plain_value(arg.value)
        except NotLiteral as exc:
            scope.error("E1601", f"{name}.{arg.name} expects a plain value", exc.node.span)
            continue
        spans[arg.name] = arg
    params, problems = validate_params(name, raw)
    for problem in problems:
        arg = spans.get(problem.param or "")
        span = call.span if arg is None else (
            scope.name_span(arg.span, arg.name or "") if problem.kind == "unknown"
            else arg.value.span)
        hint = f"did you mean '{problem.suggestion}'?" if problem.suggestion else None
        if problem.kind == "unknown" and problem.param in DSPY_BLOCK_SETTINGS:
            hint = DSPY_BLOCK_SETTINGS[problem.param]
        if problem.kind == "unknown" and hint is None:
            hint = "parameters: " + ", ".join(p.name for p in OPTIMIZERS[name].params)
        scope.error(PROBLEM_CODES[problem.kind], problem.message, span, hint)
    _check_refs(name, params, spans, ctx)
    return PassIR(name=name, params=params, span=call.span)


def _check_refs(name: str, params: dict[str, Any], spans: dict[str, ast.Arg], ctx: Ctx) -> None:
    """Parameters that name an LM, an LM role or (for a teacher) a module."""
    for p in OPTIMIZERS[name].params:
        value = params.get(p.name)
        if p.type != "ref" or value is None or p.name not in spans:
            continue
        known = [*LM_ROLES, *ctx.program.lms]
        if p.ref == "lm_or_module":
            known += list(ctx.program.modules)
        if value not in known:
            ctx.scope.error("E1201", f"{name}.{p.name}: unknown "
                            f"{'LM, role or module' if p.ref == 'lm_or_module' else 'LM'} "
                            f"'{value}'", spans[p.name].value.span, suggest(value, known))


def _check_metric_fields(decl: ast.OptimizeDecl, mod: ModuleIR, ctx: Ctx) -> None:
    metrics = ctx.program.metrics
    cycle = metric_cycle(decl.metric, metrics)
    if cycle:
        ctx.scope.error("E1502", "metric cycle: " + " -> ".join(cycle), _after_with(decl, ctx))
        return
    outputs = [f.name for f in mod.outputs]
    for field, metric in metric_fields(decl.metric, metrics):
        if field not in outputs:
            span = metric.span or decl.span
            ctx.scope.error("E1501", f"metric '{metric.name}' reads '{field}', which is not an "
                            f"output of module '{mod.name}'", ctx.scope.name_span(span, field),
                            suggest(field, outputs) or "outputs: " + ", ".join(outputs))
            continue
        dataset = ctx.program.datasets.get(decl.dataset)
        labels = dataset_fields(dataset, ctx.columns.get(decl.dataset)) if dataset else None
        needs_label = not (metric.kind == "contains" and "value" in metric.options) and \
            metric.kind != "regex"
        if labels is not None and needs_label and field not in labels:
            ctx.scope.error("E1404", f"dataset '{decl.dataset}' has no label '{field}' for "
                            f"metric '{metric.name}'", _after_on(decl, ctx),
                            "add the column to the file or map it: map: { "
                            f"{field}: \"column\" }}")


def _check_dataset_inputs(decl: ast.OptimizeDecl, mod: ModuleIR, ctx: Ctx) -> None:
    """The dataset's ``inputs`` are the module's inputs (those without a default)."""
    ds = ctx.program.datasets[decl.dataset]
    module_inputs = [f.name for f in mod.inputs]
    required = [f.name for f in mod.inputs if f.default is None and f.type.kind != "optional"]
    where = _after_on(decl, ctx)
    if ds.inputs:
        extra = [n for n in ds.inputs if n not in module_inputs]
        missing = [n for n in required if n not in ds.inputs]
    else:  # no `inputs:`: the module's inputs must be fields of the file
        fields = dataset_fields(ds, ctx.columns.get(decl.dataset))
        extra, missing = [], [n for n in required if fields is not None and n not in fields]
    if extra:
        ctx.scope.error("E1402", f"dataset '{ds.name}' inputs {', '.join(map(repr, extra))} "
                        f"are not inputs of module '{mod.name}'", where,
                        suggest(extra[0], module_inputs) or
                        "module inputs: " + ", ".join(module_inputs))
    if missing:
        ctx.scope.error("E1402", f"dataset '{ds.name}' does not provide input"
                        f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                        f"of module '{mod.name}'", where,
                        f"add them to the dataset's inputs: [{', '.join(module_inputs)}]")


# ---------------------------------------------------------------- tests


def check_test(decl: ast.TestDecl, ctx: Ctx) -> TestIR | None:
    scope, call = ctx.scope, decl.call
    if scope.lookup("callable", call.target, call.span, kind="module") is None:
        return None
    mod = ctx.program.modules[call.target]
    inputs = _test_inputs(call, mod, ctx)
    test = TestIR(name=decl.name, module=mod.name, inputs=inputs, span=decl.span)
    outputs = {f.name: f.type for f in mod.outputs}
    for expr in decl.expects:
        expect = _expect(expr, outputs, mod, ctx)
        if expect is not None:
            test.expect.append(expect)
    return test


def _test_inputs(call: ast.Call, mod: ModuleIR, ctx: Ctx) -> dict[str, Any]:
    scope, params = ctx.scope, {f.name: f for f in mod.inputs}
    duplicates([a for a in call.args if a.name], scope, "argument")
    out: dict[str, Any] = {}
    for i, arg in enumerate(call.args):
        name = arg.name or (mod.inputs[i].name if i < len(mod.inputs) else None)
        if name not in params:
            scope.error("E1302", f"module '{mod.name}' has no input '{name}'",
                        scope.name_span(arg.span, name or ""), suggest(name or "", params))
            continue
        value = _test_value(arg.value, params[name].type, ctx)
        if value is not _BAD:
            ctx.check_literal(value, params[name].type, arg.value.span, f"input '{name}'")
            out[name] = value
    missing = [n for n, f in params.items() if n not in out and f.default is None
               and f.type.kind != "optional" and not any(a.name == n for a in call.args)]
    if missing:
        scope.error("E1301", f"missing input{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(map(repr, missing))} of module '{mod.name}'", call.span)
    return out


_BAD = object()


def _test_value(node: ast.Node, type_: Any, ctx: Ctx) -> Any:
    try:
        return plain_value(node)
    except NotLiteral:
        ctx.scope.error("E1701", "test inputs and expected values must be literals",
                        node.span)
        return _BAD


def _expect(expr: ast.Node, outputs: dict[str, Any], mod: ModuleIR,
            ctx: Ctx) -> ExpectIR | None:
    scope = ctx.scope
    if not isinstance(expr, ast.BinaryOp) or expr.op not in EXPECT_OPS:
        scope.error("E1701", "an expectation is 'field OP value' with OP one of "
                    + " ".join(EXPECT_OPS), expr.span)
        return None
    left = expr.left
    if not isinstance(left, ast.Ref) or len(left.path) != 1:
        scope.error("E1701", "the left side of an expectation is an output field",
                    left.span)
        return None
    field = left.path[0]
    if field not in outputs:
        scope.error("E1211", f"module '{mod.name}' has no output '{field}'", left.span,
                    suggest(field, outputs) or "outputs: " + ", ".join(outputs))
        return None
    value = _test_value(expr.right, outputs[field], ctx)
    if value is _BAD:
        return None
    if expr.op in ("==", "!="):
        ctx.check_literal(value, outputs[field], expr.right.span, f"output '{field}'")
    return ExpectIR(field=field, op=expr.op, value=value, span=expr.span)


def pass_available(name: str) -> bool:
    """Whether a pass module exists for ``name`` (found without importing it)."""
    return importlib.util.find_spec(f"lmpc.compiler.passes.{name}") is not None
