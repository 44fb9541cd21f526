"""What the interpreter assumes of an IR it did not check itself (an artifact's).

The schema (pydantic) says each field has the right shape; this says the parts fit
together: every step names a predictor, module or tool the program has, every value a
step reads comes from an input or an earlier step, every type names a declared enum or
class, and each predictor kind's options are of the kind it reads. ``program_problems``
lists what does not hold, each with its place, so that loading a tampered or broken
artifact is one clear error instead of a ``KeyError`` halfway through a run.

>>> from lmpc.ir import ModuleIR, ProgramIR, StepIR
>>> bad = ProgramIR(modules={"M": ModuleIR(name="M", steps=[
...     StepIR(name="s", kind="predictor", predictor="M.zzz")])})
>>> program_problems(bad)
["modules.M.steps[0].predictor: no predictor 'M.zzz'"]
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmpc.ir import ExprIR, PredictorIR, ProgramIR, SignatureIR, TypeRef

MAX_PROBLEMS = 20
# A prompt is rendered (and a local model tokenizes it) before any model can refuse it
# as too long: 20 MB of instructions took over a minute to be refused.
MAX_INSTRUCTIONS = 200_000
MAX_DESC = 20_000


class _KnnExample(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: dict[str, Any]
    labeled: dict[str, Any] | None = None
    bootstrapped: list[dict[str, Any]] = Field(default_factory=list)


class KnnOption(BaseModel):
    """``options["knn"]`` of a predictor tuned by ``knn_fewshot``."""

    model_config = ConfigDict(extra="allow")
    k: int = Field(3, ge=1)
    vectorizer: str = "local"
    max_bootstrapped_demos: int = Field(4, ge=0)
    max_labeled_demos: int = Field(16, ge=0)
    input_fields: list[str] = Field(default_factory=list)
    examples: list[_KnnExample] = Field(default_factory=list)


# option name -> (types it may have, lowest value) for each predictor kind
_OPTIONS: dict[str, dict[str, tuple[tuple[type, ...], float | None]]] = {
    "react": {"max_iters": ((int,), 1), "max_context_tokens": ((int,), 1)},
    "best_of_n": {"n": ((int,), 1), "threshold": ((int, float), None)},
    "refine": {"n": ((int,), 1), "threshold": ((int, float), None)},
    "multi_chain_comparison": {"m": ((int,), 1)},
}


def program_problems(program: ProgramIR) -> list[str]:
    """Every way ``program``'s parts do not fit together (at most ``MAX_PROBLEMS``)."""
    found: list[str] = []
    for name, module in program.modules.items():
        where = f"modules.{name}"
        known = {f.name for f in module.inputs}
        for i, step in enumerate(module.steps):
            at = f"{where}.steps[{i}]"
            found += _step(program, step, at)
            for arg, expr in step.args.items():
                found += _expr(expr, known, f"{at}.args.{arg}")
            known.add(step.name)
        for out, expr in module.returns.items():
            found += _expr(expr, known, f"{where}.returns.{out}")
        found += _types(program, [f.type for f in (*module.inputs, *module.outputs)], where)
    for pid, predictor in program.predictors.items():
        found += _predictor(program, predictor, f"predictors[{pid}]")
    for i, member in enumerate(program.ensemble.members if program.ensemble else []):
        for pid, predictor in member.items():
            at = f"ensemble.members[{i}][{pid}]"
            if pid not in program.predictors:
                found.append(f"{at}: no predictor {pid!r} in the program")
            found += _predictor(program, predictor, at)
    for name, metric in program.metrics.items():
        at = f"metrics.{name}"
        found += [f"{at}.parts: no metric {part!r}" for _, part in metric.parts
                  if part not in program.metrics]
        if metric.signature and metric.signature not in program.signatures:
            found.append(f"{at}.signature: no signature {metric.signature!r}")
        if metric.lm and metric.lm not in program.lms:
            found.append(f"{at}.lm: no LM {metric.lm!r}")
    for name, lm in program.lms.items():
        found += _settings(lm.settings, f"lms.{name}.settings")
    for name, tool in program.tools.items():
        found += _types(program, [p.type for p in tool.params] + [tool.returns],
                        f"tools.{name}")
    for i, test in enumerate(program.tests):
        if test.module not in program.modules:
            found.append(f"tests[{i}].module: no module {test.module!r}")
    return found[:MAX_PROBLEMS]


def _step(program: ProgramIR, step: Any, at: str) -> list[str]:
    if step.kind == "predictor" and step.predictor not in program.predictors:
        return [f"{at}.predictor: no predictor {step.predictor!r}"]
    if step.kind == "call" and step.module not in program.modules:
        return [f"{at}.module: no module {step.module!r}"]
    if step.kind == "tool" and step.tool not in program.tools:
        return [f"{at}.tool: no tool {step.tool!r}"]
    if step.kind == "retrieve":
        spec = step.retrieve
        if spec is None or (spec.corpus is None) == (spec.tool is None):
            return [f"{at}.retrieve: needs exactly one of a corpus and a tool"]
        if spec.tool is not None and spec.tool not in program.tools:
            return [f"{at}.retrieve.tool: no tool {spec.tool!r}"]
        if spec.k < 1:
            return [f"{at}.retrieve.k: must be at least 1"]
    return []


def _expr(expr: ExprIR, known: set[str], at: str) -> list[str]:
    if expr.kind == "ref" and (not expr.path or expr.path[0] not in known):
        first = expr.path[0] if expr.path else ""
        return [f"{at}: reads {first!r}, which is no input and no earlier step"]
    return []


def _predictor(program: ProgramIR, predictor: PredictorIR, at: str) -> list[str]:
    found = _signature(program, predictor.signature, f"{at}.signature")
    if predictor.lm is not None and predictor.lm not in program.lms:
        found.append(f"{at}.lm: no LM {predictor.lm!r}")
    options = predictor.options
    for name, (types, low) in _OPTIONS.get(predictor.kind, {}).items():
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types) or (
                low is not None and value < low):
            found.append(f"{at}.options.{name}: {value!r} is not a valid {name}")
    tools = options.get("tools", [])
    if predictor.kind == "react" or "tools" in options:
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            found.append(f"{at}.options.tools: must be a list of tool names")
        else:
            found += [f"{at}.options.tools: no tool {t!r}" for t in tools
                      if t not in program.tools]
    reward = options.get("reward")
    if reward is not None and (not isinstance(reward, str) or reward not in program.metrics):
        found.append(f"{at}.options.reward: no metric {reward!r}")
    if "knn" in options:
        try:
            KnnOption.model_validate(options["knn"])
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = ".".join(str(p) for p in error["loc"])
            found.append(f"{at}.options.knn{'.' + loc if loc else ''}: {error['msg']}")
    return found


# LM settings lmpc itself computes with: each must be a number of this kind
_NUMERIC = {"max_tokens": int, "max_completion_tokens": int, "n": int, "num_retries": int,
            "max_concurrency": int, "rpm": int, "tpm": int,
            "seed": int, "top_k": int, "temperature": float, "top_p": float, "timeout": float,
            "presence_penalty": float, "frequency_penalty": float}


def _settings(settings: dict[str, Any], at: str) -> list[str]:
    found = []
    for name, kind in _NUMERIC.items():
        value = settings.get(name)
        if value is None:
            continue
        ok = not isinstance(value, bool) and isinstance(value, int if kind is int else
                                                        int | float)
        if not ok:
            found.append(f"{at}.{name}: {value!r} is not {'an int' if kind is int else 'a number'}")
    stop = settings.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        found.append(f"{at}.stop: must be a string or a list of strings")
    return found


def _signature(program: ProgramIR, sig: SignatureIR, at: str) -> list[str]:
    if not sig.outputs:
        return [f"{at}.outputs: a signature needs at least one output"]
    found = []
    if len(sig.instructions) > MAX_INSTRUCTIONS:
        found.append(f"{at}.instructions: {len(sig.instructions):,} characters (the limit "
                     f"is {MAX_INSTRUCTIONS:,}: no model reads that much)")
    for f in (*sig.inputs, *sig.outputs):
        if f.desc is not None and len(f.desc) > MAX_DESC:
            found.append(f"{at}: the description of {f.name!r} is {len(f.desc):,} "
                         f"characters (the limit is {MAX_DESC:,})")
    return found + _types(program, [f.type for f in (*sig.inputs, *sig.outputs)], at)


def _types(program: ProgramIR, types: list[TypeRef], at: str) -> list[str]:
    found = []
    todo = list(types)
    while todo:
        ref = todo.pop()
        todo.extend(ref.args)
        if ref.kind == "enum" and ref.name not in program.enums:
            found.append(f"{at}: no enum {ref.name!r}")
        elif ref.kind == "class" and ref.name not in program.classes:
            found.append(f"{at}: no class {ref.name!r}")
        elif ref.kind == "optional" and len(ref.args) != 1:
            found.append(f"{at}: optional takes one type argument")
        elif (ref.kind == "list" and len(ref.args) > 1) or (ref.kind == "dict" and
                                                             len(ref.args) > 2):
            found.append(f"{at}: too many type arguments for {ref.kind}")
    return found
