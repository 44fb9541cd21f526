"""Module execution: run a module graph of the IR on inputs, recording a trace.

>>> # pred = run_module(program, "Support", {"ticket": "Site down"}, ctx)
>>> # pred.outputs -> {"priority": "high", ...}; pred.trace -> [TraceStep(...), ...]

Steps run in order; each binds its outputs under its name. A predictor step records a
``TraceStep``; ``call`` steps run a sub-module (its steps join the same trace);
``retrieve`` and ``tool`` steps produce ``passages`` and ``result``. Constraints on a
step are checked after it runs: a failing one retries the step with its message fed
back, up to ``max_retries``; then ``assert`` raises ``ConstraintFailed`` and ``suggest``
lets the run continue.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lmpc.ir import (
    LMIR,
    ConstraintIR,
    ExprIR,
    ModuleIR,
    PredictorIR,
    ProgramIR,
    StepIR,
)
from lmpc.runtime.constraints import first_failure
from lmpc.runtime.context import RunContext, RunStats
from lmpc.runtime.errors import ConstraintFailed, MissingInput, ParseFailure, RuntimeFailure
from lmpc.runtime.execute_types import Prediction, TraceStep
from lmpc.runtime.predictors import StepCall, run_predictor
from lmpc.runtime.retrieve import retrieve
from lmpc.runtime.tools import call_tool
from lmpc.runtime.types import coerce, render_value

__all__ = [
    "DEFAULT_LM",
    "Prediction",
    "RunContext",
    "RunStats",
    "TraceStep",
    "default_task_lm",
    "module_inputs",
    "run_batch",
    "run_module",
]

log = logging.getLogger("lmpc")

DEFAULT_LM = "local/gemma-3-270m"
MAX_CALL_DEPTH = 32


def run_module(program: ProgramIR, module: str, inputs: dict[str, Any], ctx: RunContext
               ) -> Prediction:
    """Run ``module`` on ``inputs``. Raises ``RuntimeFailure`` subclasses or ``LMError``."""
    if program.ensemble and program.ensemble.members:
        return _run_ensemble(program, module, inputs, ctx)
    return _Runner(program, program.predictors, ctx).run(module, inputs)


def run_batch(
    program: ProgramIR,
    module: str,
    rows: list[dict[str, Any]],
    ctx: RunContext,
    threads: int = 4,
) -> list[Prediction | Exception]:
    """Run every row in parallel (bounded threads); order kept, failures returned."""

    def one(index: int) -> Prediction | Exception:
        row_ctx = ctx.derive(attribution={**ctx.attribution, "example": index})
        try:
            return run_module(program, module, rows[index], row_ctx)
        except Exception as exc:  # returned so that one bad row never stops a batch
            if not isinstance(exc, RuntimeFailure):
                log.debug("row %d failed", index, exc_info=True)
            return exc

    if threads <= 1 or len(rows) <= 1:
        return [one(i) for i in range(len(rows))]
    with ThreadPoolExecutor(max_workers=min(threads, len(rows))) as pool:
        return list(pool.map(one, range(len(rows))))


def default_task_lm(program: ProgramIR, override: str | None = None) -> LMIR:
    """The task LM: ``override`` (an LM name or a model string), else the optimize
    block's ``lm`` role, else the first LM declared, else the embedded model."""
    if override:
        if override in program.lms:
            return program.lms[override]
        return LMIR(name=override, model=override)
    for opt in program.optimizes:
        name = opt.lms.get("lm")
        if name and name in program.lms:
            return program.lms[name]
    if program.lms:
        return next(iter(program.lms.values()))
    return LMIR(name="local", model=DEFAULT_LM)


# ---------------------------------------------------------------- the interpreter


class _Runner:
    """Runs modules of one program with one set of predictors (an ensemble member)."""

    def __init__(self, program: ProgramIR, predictors: dict[str, PredictorIR], ctx: RunContext
                 ) -> None:
        self.program = program
        self.predictors = predictors
        self.ctx = ctx
        self.trace: list[TraceStep] = []
        self.depth = 0

    def run(self, module: str, inputs: dict[str, Any]) -> Prediction:
        outputs = self.module(module, inputs)
        return Prediction(outputs=outputs, trace=self.trace)

    def module(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        mod = self.program.modules.get(name)
        if mod is None:
            known = ", ".join(sorted(self.program.modules)) or "none"
            raise RuntimeFailure(f"no module named {name!r} (modules: {known})")
        self.depth += 1
        if self.depth > MAX_CALL_DEPTH:
            raise RuntimeFailure(f"module {name!r}: calls nested deeper than {MAX_CALL_DEPTH}")
        try:
            env: dict[str, Any] = {"": self._inputs(mod, inputs)}
            for step in mod.steps:
                env[step.name] = self.step(mod, step, env)
            return self._returns(mod, env)
        finally:
            self.depth -= 1

    def _inputs(self, mod: ModuleIR, inputs: dict[str, Any]) -> dict[str, Any]:
        return module_inputs(self.program, mod, inputs)

    def _returns(self, mod: ModuleIR, env: dict[str, Any]) -> dict[str, Any]:
        if mod.returns:
            return {k: resolve(e, env, mod) for k, e in mod.returns.items()}
        last = env[mod.steps[-1].name] if mod.steps else {}
        names = [f.name for f in mod.outputs] or list(last)
        return {n: last.get(n) for n in names}

    # ------------------------------------------------------------ steps

    def step(self, mod: ModuleIR, step: StepIR, env: dict[str, Any]) -> dict[str, Any]:
        args = {k: resolve(e, env, mod) for k, e in step.args.items()}
        hints: dict[str, str] | None = None
        retries = 0
        call_ids: list[str] = []  # every attempt's calls belong to the step
        given_up: list[ConstraintIR] = []  # suggestions whose retries ran out
        while True:
            outputs, record = self._execute(mod, step, args, hints)
            call_ids += record.call_ids if record else []
            failed = self._check(step, outputs, env, mod, given_up)
            # A suggestion out of retries is let go, but the constraints after it still
            # hold: an assert written after a failing suggest must not be skipped.
            while failed is not None and not (step.kind == "predictor"
                                              and retries < failed.max_retries):
                self._give_up(mod, step, failed)  # raises for an assert
                given_up.append(failed)
                failed = self._check(step, outputs, env, mod, given_up)
            if failed is None:
                break
            retries += 1
            self.ctx.stats.incr("constraint_retries")
            hints = {"previous_attempt": _text(outputs), "feedback": failed.message}
        if record is not None:
            record.call_ids = call_ids
            self.trace.append(record)
        return outputs

    def _execute(self, mod: ModuleIR, step: StepIR, args: dict[str, Any],
                 hints: dict[str, str] | None) -> tuple[dict[str, Any], TraceStep | None]:
        if step.kind == "predictor":
            return self._predictor(mod, step, args, hints)
        if step.kind == "call":
            return self.module(str(step.module), args), None
        if step.kind == "retrieve":
            return {"passages": self._retrieve(step, args)}, None
        if step.kind == "tool":
            return {"result": self._tool(step, args)}, None
        raise RuntimeFailure(f"{mod.name}.{step.name}: unknown step kind {step.kind!r}")

    def _predictor(self, mod: ModuleIR, step: StepIR, args: dict[str, Any],
                   hints: dict[str, str] | None) -> tuple[dict[str, Any], TraceStep]:
        pred = self.predictors.get(str(step.predictor))
        if pred is None:
            raise RuntimeFailure(f"{mod.name}.{step.name}: no predictor {step.predictor!r}")
        missing = [f.name for f in pred.signature.inputs if f.name not in args]
        if missing:
            raise RuntimeFailure(f"{pred.id}: no value for input(s) {', '.join(missing)}")
        call = StepCall(self.program, pred, self.ctx, mod.name)
        outputs = run_predictor(call, args, hints)
        return outputs, TraceStep(pred.id, dict(args), dict(outputs), list(call.call_ids))

    def _retrieve(self, step: StepIR, args: dict[str, Any]) -> list[str]:
        spec = step.retrieve
        if spec is None:
            raise RuntimeFailure(f"retrieve step {step.name!r} has no configuration")
        query = args.get("query", next(iter(args.values()), ""))
        k = int(args.get("k", spec.k))
        if spec.tool:
            result = self._call_tool(spec.tool, {"query": query, "k": k})
            return [render_value(r) for r in (result if isinstance(result, list) else [result])]
        if not spec.corpus:
            raise RuntimeFailure(f"retrieve step {step.name!r} needs a corpus or a tool")
        return retrieve(str(query), self.ctx.file(spec.corpus, "corpus"), k)

    def _tool(self, step: StepIR, args: dict[str, Any]) -> Any:
        return self._call_tool(str(step.tool), args)

    def _call_tool(self, name: str, args: dict[str, Any]) -> Any:
        tool = self.program.tools.get(name)
        if tool is None:
            raise RuntimeFailure(f"unknown tool {name!r}")
        if tool.params:  # pass only what the tool declares (retrieve offers query and k)
            args = {k: v for k, v in args.items() if any(p.name == k for p in tool.params)}
        try:
            return call_tool(tool, self.ctx, args, self.program)
        except RuntimeFailure:
            raise
        except Exception as exc:  # a tool step's failure fails the example, with a reason
            raise RuntimeFailure(f"tool {name!r} failed: {type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------ constraints

    def _check(self, step: StepIR, outputs: dict[str, Any], env: dict[str, Any],
               mod: ModuleIR, given_up: list[ConstraintIR]) -> ConstraintIR | None:
        """The first constraint that fails, leaving out suggestions already let go."""
        pending = [c for c in step.constraints if not any(c is g for g in given_up)]
        if not pending:
            return None
        scope = {**env, step.name: outputs}
        return first_failure(pending, lambda path: lookup(path, scope, mod))

    def _give_up(self, mod: ModuleIR, step: StepIR, failed: ConstraintIR) -> None:
        where = f" ({failed.span})" if failed.span else ""
        if failed.kind == "assert":
            raise ConstraintFailed(f"{mod.name}.{step.name}: assert failed{where}: "
                                   f"{failed.message}")
        self.ctx.stats.incr("suggest_failures")
        log.info("%s.%s: suggestion not met%s: %s", mod.name, step.name, where, failed.message)


def module_inputs(program: ProgramIR, mod: ModuleIR, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs of ``mod`` coerced to their types; a missing one takes its default
    (``none`` for an optional). Raises ``RuntimeFailure`` naming what is wrong, so a
    caller can check its rows before any LM is called."""
    values = dict(inputs)
    for f in mod.inputs:
        if f.name not in inputs:
            if f.default is not None or f.type.kind == "optional":
                values[f.name] = f.default
                continue
            given = ", ".join(repr(k) for k in sorted(inputs)) or "no fields"
            raise MissingInput(f"module {mod.name} needs input {f.name!r} ({f.type}); "
                               f"the input has {given}", f.name, sorted(inputs))
        try:
            values[f.name] = coerce(inputs[f.name], f.type, program, f.name)
        except ParseFailure as exc:
            raise RuntimeFailure(f"module {mod.name}: input {exc}") from None
    return values


def resolve(expr: ExprIR, env: dict[str, Any], mod: ModuleIR) -> Any:
    """The value of an argument or return expression."""
    if expr.kind == "literal":
        return expr.value
    return lookup(expr.path, env, mod, expr)


def lookup(path: list[str], env: dict[str, Any], mod: ModuleIR, expr: ExprIR | None = None
           ) -> Any:
    """A module input (``[name]``), a step's outputs (``[step]``) or one output
    (``[step, field]``)."""
    where = f" at {expr.span}" if expr is not None and expr.span else ""
    head, rest = path[0], path[1:]
    if head in env and head != "":
        value = env[head]
    elif head in env[""]:
        value = env[""][head]
    else:
        raise RuntimeFailure(f"module {mod.name}: {'.'.join(path)!r} is not defined{where}")
    for part in rest:
        if not isinstance(value, dict) or part not in value:
            raise RuntimeFailure(f"module {mod.name}: {'.'.join(path)!r} has no value{where}")
        value = value[part]
    return value


def _text(outputs: dict[str, Any]) -> str:
    shown = {k: v for k, v in outputs.items() if k != "trajectory"}
    return "\n".join(f"{k}: {render_value(v)}" for k, v in shown.items())


# ---------------------------------------------------------------- ensembles


def _run_ensemble(program: ProgramIR, module: str, inputs: dict[str, Any], ctx: RunContext
                  ) -> Prediction:
    """Run each member's predictors; majority vote per output field (ties: member order)."""
    assert program.ensemble is not None
    results: list[Prediction] = []
    first_error: Exception | None = None
    for i, member in enumerate(program.ensemble.members):
        member_ctx = ctx.derive(attribution={**ctx.attribution, "member": i})
        try:
            predictors = {**program.predictors, **member}
            results.append(_Runner(program, predictors, member_ctx).run(module, inputs))
        except RuntimeFailure as exc:
            first_error = first_error or exc
    if not results:
        raise first_error or RuntimeFailure("every ensemble member failed")
    if program.ensemble.reduce == "majority":
        names = results[0].outputs
        outputs = {name: _vote([r.outputs.get(name) for r in results]) for name in names}
    else:
        outputs = _custom_reduce(program.ensemble.reduce, [r.outputs for r in results], ctx)
    trace = [step for r in results for step in r.trace]
    return Prediction(outputs=outputs, trace=trace)


def _custom_reduce(import_path: str, outputs: list[dict[str, Any]], ctx: RunContext
                   ) -> dict[str, Any]:
    """A user's ``pkg.mod:fn(list_of_member_outputs) -> outputs``; it is Python code, so it
    runs only when tools are allowed (an artifact never runs user code on its own)."""
    from lmpc.ir import ToolIR
    from lmpc.runtime.tools import load_tool

    ctx.trust.require_code("ensemble reducer", import_path, import_path)
    reducer = ToolIR(name=import_path, import_path=import_path)
    fn = load_tool(reducer, ctx)
    try:
        combined = fn(outputs)
    except Exception as exc:  # the user's reducer failed: report it, do not crash the batch
        raise RuntimeFailure(f"ensemble reduce {import_path!r} failed: {exc}") from None
    if not isinstance(combined, dict):
        raise RuntimeFailure(
            f"ensemble reduce {import_path!r} must return a dict of outputs, "
            f"got {type(combined).__name__}"
        )
    return combined


def _vote(values: list[Any]) -> Any:
    keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
    counts = Counter(keys)
    top = max(counts.values())
    return next(v for v, k in zip(values, keys, strict=True) if counts[k] == top)
